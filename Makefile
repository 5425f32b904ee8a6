# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Each creates or refreshes .venv when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# The CPU build of torch, installed before anything that depends on it (else pip pulls CUDA).
TORCH  ?= torch==2.13.0

.PHONY: demo deps test lint typecheck unit bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The Debian packages of the real-component tests (Prometheus and promtool, Alertmanager and amtool,
# Chromium for the browser tests); without them `make test` skips those tests and says so at the end.
# CI (.ci/run) runs this first. Needs root (sudo when not root).
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)
deps:
	@need=""; \
	command -v promtool >/dev/null 2>&1 || need="$$need prometheus"; \
	[ -x /usr/bin/prometheus-alertmanager ] || need="$$need prometheus-alertmanager"; \
	[ -x /usr/bin/chromium ] || need="$$need chromium"; \
	if [ -n "$$need" ]; then \
	  echo "deps: installing$$need"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	else \
	  echo "deps: prometheus, prometheus-alertmanager and chromium are installed"; \
	fi

# Runtime only: enough for the demo (no torch).
$(VENV)/.core-installed: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

# Everything the test suite needs: torch (CPU), sentence-transformers, reference implementations.
$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[st,dev,parquet,ray,openvino]"
	touch $@ $(VENV)/.core-installed

# The daemon on a generated training run: metrics on http://127.0.0.1:9464, a mining change,
# signed alerts printed by a local webhook receiver. Ctrl-C stops it (DEMO_ARGS="--duration 60").
demo: $(VENV)/.core-installed
	$(VENV)/bin/recallwatch demo $(DEMO_ARGS)

lint: $(VENV)/.dev-installed
	$(PY) -m ruff check service tests bench alerts deploy examples
	$(PY) -m ruff format --check service tests bench alerts deploy examples
	PYTHONPATH=service $(VENV)/bin/lint-imports --no-logo

typecheck: $(VENV)/.dev-installed
	$(PY) -m mypy

unit: $(VENV)/.dev-installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest

test: lint typecheck unit

bench: $(VENV)/.dev-installed
	$(PY) bench/eval_speed.py
	$(PY) bench/daemon_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build service/*.egg-info
