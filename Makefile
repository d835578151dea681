# `make test` installs everything the tests need (apt packages when missing, Python packages in
# .venv) and runs the whole suite against real servers. See README.md.
PYTHON ?= python3
VENV := .venv/bin
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (CI has 2 cores, and the suite mostly waits on servers);
# `make test TEST_WORKERS=0` runs it serially in one process.
TEST_WORKERS ?= 2

.PHONY: test test-fast lint typecheck deps generate bench clean

# .venv/bin first on PATH, so anything the suite runs finds the tools the dev extra installs;
# pytest's own exit codes pass through (5, nothing collected, fails too); the 30 slowest tests are
# listed, to keep CI under its 20 minutes. `--dist loadfile` sends each test file whole to one
# worker: a module-scoped fixture (a Prometheus with its exporters, a stack) starts once, as
# serially, and only the session-scoped servers start once per worker.
test: deps
	PATH="$(CURDIR)/$(VENV):$$PATH" $(VENV)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=30 $(PYTEST_ARGS)

# The quick loop while editing: no install step, the slow end-to-end tests left out.
test-fast:
	$(VENV)/python -m pytest -m 'not slow' -x -q $(PYTEST_ARGS)

# What CI enforces besides the tests (configured in pyproject.toml).
lint:
	$(VENV)/python -m ruff check .

typecheck:
	$(VENV)/python -m mypy -p stackwatch

deps:
	PYTHON=$(PYTHON) scripts/install-test-deps

# Regenerate committed artifacts (dashboards JSON, rule YAML, README tables).
generate: deps
	scripts/generate

# The benchmarks, each side by side with its peer in one run (figures: docs/benchmarks.md).
bench:
	PYTHON=$(PYTHON) scripts/install-test-deps --bench
	$(VENV)/python bench/postgres/run.py
	$(VENV)/python bench/redis/run.py --scrapes 500
	$(VENV)/python bench/instrumentation/run.py

clean:
	rm -rf .venv build dist *.egg-info .pytest_cache
