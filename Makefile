# Grove Export — the front door. `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST := $(PY) -m pytest

.PHONY: help run test chaos lint bench docs serve clean up down
.DEFAULT_GOAL := help

## make help: this list (what `make` alone prints)
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[test,dev]'
	@touch $(STAMP)

## make run: local stack, a fresh demo tenant, one export end to end; prints the ZIP's path last
## (PORT=N when 8080 is taken)
run: $(STAMP)
	@$(VENV)/bin/grove-export demo --data var --port $(or $(PORT),8080)

## make serve: the local stack until Ctrl-C (gateway on http://127.0.0.1:8080/export; PORT=N for another)
serve: $(STAMP)
	@$(VENV)/bin/grove-export serve --data var --port $(or $(PORT),8080)

## make test: the whole suite against real nats-server, moto, SQLite, aiosmtpd
## (JOBS=N pytest workers, 2 by default; PYTEST_ARGS=... any pytest arguments)
test: $(STAMP)
	@$(PYTEST) -q -n $(or $(JOBS),2) --dist worksteal --durations=10 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests ran"; exit 1; fi; exit $$rc

## make chaos: the crash-injection suite, ending with one summary line
chaos: $(STAMP)
	@$(PYTEST) -q -m chaos -s tests/chaos

## make lint: ruff + mypy
lint: $(STAMP)
	@$(VENV)/bin/ruff check shared services tests
	@$(VENV)/bin/mypy

## make bench: speed and memory, measured side by side (not a test)
bench: $(STAMP)
	@$(PY) -m tests.bench.run

## make docs: regenerate docs/asyncapi.json from the event models
docs: $(STAMP)
	@$(PY) -m services.devtools.docs

## make up / make down: the compose deployment (deploy/docker-compose.yml)
up:
	docker compose -f deploy/docker-compose.yml up -d --build

down:
	docker compose -f deploy/docker-compose.yml down

## make clean: delete var/ (the local stack's data; refused while the stack runs)
# A refusal is make's own one-line error (exit 2), expanded before any line of the recipe runs: a
# failing recipe line would add make's "*** [clean] Error 1" under the reason. The check needs no
# venv (standard library only: $(PYTHON) runs it when .venv/bin/python is missing; it was skipped
# then); exit 3 is "running", with its line; any other failure is "cannot tell": nothing is deleted.
STACK_CHECK = $(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m services.devtools.stack.running var
stack_refusal = $(shell out=$$($(STACK_CHECK) 2>&1); rc=$$?; if [ $$rc -eq 3 ]; then echo "$$out"; \
	elif [ $$rc -ne 0 ]; then echo "cannot tell whether a local stack runs in var ($(STACK_CHECK) exited $$rc): \
	nothing was deleted"; fi)
clean:
	@$(eval refusal := $$(stack_refusal))$(if $(refusal),$(error $(refusal)))
	rm -rf var
