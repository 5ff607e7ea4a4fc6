# Every target that needs the virtual environment builds it from nothing first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev
export QT_QPA_PLATFORM ?= offscreen

.PHONY: install install-dev run test lint bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(APP_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[agent]'
	touch $@

$(DEV_STAMP): pyproject.toml $(APP_STAMP)
	$(BIN)/pip install --quiet -e '.[agent,dev]'
	touch $@

install: $(APP_STAMP)

install-dev: $(DEV_STAMP)

run: $(APP_STAMP)
	QT_QPA_PLATFORM= $(BIN)/outpost gui

test: $(DEV_STAMP)
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(DEV_STAMP)
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/ruff check app core edge_agent tests bench

bench: $(DEV_STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
