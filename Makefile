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

# `npm ci` rejects its own lock offline (other platforms' optional builds are unreachable):
# `npm install` with the committed lock installs exactly the locked tree.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

test: setup
	$(BIN)/lint-imports
	$(BIN)/pytest -q

demo: setup
	$(BIN)/fedledger demo

bench: setup
	$(BIN)/fedledger bench quick

clean:
	rm -rf $(VENV) node_modules .fedledger build
