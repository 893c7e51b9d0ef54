# Cutover — common tasks. Everything installs into .venv first; only Python 3.11+ is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-browser lint serve worker beat migrate demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Cutover needs Python 3.11 or newer"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser tests alone (they also run in `make test`): headless Debian chromium driven by Playwright;
# screenshots go to $$CUTOVER_ARTIFACTS_DIR/screenshots (default var/artifacts/screenshots).
test-browser: $(STAMP)
	$(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

migrate: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput

serve: migrate
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runserver 127.0.0.1:8000

worker: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/celery -A controlplane worker --loglevel=INFO

beat: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/celery -A controlplane beat --loglevel=INFO

# The whole stack on loopback and a scripted migration rehearsal; the admin stays up until Ctrl-C.
demo: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py demo

clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache
