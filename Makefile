# Every target that needs the virtual environment builds it from nothing first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.installed-app
DEV_STAMP := $(VENV)/.installed-dev
# The KServe SDK, alone: it pins pandas < 3, which .venv cannot take. Only the test that
# reads the exported InferenceService with it uses it (docs/interop.md).
KSERVE_VENV := .venv-kserve
KSERVE_REQUIREMENTS := tests/support/kserve-requirements.txt
KSERVE_STAMP := $(KSERVE_VENV)/.installed
export QT_QPA_PLATFORM ?= offscreen

.PHONY: install install-dev kserve-venv run test lint bench bench-quick screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(APP_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[desktop]'
	touch $@

$(DEV_STAMP): pyproject.toml $(APP_STAMP)
	$(BIN)/pip install --quiet -e '.[desktop,dev]'
	touch $@

# Rebuilt from nothing when the pins change, so no stale package survives.
$(KSERVE_STAMP): $(KSERVE_REQUIREMENTS)
	rm -rf $(KSERVE_VENV)
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install --quiet -r $(KSERVE_REQUIREMENTS)
	touch $@

install: $(APP_STAMP)

install-dev: $(DEV_STAMP) $(KSERVE_STAMP)

kserve-venv: $(KSERVE_STAMP)

run: $(APP_STAMP)
	QT_QPA_PLATFORM= $(BIN)/outpost gui

# OUTPOST_KSERVE_PYTHON makes the KServe SDK check fail, not skip, if the side venv is broken.
test: $(DEV_STAMP) $(KSERVE_STAMP)
	OUTPOST_KSERVE_PYTHON=$(abspath $(KSERVE_VENV))/bin/python $(BIN)/pytest -n 2 --dist loadgroup

lint: $(DEV_STAMP)
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/ruff check app core edge_agent tests bench

bench: $(DEV_STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

# Every script's smoke run (tiny sizes, seconds each): the figures mean nothing, only that
# the scripts still run. tests/test_bench_quick.py runs the same in the suite.
bench-quick: $(DEV_STAMP)
	$(BIN)/pytest -q -n 2 tests/test_bench_quick.py

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
	rm -rf $(VENV) $(KSERVE_VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

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
