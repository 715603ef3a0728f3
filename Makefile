# jailhost.jails: the two commands of the README are `make demo` and `make test`.
# Every target installs what it needs first (scripts/install-deps.sh, idempotent).
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
LABHOST := $(VENV)/bin/python molecule/shared/labhost.py
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.cache/collections
export ANSIBLE_PYTHON_INTERPRETER := /usr/bin/python3
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0

SCENARIOS ?= $(sort $(filter-out shared,$(notdir $(wildcard molecule/*))))

.PHONY: help deps test lint unit compat molecule build release demo demo-destroy bench clean

help:
	@echo "make demo          boot a lab host, run playbooks/site.yml against it, show the result"
	@echo "                   (Debian 13 by default; make demo RELEASE=bookworm for Debian 12)"
	@echo "make demo-destroy  remove the lab host"
	@echo "make test          lint, unit tests and every Molecule scenario, with a summary"
	@echo "make bench         benchmarks on their own lab hosts; writes bench/results/latest.md"
	@echo "make release       check, test, build and tag the version of galaxy.yml (CONTRIBUTING.md)"
	@echo "make compat        ansible-test sanity and units on ansible-core 2.20 and 2.21 (Python 3.12+; also in make test)"
	@echo "make lint | unit | build | molecule SCENARIOS=bridge | clean"

deps:
	@bash scripts/install-deps.sh

test: deps
	@$(VENV)/bin/python scripts/run-tests.py --scenarios "$(SCENARIOS)"

lint: deps
	yamllint -s .
	ANSIBLE_HOME=$(CURDIR)/.cache/ansible-home ANSIBLE_LINT_SKIP_SCHEMA_UPDATE=1 ansible-lint --profile production

unit: deps
	pytest -q tests/unit

compat: deps
	$(VENV)/bin/python scripts/compat.py sanity
	$(VENV)/bin/python scripts/compat.py units

molecule: deps
	@for s in $(SCENARIOS); do molecule test -s $$s || exit 1; done

build: deps
	mkdir -p build && ansible-galaxy collection build --force --output-path build .

# DRY_RUN=1: check and build without tagging; SCENARIOS= limits the Molecule scenarios run.
release: deps
	@$(VENV)/bin/python scripts/release.py --scenarios "$(SCENARIOS)" $(if $(DRY_RUN),--dry-run)

demo: deps
	@RELEASE=$(RELEASE) bash scripts/demo.sh up

demo-destroy: deps
	@bash scripts/demo.sh down

bench: deps
	cd bench && $(VENV)/bin/python run.py

clean:
	-$(VENV)/bin/python molecule/shared/labhost.py destroy-all
	rm -rf build .cache/molecule tests/output
