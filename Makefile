# The two commands of the README:
#   make demo   the whole pipeline on a synthetic phantom cohort → demo-out/report.html
#   make test   run the test suite
# Each creates .venv on first use (Python 3.11 + pip is all a fresh machine needs) and
# installs torch through constraints.txt, which pins the CPU build.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_OUT ?= demo-out
PYTEST_ARGS ?=

.PHONY: demo test install browser clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable ".[test]"
	touch $@

demo: install
	$(BIN)/wmhkit demo --out $(DEMO_OUT)

test: install browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The report's browser test renders it in headless Chromium (Debian package). On CI, as root,
# install it when missing; elsewhere that test skips unless /usr/bin/chromium exists.
browser:
	@if [ -n "$$CI" ] && [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: the browser test will skip"; \
	fi

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis
