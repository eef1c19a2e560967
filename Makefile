# The two entry points of the README. Both install what they need into .venv first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

## demo: create a cluster (3 control plane machines, 2 workers) on the embedded sim provider
demo: $(BIN)/.installed
	test -f demo.yaml || $(BIN)/anywhere generate clusterconfig demo --provider sim > demo.yaml
	$(BIN)/anywhere create cluster -f demo.yaml

## lint: ruff and the type checker (strict on anywhere.api)
lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## test: lint, then every test
test: lint
	$(BIN)/pytest

clean:
	-test -d demo && $(BIN)/anywhere delete cluster demo
	rm -rf $(VENV) demo.yaml .pytest_cache .mypy_cache .ruff_cache .hypothesis
