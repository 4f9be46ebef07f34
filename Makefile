# The two commands of the README:
#   make demo   synthesize a phantom cohort, prepare it, print a summary, write QC overlays
#   make test   run the test suite
# Each creates .venv on first use (Python 3.11 + pip is all a fresh machine needs) and
# installs torch through constraints.txt, which pins the CPU build.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_OUT ?= demo-out
PYTEST_ARGS ?=

.PHONY: demo test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable ".[test]"
	touch $@

demo: install
	$(BIN)/wmhkit demo --out $(DEMO_OUT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis
