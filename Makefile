# Two entry points, each self-contained on a fresh Debian 12 machine:
#   make demo   set up, back up a sample directory, restore it, verify
#   make test   set up with test dependencies and run lint, layer contract and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# a fresh directory for the tests' temporary files, inside the checkout: leftovers of runs in a
# shared /tmp are never cleaned (nor tripped over) by this run
PYTEST_ARGS ?= --basetemp=build/pytest

.PHONY: demo test lint venv venv-test clean bench system-deps python-venv man

# Programs the tests run for real: database servers and dump tools for the stream sources,
# Subversion, GNU tar (dump), systemd-analyze (schedules), runuser (servers as their own
# users), man (the manual pages of `cairn generate --man`, rendered), fusermount3 and libfuse 3
# (cairn mount), chromium (cairn serve's pages, driven by Playwright: browser downloads are not
# used). Installed (as root, non-interactively) only when one is missing, so repeated runs
# never touch apt.
SYSTEM_TOOLS := psql pg_dump svnadmin svnmucc svn sqlite3 mariadbd mariadb mariadb-dump \
	mariadb-install-db systemd-analyze tar runuser man fusermount3 chromium
SYSTEM_PACKAGES := postgresql subversion sqlite3 mariadb-server mariadb-client systemd tar \
	util-linux man-db fuse3 chromium

# A stock Debian lacks the venv module's ensurepip (package python3-venv): installed (as root)
# only when the import fails, so repeated runs never touch apt. The target is pip, not python:
# a venv that failed half-way has a python but no pip, and is made again.
$(BIN)/pip:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory python-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

python-venv:
	@echo "python-venv: $(PYTHON) cannot make virtual environments; installing python3-venv"
	@if [ "$$(id -u)" != 0 ]; then \
		echo "python-venv: run as root, or install python3-venv" >&2; exit 1; \
	fi
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -q && apt-get install -y -q --no-install-recommends --no-upgrade python3-venv
	@$(PYTHON) -c 'import ensurepip, venv' || { \
		echo "python-venv: $(PYTHON) still has no ensurepip (not Debian's python3?)" >&2; exit 1; }

# byte-compiled as pip compiles an installed package: an editable install otherwise compiles
# every module on every run where PYTHONDONTWRITEBYTECODE is set
venv: $(BIN)/pip
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m compileall -q src/cairn

venv-test: $(BIN)/pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q src/cairn

demo: venv
	bash scripts/demo.sh

lint: venv-test
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

system-deps:
	@missing=""; \
	for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing initdb"; \
	if [ -n "$$missing" ]; then \
		echo "system-deps: missing:$$missing; installing $(SYSTEM_PACKAGES)"; \
		if [ "$$(id -u)" != 0 ]; then \
			echo "system-deps: run as root, or install: $(SYSTEM_PACKAGES)" >&2; exit 1; \
		fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && \
		apt-get install -y -q --no-install-recommends --no-upgrade $(SYSTEM_PACKAGES); \
	fi

test: system-deps lint
	mkdir -p build
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the manual pages, one per command, rendered from the commands themselves (MANDIR=... to
# choose where; view one with `man -l build/man/cairn-backup.1`)
MANDIR ?= build/man
man: venv
	$(BIN)/cairn generate --man $(MANDIR)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
