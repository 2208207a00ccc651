// Hardhat 3 builds the same contracts/ offline with the npm WASM solc and serves `hardhat node`
// (`fedledger devnet up --kind hardhat`). Compiler settings match deploy/compile.py.
import { fileURLToPath } from "node:url";

const soljson = fileURLToPath(new URL("./node_modules/solc/soljson.js", import.meta.url));

export default {
  solidity: {
    version: "0.8.37",
    path: soljson,
    settings: { optimizer: { enabled: true, runs: 200 }, viaIR: true, evmVersion: "prague" },
  },
  paths: { sources: "./contracts" },
  networks: {
    default: {
      type: "edr-simulated",
      chainId: 31337,
      hardfork: "prague",
      accounts: { mnemonic: "test test test test test test test test test test test junk", count: 200 },
    },
  },
};
