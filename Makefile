# Every target sets up what it needs; `make venv` is the shared first step.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
DATA_DIR ?= instance/serve

.PHONY: venv test demo serve bench stress browser clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=68" wheel
	$(BIN)/python -m pip install --quiet -e '.[test,postgresql,bench]'
	touch $@

# Debian's Chromium for the admin-page tests; installed when missing and we may.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: browser tests will be skipped (apt-get install chromium)"; \
	  fi; \
	fi

test: venv browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: venv
	$(BIN)/python examples/demo.py

serve: venv
	$(BIN)/python -m examples.xnat_host --host 127.0.0.1 --port $(PORT) --data-dir $(DATA_DIR)

bench: venv
	$(BIN)/python -m bench

stress: venv browser
	XDM_STRESS=1 $(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info instance artifacts
