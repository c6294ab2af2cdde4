# Two commands on a fresh machine: `make run` serves, `make test` tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run run-replica test lint install migrate gunicorn test-gunicorn conformance conformance-replica fuzz bench bench-replica bench-scale bench-writes bench-levers constraints clean

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "need python3.11 on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	rm -rf conduit_aiohttp.egg-info  # setuptools' by-product of the editable build; the metadata lives in .venv
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## serve on http://127.0.0.1:8080 (embedded PostgreSQL in .pgdata/ unless DATABASE_URL is set)
	$(PY) -m service serve

run-replica: $(STAMP)  ## as `make run`, plus an embedded streaming replica (pg_basebackup -R, in .pgdata-replica/) serving the reads
	$(PY) -m service serve-replica

migrate: $(STAMP)
	$(PY) -m service migrate

test: $(STAMP)  ## the whole suite, against a throwaway embedded PostgreSQL unless DATABASE_URL is set
	$(PY) -m pytest

# All three run, so one pass shows every finding; the target fails if any of them did.
lint: $(STAMP)  ## ruff format --check, ruff check, mypy (strict on service/ and schemas/, default mode on tests/)
	@status=0; \
	echo "ruff format --check ."; $(VENV)/bin/ruff format --check . || status=1; \
	echo "ruff check ."; $(VENV)/bin/ruff check . || status=1; \
	echo "mypy service schemas tests"; $(VENV)/bin/mypy service schemas tests || status=1; \
	exit $$status

bench: $(STAMP)  ## wrk against the service and reference points on a seeded embedded PostgreSQL (a few minutes; WEB_CONCURRENCY=1)
	$(PY) -m tests.bench.run

# An even number of rounds: each side is measured first as often (the first of a pair ran ~2% faster in one run).
bench-replica: $(STAMP)  ## each read of `make bench` without and with one streaming replica, in one run: ratios with their intervals, and where requests went
	$(PY) -m tests.bench.run --replica --no-workers-compare --duration 2 --rounds 10

bench-scale: $(STAMP)  ## each read at 1k, 10k, 100k and 1M articles (seeded in SQL), then with skew
	$(PY) -m tests.bench.run --scale --duration 3

# What the write benches compare against: main as it was before issue 13's kept counts.
AGAINST ?= b285be1

bench-writes: $(STAMP)  ## favorite/unfavorite, one hot article and many: the database's cost at $(AGAINST) against now, alternating rounds
	$(PY) -m tests.bench.writes --against $(AGAINST)

bench-levers: $(STAMP)  ## each lever measured on and off in one run (worker class, statement cache, reset, ...)
	$(PY) -m tests.bench.run --levers

gunicorn: $(STAMP)  ## production server: set DATABASE_URL (and APP_ENV, JWT_SECRET, WEB_CONCURRENCY, ...)
	@test -n "$$DATABASE_URL" || { echo "set DATABASE_URL (make run serves with an embedded PostgreSQL instead)"; exit 1; }
	$(VENV)/bin/gunicorn -c python:service.gunicorn_conf service.app:create_app

test-gunicorn: $(STAMP)  ## only the tests that run the real gunicorn (shutdown, metrics, access log)
	$(PY) -m pytest -m gunicorn

COLLECTION ?= ../shared/realworld/Conduit.postman_collection.json
BRUNO ?= ../shared/realworld/bruno
SUITE ?= all

conformance: $(STAMP)  ## RealWorld 2.0's official tests (Bruno) and the legacy suite (newman) against the real service on a throwaway embedded PostgreSQL
	$(PY) tests/tools/conformance.py --suite '$(SUITE)' --collection '$(COLLECTION)' --bruno '$(BRUNO)'

conformance-replica: $(STAMP)  ## the same suites with a streaming replica (pg_basebackup -R) serving the reads
	$(PY) tests/tools/conformance.py --replica --suite '$(SUITE)' --collection '$(COLLECTION)' --bruno '$(BRUNO)'

# schemathesis against the live service (tests/tools/fuzz.py): a throwaway embedded PostgreSQL,
# the service on FUZZ_PORT (a free one when empty), every built-in check, FUZZ_MAX_EXAMPLES test cases per operation and
# phase; FUZZ_ARGS go to `schemathesis run`.
FUZZ_PORT ?=
FUZZ_MAX_EXAMPLES ?= 30
FUZZ_ARGS ?=

fuzz: $(STAMP)  ## schemathesis with the generated OpenAPI document; non-zero on any failure
	FUZZ_PORT='$(FUZZ_PORT)' FUZZ_MAX_EXAMPLES='$(FUZZ_MAX_EXAMPLES)' FUZZ_ARGS='$(FUZZ_ARGS)' $(PY) tests/tools/fuzz.py

.PHONY: test-outage
test-outage: $(STAMP)  ## only the database outage, overload and PgBouncer tests
	$(PY) -m pytest -m outage

constraints:  ## re-resolve pyproject.toml's dependencies in a fresh venv and pin them in constraints.txt
	rm -rf .constraints-venv && $(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/pip install --quiet --upgrade pip && .constraints-venv/bin/pip install --quiet -e '.[dev]'
	rm -rf conduit_aiohttp.egg-info
	{ head -2 constraints.txt; .constraints-venv/bin/pip freeze --all --exclude-editable | grep -v '^conduit'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .constraints-venv

clean:
	rm -rf $(VENV) .pgdata .pgdata-replica .bench build dist *.egg-info .mypy_cache .ruff_cache

.PHONY: test-replica
test-replica: $(STAMP)  ## only the read-replica tests (a primary and a pg_basebackup -R replica of their own)
	$(PY) -m pytest -m replica

.PHONY: test-security
test-security: $(STAMP)  ## the security tests: tokens, permissions, bounds, leaks, login limit, headers, CORS, property test
	$(PY) -m pytest tests/test_security_*.py
