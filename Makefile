# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench focus-validator system-packages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstalls only when pyproject.toml changes: quick when already installed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/finops demo

# The FinOps Foundation's focus-validator needs Python >= 3.12: it gets a venv of its own.
focus-validator:
	bash .ci/focus-validator.sh || echo "WARNING: focus-validator unavailable; the conformance test will say why" >&2

# System packages some tests use, installed with apt when missing (a warning where that is not possible;
# those tests then say why, and fail under CI): headless Chromium renders the HTML chargeback,
# PostgreSQL runs the ledger tests on a second database.
system-packages:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then \
	    { command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq $$missing) >/dev/null 2>&1; } || \
	    echo "WARNING:$$missing unavailable; the tests that need them will say why" >&2; \
	  fi

# ruff and mypy as habits: configured in pyproject.toml, run before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint focus-validator system-packages
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/native_exports.py
	$(BIN)/python bench/placement.py
	$(BIN)/python bench/chargeback.py
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .venv-focus-validator finops-data demo-exports reports .pytest_cache
