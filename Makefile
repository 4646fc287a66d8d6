# The two commands a newcomer needs: `make run` and `make test`.
# Both work on a fresh Linux machine with Python 3.11+; everything else is installed here.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi

.PHONY: run test system-deps lint clean screenshots lock

# System packages, installed where we can (root with apt-get):
# - libzbar0 for pyzbar; without it the app decodes with zxing-cpp alone (see /healthz);
# - chromium for the browser tests of the scan page (Playwright drives Debian's chromium and
#   never downloads a browser); without it those tests skip, unless COI_REQUIRE_BROWSER=1
#   (CI) makes them fail;
# - postgresql-client for pg_dump and pg_restore (flask coi backup create / drill, and the
#   drill's test on PostgreSQL).
system-deps:
	@missing=""; \
	ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0' || missing="$$missing libzbar0"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v pg_dump >/dev/null || missing="$$missing postgresql-client"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing$$missing"; \
		(apt-get install -y -qq $$missing >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$missing >/dev/null 2>&1)) || \
		echo "warning: could not install$$missing (see the comment above system-deps)"; \
	else \
		echo "note:$$missing not installed and cannot be installed here (need root + apt-get);"; \
		echo "      decoding falls back to zxing-cpp alone, browser tests skip, no backups."; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Installs are reproducible: every package at the version and hashes of the lock files
# (requirements/, made by `make lock`), then the project itself without its dependencies.
# Stamps make a second `make run` start at once; editing pyproject.toml or a lock reinstalls.
INSTALL := $(BIN)/python -m pip install -q
$(VENV)/.installed-app: pyproject.toml requirements/app.txt | $(BIN)/python
	$(INSTALL) --require-hashes -r requirements/app.txt
	$(INSTALL) --no-deps -e .
	touch $@

# The test extras and the dev extras (ruff, mypy, pip-tools) share one lock.
$(VENV)/.installed-test: pyproject.toml requirements/test.txt | $(BIN)/python
	$(INSTALL) --require-hashes -r requirements/test.txt
	$(INSTALL) --no-deps -e .
	touch $@ $(VENV)/.installed-app

# The lock files again from pyproject.toml, against PyPI alone whatever this machine's pip
# configuration (local indexes, wheel folders, constraints), so that they install anywhere.
# Pins still allowed are kept; `make lock LOCK_ARGS=--upgrade` moves every pin to the newest.
# The project itself stays out of them (the dev extra names it): `pip install --no-deps -e .`.
LOCK := env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL \
	PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile -q \
	--generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
	--index-url https://pypi.org/simple --unsafe-package coi-platform $(LOCK_ARGS)
lock: $(VENV)/.installed-test
	$(LOCK) -o requirements/app.txt pyproject.toml requirements/lock-extra.in
	$(LOCK) --extra test --extra dev -o requirements/test.txt pyproject.toml requirements/lock-extra.in

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
	$(BIN)/ruff check .
	$(BIN)/mypy coi coldchain

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# README screenshots (Debian's chromium, installed by system-deps).
screenshots: system-deps $(VENV)/.installed-test
	$(BIN)/python docs/screenshots.py
