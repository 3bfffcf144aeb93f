"""deploy/prometheus/alerts.yml and deploy/grafana/one.json: Prometheus's own rule checker
and rule tests (promtool, Debian's prometheus package), and every series they read is one
the workers (or RabbitMQ) really export."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.directory_sync.metrics import FeedGauges
from shared.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "one.json"
# What the alerts read from RabbitMQ's Prometheus plugin, and Prometheus's own series.
FOREIGN = {"rabbitmq_queue_messages", "up"}
SERIES = re.compile(r"\b((?:one|rabbitmq)_[a-z_]+|up)\b(?=\s*[{\[)]|\s*$|\s*[<>=!])")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool missing (Debian package prometheus; make install puts it there)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def exported() -> set[str]:
    """Every series name the workers serve on /metrics."""
    registry = Metrics("order_intake").registry
    FeedGauges(registry, "directory_sync")
    names = set()
    for family in registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


def rules() -> list[dict]:
    spec = yaml.safe_load(RULES.read_text())
    return [rule for group in spec["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    spec = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in spec["panels"] for t in p.get("targets", [])]


def test_promtool_finds_the_rules_valid() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"SUCCESS: 5 rules found" in done.stdout


def test_each_alert_fires_on_its_sample_series_and_not_on_the_near_misses() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, cwd=RULE_TESTS.parent
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == {rule["alert"] for rule in rules()}  # every alert has its test


def test_the_alerts_are_the_five_an_operator_needs() -> None:
    assert {rule["alert"] for rule in rules()} == {
        "DeadLetterQueueGrowing",
        "OutboxStuck",
        "WorkerNotReady",
        "FeedRunHeldOverANight",
        "NightlyRunNotStarted",
    }
    for rule in rules():
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert "docs/operations.md#alerts" in rule["annotations"]["description"]
        assert rule["labels"]["severity"] in {"warning", "critical"}


def test_every_series_the_alerts_and_the_dashboard_read_exists() -> None:
    known = exported() | FOREIGN
    read = set()
    for expr in [rule["expr"] for rule in rules()] + dashboard_exprs():
        read |= set(SERIES.findall(expr))
    assert read - known == set(), "series nobody exports"
    # And the dashboard shows what the issue asks: rates, latencies, outbox lag, the feed.
    shown = {name for expr in dashboard_exprs() for name in SERIES.findall(expr)}
    assert {"one_consumed_total", "one_handler_seconds_bucket", "one_outbox_lag"} <= shown
    assert {"one_feed_last_night_runs", "one_feed_runs", "one_published_total"} <= shown


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool checks PromQL in rule files: each panel query becomes a recording rule, with
    # Grafana's variables replaced by what Grafana would put there.
    exprs = [
        e.replace("$__rate_interval", "5m").replace("$worker", ".*") for e in dashboard_exprs()
    ]
    recorded = [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    done = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    spec = json.loads(DASHBOARD.read_text())
    assert {p["datasource"]["uid"] for p in spec["panels"] if "datasource" in p} == {
        "${datasource}"
    }
