# Each target creates or refreshes the local virtual environment first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/pushlab demo

test: $(STAMP)
	$(BIN)/ruff check .
	bash scripts/install-brokers.sh
	$(BIN)/python -m pytest -q -n 4

bench: $(STAMP)
	$(BIN)/pushlab bench kernel --json

clean:
	rm -rf $(VENV) .pytest_cache
