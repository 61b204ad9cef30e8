# Aftercare: `make run` installs what is missing and runs the portal with demo data;
# `make test` runs ruff, the import layers check (lint-imports) and the whole test suite
# (DATABASE_URL switches it to PostgreSQL).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# nginx: serves the public snapshot (deploy/nginx-aftercare.conf); tests/test_public_snapshot.py
# runs it with that config.
APT_PACKAGES := redis-server nginx chromium fonts-noto-cjk libharfbuzz-subset0 poppler-utils \
	libpango-1.0-0 libpangoft2-1.0-0 python3-venv
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test install system-packages translations messages clean

run: install
	$(BIN)/flask --app portal db upgrade
	$(BIN)/flask --app portal demo seed
	$(BIN)/flask --app portal public snapshot
	$(BIN)/flask --app portal devserver --host $(HOST) --port $(PORT)

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest $(PYTEST_ARGS)

install: system-packages $(VENV)/.installed translations

# Debian packages: installed when missing and we are root; otherwise say what is missing.
system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing system packages: $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else \
			echo "Missing system packages (run as root or: sudo apt-get install $$missing)"; \
		fi; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Catalogues are compiled here, never by hand; the .mo files are not committed.
translations: $(VENV)/.installed
	$(BIN)/pybabel -q compile -d portal/translations

# For developers: re-extract strings after changing templates or code.
messages: $(VENV)/.installed
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext -k lazy_pgettext:1c,2 --project Aftercare \
		--no-location --sort-output -o portal/translations/messages.pot .
	$(BIN)/pybabel -q update -i portal/translations/messages.pot -d portal/translations \
		--no-fuzzy-matching

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache
