"""A worker's Prometheus metrics, in a registry of its own.

Each ``Metrics`` owns a ``CollectorRegistry`` (never the process-global one), so several
workers built in one process (the tests) keep separate counts. Every series carries the
``worker`` label; message series carry the ``topic`` (the CloudEvents type, or the
routing key of a message too broken to name one).

Counters are bumped where things happen (the consume wrapper, the publisher); gauges
(outbox lag, pool use, paused) are set by the worker just before each scrape.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from shared.errors import OutcomeKind

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# From a committed no-op (a few ms) to the handler timeout (120 s).
HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
NAMESPACE = "one"


class Metrics:
    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.registry = CollectorRegistry()
        r, ns = self.registry, NAMESPACE
        self._consumed = Counter(
            "consumed",
            "Messages taken from the worker's queue, by outcome",
            ["worker", "topic", "outcome"],
            namespace=ns,
            registry=r,
        )
        self._published = Counter(
            "published",
            "Events published to the exchange and confirmed by the broker",
            ["worker", "topic"],
            namespace=ns,
            registry=r,
        )
        self._retried = Counter(
            "retried",
            "Messages parked in a retry tier after a transient failure",
            ["worker", "topic"],
            namespace=ns,
            registry=r,
        )
        self._dead = Counter(
            "dead_lettered",
            "Messages sent to the dead-letter queue by the worker",
            ["worker", "topic"],
            namespace=ns,
            registry=r,
        )
        self._handler = Histogram(
            "handler_seconds",
            "Time to process one message (parse, validate, handle, commit)",
            ["worker", "topic"],
            namespace=ns,
            registry=r,
            buckets=HANDLER_BUCKETS,
        )
        self._outbox_lag = Gauge(
            "outbox_lag",
            "Outbox rows not yet published",
            ["worker"],
            namespace=ns,
            registry=r,
        )
        self._outbox_oldest = Gauge(
            "outbox_oldest_seconds",
            "Age of the oldest unpublished outbox row (0 when none)",
            ["worker"],
            namespace=ns,
            registry=r,
        )
        self._pool_size = Gauge(
            "db_pool_size",
            "Connections open in the worker's Postgres pool",
            ["worker"],
            namespace=ns,
            registry=r,
        )
        self._pool_in_use = Gauge(
            "db_pool_in_use",
            "Connections of the pool acquired at the moment",
            ["worker"],
            namespace=ns,
            registry=r,
        )
        self._paused = Gauge(
            "consumer_paused",
            "1 while the worker does not consume because Postgres does not answer",
            ["worker"],
            namespace=ns,
            registry=r,
        )
        self._paused.labels(worker).set(0)
        self._ready = Gauge(
            "ready",
            "1 while the worker is ready (/readyz answers 200), 0 while it is not",
            ["worker"],
            namespace=ns,
            registry=r,
        )
        self._ready.labels(worker).set(0)

    def consumed(self, topic: str, outcome: OutcomeKind, seconds: float | None = None) -> None:
        self._consumed.labels(self.worker, topic, outcome).inc()
        if seconds is not None:
            self._handler.labels(self.worker, topic).observe(seconds)

    def published(self, topic: str) -> None:
        self._published.labels(self.worker, topic).inc()

    def retried(self, topic: str) -> None:
        self._retried.labels(self.worker, topic).inc()

    def dead_lettered(self, topic: str) -> None:
        self._dead.labels(self.worker, topic).inc()

    def outbox(self, lag: int, oldest_seconds: float) -> None:
        self._outbox_lag.labels(self.worker).set(lag)
        self._outbox_oldest.labels(self.worker).set(oldest_seconds)

    def pool(self, size: int, in_use: int) -> None:
        self._pool_size.labels(self.worker).set(size)
        self._pool_in_use.labels(self.worker).set(in_use)

    def paused(self, paused: bool) -> None:
        self._paused.labels(self.worker).set(1 if paused else 0)

    def ready(self, ready: bool) -> None:
        self._ready.labels(self.worker).set(1 if ready else 0)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
