# The two commands a newcomer needs: `make run` and `make test`.
# Both work on a fresh Linux machine with Python 3.11+; everything else is installed here.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi

.PHONY: run test system-deps lint clean screenshots

# System packages, installed where we can (root with apt-get):
# - libzbar0 for pyzbar; without it the app decodes with zxing-cpp alone (see /healthz);
# - chromium for the browser tests of the scan page (Playwright drives Debian's chromium and
#   never downloads a browser); without it those tests skip, unless COI_REQUIRE_BROWSER=1
#   (CI) makes them fail.
system-deps:
	@missing=""; \
	ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0' || missing="$$missing libzbar0"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing$$missing"; \
		(apt-get install -y -qq $$missing >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$missing >/dev/null 2>&1)) || \
		echo "warning: could not install$$missing (see the comment above system-deps)"; \
	else \
		echo "note:$$missing not installed and cannot be installed here (need root + apt-get);"; \
		echo "      decoding falls back to zxing-cpp alone, browser tests skip."; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps make a second `make run` start at once; editing pyproject.toml reinstalls.
$(VENV)/.installed-app: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-app

run: system-deps $(VENV)/.installed-app
	$(FLASK) coi init
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.dev start

# Runs the suite on SQLite and, when COI_TEST_POSTGRES_URL is set, again on PostgreSQL.
test: system-deps $(VENV)/.installed-test
	COI_TEST_ENGINE=sqlite $(BIN)/python -m pytest -q
	@if [ -n "$$COI_TEST_POSTGRES_URL" ]; then \
		echo "== the same suite on PostgreSQL =="; \
		COI_TEST_ENGINE=postgresql $(BIN)/python -m pytest -q; \
	else \
		echo "COI_TEST_POSTGRES_URL is not set: PostgreSQL run skipped"; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/ruff check .
	$(BIN)/mypy coi coldchain

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# README screenshots (Debian's chromium, installed by system-deps).
screenshots: system-deps $(VENV)/.installed-test
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python docs/screenshots.py
