# Two commands: `make run` serves a demo on http://127.0.0.1:8080, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make run` installs what the server needs; `make test` adds the test tools (pytest,
# Playwright's driver, the linters) and the semantic suggestion engine (docs/suggestions.md)
# on top. TORCH is the PyTorch it installs first, so that the engine's requirement is met by
# this one (the CPU build where pip finds it) rather than by the newest build from PyPI.
TORCH ?= torch==2.13.0
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-dev

.PHONY: run test test-shifted lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { echo "omnicrm: creating a virtual environment failed; on Debian/Ubuntu: sudo apt install python3-venv" >&2; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet '$(TORCH)'
	$(BIN)/pip install --quiet -e '.[dev,semantic]'
	touch $(STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/omnicrm migrate
	$(BIN)/omnicrm demo --if-empty
	$(BIN)/omnicrm serve

# The suite runs on every core (pytest-xdist), a test module on one worker from its start to
# its end (its module-scoped fixtures, such as the one browser of a browser test module, are
# made once); `.venv/bin/pytest tests/test_x.py` runs one module in this process.
PYTEST_WORKERS ?= auto

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

# The suite at a date ten years away: a test that only passes near today's date fails here.
test-shifted: $(STAMP)
	OMNICRM_TEST_CLOCK_SHIFT_DAYS=3653 $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

# The quick version of every benchmark, one after another (about 3 minutes on the 2-core
# machine); bench/README.md gives the full commands and the last figures. Like the tests they use
# the local PostgreSQL (OMNICRM_BENCH_POSTGRES_URL) and Debian's Dovecot, and Debian's wrk for
# the web-form ingest; the suggestions bench is skipped without the support-dialogs data set
# next to the project, as its test is.
DIALOGS := ../shared/datasets/support-dialogs/bitext-customer-support.csv

bench: $(STAMP)
	$(BIN)/python bench/ingest.py --seconds 2
	$(BIN)/python bench/email_ingest.py --messages 200
	$(BIN)/python bench/routing.py --quick
	$(BIN)/python bench/search.py --contacts 2000 --interactions 10000 --queries 20
	$(BIN)/python bench/erp.py --runs 5
	@if [ -e $(DIALOGS) ]; then \
		echo "$(BIN)/python bench/suggestions.py --quick --databases sqlite,postgresql"; \
		$(BIN)/python bench/suggestions.py --quick --databases sqlite,postgresql; \
	else \
		echo "bench/suggestions.py skipped: $(DIALOGS) is not there"; \
	fi
	$(BIN)/python bench/timeline.py --quick
	$(BIN)/python bench/websockets.py --quick
	$(BIN)/python bench/telegram_ingest.py --seconds 2
	$(BIN)/python bench/twilio_ingest.py --seconds 2
	$(BIN)/python bench/reports.py --quick

clean:
	rm -rf $(VENV) omnicrm.db omnicrm.db-wal omnicrm.db-shm
