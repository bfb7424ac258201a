# openblynk: `make run` serves, `make test` runs the whole suite. Both set everything up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast lint format typecheck bench lock clean

$(STAMP): pyproject.toml setup.py console_ui/vendor.py constraints.txt console_ui/package-lock.json tests/support/timescale/package-lock.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test]'  # its build runs npm ci for the console (setup.py)
	npm ci --prefix tests/support/timescale --no-audit --no-fund --loglevel=error  # TimescaleDB for the tests (PGlite)
	@touch $(STAMP)

install: $(STAMP)  ## create .venv, install openblynk with its pinned dependencies and the console's browser files (from npm)

run: install  ## embedded PostgreSQL in ./data, HTTP on 8080, MQTT on 1883; Ctrl-C stops all
	$(BIN)/openblynk serve

test: install lint typecheck  ## ruff, mypy --strict, then the whole suite: unit, integration (real PostgreSQL, broker, app) and end-to-end
	$(BIN)/python -m pytest

test-fast: install  ## unit tests only
	$(BIN)/python -m pytest tests/unit

lint: install  ## ruff: lint rules and formatting, configured in pyproject.toml (part of make test)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## rewrite the code in ruff's format and apply ruff's safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install  ## mypy --strict on the packages (part of make test)
	$(BIN)/python -m mypy broker backend device_sdk ota console_ui

bench: install  ## benchmarks with printed figures (not pass/fail; see tests/bench/README.md)
	@for f in tests/bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lock:  ## re-pin every transitive dependency into constraints.txt from a clean venv
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet --editable '.[test]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest-data .pytest_cache .pytest-artifacts *.egg-info dist build console_ui/node_modules console_ui/static/vendor tests/support/timescale/node_modules
