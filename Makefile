# One command per task; `make help` lists them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_FLAGS ?=

.PHONY: help install lock services cluster cluster-stop run demo test test-fast test-pythons test-chaos lint bench clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

install: $(STAMP) /usr/bin/chromium /usr/bin/gs /usr/bin/promtool /usr/sbin/rabbitmq-server tools/asyncapi/node_modules ## Create .venv and install everything (Chromium, Ghostscript, promtool, RabbitMQ and Node.js from Debian where missing)

# Every package, transitive ones included, at the version and hash requirements.lock holds;
# then the project itself, whose dependencies are all in the lock already.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

lock: $(STAMP) ## Re-resolve requirements.lock from pyproject.toml (one lock for Python 3.11 to 3.13)
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --extra dev --generate-hashes \
		--no-emit-package one-onboarding --upgrade pyproject.toml -o requirements.lock

/usr/bin/chromium:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core

# Ghostscript makes the invoices PDF/A-3 for Factur-X.
/usr/bin/gs:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ghostscript

# Prometheus's rule checker, for the tests of deploy/prometheus/alerts.yml (the server that
# comes with it is not started).
/usr/bin/promtool:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
	-systemctl disable --now prometheus 2>/dev/null

# RabbitMQ's programs, for the three-node cluster of scripts/cluster.sh.
/usr/sbin/rabbitmq-server:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server

# The AsyncAPI Initiative's parser, which validates docs/asyncapi.json in the tests.
tools/asyncapi/node_modules: tools/asyncapi/package-lock.json | /usr/bin/npm
	npm ci --prefix tools/asyncapi --no-audit --no-fund --ignore-scripts --silent
	touch $@

/usr/bin/npm:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm

services: ## Start Postgres and RabbitMQ where they are not listening
	scripts/ensure-services.sh

cluster: ## A three-node RabbitMQ cluster on 127.0.0.1:5701-5703 (prints ONE_AMQP_URLS)
	scripts/cluster.sh start

cluster-stop: ## Stop the three nodes of `make cluster` (their data is kept)
	scripts/cluster.sh stop

run: install services ## The four workers in the foreground (and a local SMTP sink writing to out/)
	$(BIN)/python -m tools.run

demo: install services ## Two sample orders through the whole pipeline; shows events, emails, PDFs
	$(BIN)/python -m tools.demo

lint: install ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install services lint test-pythons ## Every test tier against real services (slow fault suites and a short chaos run included), and the unit tier on Python 3.12 and 3.13
	ONE_CHAOS_ORDERS=$${ONE_CHAOS_ORDERS:-40} $(BIN)/pytest $(PYTEST_FLAGS)

# The full suite runs on $(PYTHON); the unit tier also runs on each other supported Python,
# in its own venv installed from the same lock.
OTHER_PYTHONS ?= 3.12 3.13
test-pythons: ## The unit tier on Python 3.12 and 3.13
	@for version in $(OTHER_PYTHONS); do \
		venv=.venv-$$version; \
		if [ ! -f $$venv/.installed-stamp ] || [ requirements.lock -nt $$venv/.installed-stamp ]; then \
			interpreter=$$(scripts/python-for.sh $$version) || exit 1; \
			$$interpreter -m venv $$venv && \
			$$venv/bin/pip install -q --require-hashes -r requirements.lock && \
			$$venv/bin/pip install -q --no-deps -e . && \
			touch $$venv/.installed-stamp || exit 1; \
		fi; \
		echo "unit tier on Python $$version"; \
		$$venv/bin/pytest -q -p no:cacheprovider tests/unit || exit 1; \
	done

test-chaos: install services ## The full chaos suite: 500 orders on one broker, 200 on a cluster losing a node, 200 schools' feed nights, through kills and restarts
	ONE_CHAOS_ORDERS=$${ONE_CHAOS_ORDERS:-500} \
	ONE_CHAOS_CLUSTER_ORDERS=$${ONE_CHAOS_CLUSTER_ORDERS:-200} \
	ONE_CHAOS_FEED_SCHOOLS=$${ONE_CHAOS_FEED_SCHOOLS:-200} \
	$(BIN)/pytest -m chaos -s tests/chaos $(PYTEST_FLAGS)

test-fast: install services ## Unit and integration tiers only
	$(BIN)/pytest -m "not slow" tests/unit tests/integration $(PYTEST_FLAGS)

bench: install services ## Benchmarks; each prints its figures
	$(BIN)/python -m bench.orders
	$(BIN)/python -m bench.commands
	$(BIN)/python -m bench.sheets
	$(BIN)/python -m bench.feed
	$(BIN)/python -m bench.feed_apply
	$(BIN)/python -m bench.floor

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
