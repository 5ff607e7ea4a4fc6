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
	$(BIN)/pip install --quiet -e '.[desktop]'
	touch $@

$(DEV_STAMP): pyproject.toml $(APP_STAMP)
	$(BIN)/pip install --quiet -e '.[desktop,dev]'
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

# Real windows on a virtual X server (needs xvfb and libxcb-icccm4/-keysyms1/-cursor0),
# else on the display this session has.
XVFB_PACKAGES := xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0
screenshots: $(DEV_STAMP)
	@if command -v xvfb-run >/dev/null; then \
		xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \
			$(BIN)/python -m app.screenshots docs/screenshots; \
	elif [ -n "$$DISPLAY" ]; then \
		QT_QPA_PLATFORM=xcb $(BIN)/python -m app.screenshots docs/screenshots; \
	else \
		echo "make screenshots needs a display: install a virtual one with" \
			"'sudo apt-get install $(XVFB_PACKAGES)' (Debian/Ubuntu), or run it in a desktop session" >&2; \
		exit 1; \
	fi

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

# --- packaging (issue 7) -------------------------------------------------------------
# `make dist` builds dist/outpost-agent (one file) and dist/outpost/ (one folder) with
# PyInstaller, skipping a build whose inputs did not change; DIST_TARGETS=agent for one.
# `make wheelhouse` fills $(WHEELHOUSE)/ with every wheel an offline site needs for
# `pip install --no-index --find-links $(WHEELHOUSE) ...` (docs/install.md): the agent
# is the package's base install, the desktop its `desktop` extra.
DIST_TARGETS ?= all
WHEELHOUSE ?= wheelhouse

.PHONY: dist wheelhouse

dist: $(DEV_STAMP)
	$(BIN)/python packaging/build.py $(DIST_TARGETS)

wheelhouse: | $(BIN)/python
	rm -rf $(WHEELHOUSE)
	$(BIN)/pip wheel --quiet --wheel-dir $(WHEELHOUSE) '.[desktop]'
