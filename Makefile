# One command per task; `make help` lists them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_FLAGS ?=

.PHONY: help install services cluster cluster-stop run demo test test-fast test-chaos lint bench clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

install: $(STAMP) /usr/bin/chromium /usr/bin/gs /usr/bin/promtool /usr/sbin/rabbitmq-server tools/asyncapi/node_modules ## Create .venv and install everything (Chromium, Ghostscript, promtool, RabbitMQ and Node.js from Debian where missing)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

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

test: install services lint ## Every test tier against real services (slow fault suites and a short chaos run included)
	ONE_CHAOS_ORDERS=$${ONE_CHAOS_ORDERS:-40} $(BIN)/pytest $(PYTEST_FLAGS)

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

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
