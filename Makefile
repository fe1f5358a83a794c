# make test: set up .venv (if missing or pyproject.toml changed) and run every test.
# make demo: the same set-up, then the side-by-side demo of naive vs prefixed framing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "rcmd needs Python >= 3.10"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python demos/compare_modes.py

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .hypothesis rcmd.egg-info build

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py
