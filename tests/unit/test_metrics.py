"""The metrics registry: labelled series, one registry per worker."""

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def test_counters_render_with_worker_and_topic_labels():
    m = Metrics("order_intake")
    m.consumed("order.received", "applied", 0.012)
    m.consumed("order.received", "applied", 0.2)
    m.consumed("order.received", "dead", 0.001)
    m.published("invoice.issued")
    m.retried("order.received")
    m.dead_lettered("order.received")

    w = {"worker": "order_intake"}
    topic = {**w, "topic": "order.received"}
    assert value(m, "one_consumed_total", **topic, outcome="applied") == 2
    assert value(m, "one_consumed_total", **topic, outcome="dead") == 1
    assert value(m, "one_published_total", **w, topic="invoice.issued") == 1
    assert value(m, "one_retried_total", **topic) == 1
    assert value(m, "one_dead_lettered_total", **topic) == 1
    assert value(m, "one_handler_seconds_count", **topic) == 3
    assert value(m, "one_handler_seconds_bucket", **topic, le="0.025") == 2
    assert abs(value(m, "one_handler_seconds_sum", **topic) - 0.213) < 1e-9  # type: ignore[operator]


def test_gauges_render_their_last_value():
    m = Metrics("account_manager")
    w = {"worker": "account_manager"}
    assert value(m, "one_consumer_paused", **w) == 0
    m.outbox(7, 12.5)
    m.pool(4, 3)
    m.paused(True)
    assert value(m, "one_outbox_lag", **w) == 7
    assert value(m, "one_outbox_oldest_seconds", **w) == 12.5
    assert value(m, "one_db_pool_size", **w) == 4
    assert value(m, "one_db_pool_in_use", **w) == 3
    assert value(m, "one_consumer_paused", **w) == 1


def test_two_instances_keep_their_own_registries():
    first, second = Metrics("order_intake"), Metrics("order_intake")  # same names: no clash
    first.consumed("order.received", "applied")
    first.published("school.initialised")

    assert (
        value(
            first,
            "one_consumed_total",
            worker="order_intake",
            topic="order.received",
            outcome="applied",
        )
        == 1
    )
    assert (
        value(
            second,
            "one_consumed_total",
            worker="order_intake",
            topic="order.received",
            outcome="applied",
        )
        is None
    )
    assert (
        value(second, "one_published_total", worker="order_intake", topic="school.initialised")
        is None
    )
    # Nothing lands in the process-global registry.
    assert b"one_consumed" not in generate_latest(REGISTRY)
