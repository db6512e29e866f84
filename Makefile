# Set-up and the two entry points: `make tour` (the main job) and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.attnlab-installed

.PHONY: tour test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU build on this disk, so the range in pyproject installs nothing more.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

tour: $(STAMP)
	$(VENV)/bin/attnlab tour --out tour

# Lint and formatting on src/ and benchmarks/, types on src/ (configured in pyproject.toml), then the suite.
lint: $(STAMP)
	$(VENV)/bin/ruff check src benchmarks
	$(VENV)/bin/ruff format --check src benchmarks
	$(VENV)/bin/mypy

# Two worker processes (one torch thread each, tests/conftest.py); the tour's tests stay in one (loadgroup).
test: lint
	$(PY) -m pytest -n 2 --dist loadgroup

bench: $(STAMP)
	$(PY) benchmarks/attention.py

clean:
	rm -rf $(VENV) tour
