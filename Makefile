# Two commands matter: `make demo` (set up + main job) and `make test` (set up + tests).
# Every target bootstraps what it needs; set-up is idempotent and offline-safe
# (PyPI, npm and Debian registries only).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PYTHONHASHSEED := 0

.PHONY: setup test demo bench clean

setup: $(VENV)/.installed node_modules/.installed

# torch==2.13.0 is pinned in pyproject.toml and resolved in the same pip command as numpy and
# opacus, so pip takes the CPU wheel on local disk instead of a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

# `npm ci` refuses the lock ("Missing: headless@ from lock file": an optional dependency of
# electron-eval, under js-ipfs, named by a GitHub tarball URL, that the lock does not record).
# `npm install` skips it and installs exactly the locked tree. The lock is committed as npm writes it (with every
# platform's optional builds: anvil, cast, edr), so this install leaves it byte for byte unchanged
# and a fresh clone's `git status` stays clean.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# Static checks first (seconds): layers, formatting, lint, types; then the tests.
test: setup
	$(BIN)/lint-imports
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .
	$(BIN)/mypy
	$(BIN)/pytest -q

demo: setup
	$(BIN)/fedledger demo

bench: setup
	$(BIN)/fedledger bench quick
	# Foundry invariants, the big run: 100,000 random call sequences of 40 calls (foundry.toml)
	FOUNDRY_PROFILE=bench nice -n 19 node_modules/@foundry-rs/forge-linux-amd64/bin/forge test --offline --use ./deploy/solc-wrapper.cjs

clean:
	rm -rf $(VENV) node_modules .fedledger build
