#!/usr/bin/env node
// A native-solc look-alike over the npm WASM compiler, for py-solc-x (no native solc installs
// offline). Implements `--version` and `--standard-json` (input on stdin, output on stdout);
// imports are resolved against --base-path, each --include-path and node_modules.
"use strict";
const fs = require("fs");
const path = require("path");

function findNodeModules(start) {
  for (let dir = path.resolve(start); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", "solc");
    if (fs.existsSync(candidate)) return path.join(dir, "node_modules");
    if (dir === path.dirname(dir)) return null;
  }
}

const modules = process.env.FEDLEDGER_NODE_MODULES || findNodeModules(process.cwd()) || findNodeModules(__dirname);
if (!modules) {
  process.stderr.write("solc-wrapper: node_modules with solc not found; run `make setup`\n");
  process.exit(2);
}
const solc = require(path.join(modules, "solc"));
const args = process.argv.slice(2);

if (args.includes("--version")) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("solc-wrapper: only --version and --standard-json are supported\n");
  process.exit(2);
}

const roots = [];
for (let i = 0; i < args.length; i++) {
  if ((args[i] === "--base-path" || args[i] === "--include-path") && args[i + 1]) roots.push(args[++i]);
}
roots.push(process.cwd(), modules);

function findImports(importPath) {
  for (const root of roots) {
    const full = path.resolve(root, importPath);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: `File not found: ${importPath} (searched ${roots.join(", ")})` };
}

const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
