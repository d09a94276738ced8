# Two commands: `make run` serves a demo on http://127.0.0.1:8080, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-shifted lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/omnicrm migrate
	$(BIN)/omnicrm demo --if-empty
	$(BIN)/omnicrm serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/pytest

# The suite at a date ten years away: a test that only passes near today's date fails here.
test-shifted: $(STAMP)
	OMNICRM_TEST_CLOCK_SHIFT_DAYS=3653 $(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) omnicrm.db omnicrm.db-wal omnicrm.db-shm
