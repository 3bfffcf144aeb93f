"""Typed settings shared by every worker, read from ``ONE_*`` environment variables."""

from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import topics
from shared.retry import RetryPolicy

# Each worker's default ops port, so that the four run side by side on one host; a second
# replica of one on the same host is given another (ONE_OPS_PORT), or 0 for any free one.
OPS_PORTS = {
    topics.ORDER_INTAKE: 8001,
    topics.DIRECTORY_SYNC: 8002,
    topics.ACCOUNT_MANAGER: 8003,
    topics.CREDENTIAL_DISPATCH: 8004,
}


def own_ops_port(worker: str) -> Any:
    """The ``ops_port`` field of ``worker``'s settings, with its own default."""
    return Field(default=OPS_PORTS[worker], ge=0, le=65535)


# The largest message body a worker reads. The largest legitimate messages are a
# directory.synced chunk of 500 persons (about 150 KB) and an accounts.created (about
# 200 KB): 4 MiB leaves ample room while refusing a body built to exhaust memory.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class CommonSettings(BaseSettings):
    """What every worker needs to reach the broker and its database.

    ``database_url`` names the server and the database; each worker logs in as its own
    role (``database_role``, by default ``one_<worker>``) unless the URL names a user.
    """

    model_config = SettingsConfigDict(env_prefix="ONE_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # The nodes of a broker cluster, comma-separated: tried in this order at start, and the
    # next one after a node goes away (shared/messaging/cluster.py). Overrides amqp_url.
    amqp_urls: str | None = None
    exchange: str = "one.events"
    # Prefix of every other broker name (queues, dead-letter and retry exchanges), so that
    # several pipelines (or test runs) can share one broker without seeing each other.
    topology_prefix: str = "one"
    database_url: str = "postgresql://127.0.0.1:5432/one"
    database_role: str | None = None
    database_password: str | None = None
    # A superuser URL used only at start to create the database, the role and the schema
    # when missing. Leave empty where an operator provisions them.
    database_admin_url: str | None = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_pool_min: int = 2
    db_pool_max: int = 10
    prefetch: int = 16
    # A message body over this many bytes is dead-lettered at once, unparsed.
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, gt=0)
    # Delays of the retry tiers, in seconds; the n-th retry waits the n-th delay (the last
    # one repeats) until ``max_attempts`` is reached and the message is dead-lettered.
    retry_delays: list[float] = Field(default_factory=lambda: [1.0, 5.0, 30.0, 120.0, 600.0])
    max_attempts: int = Field(default=8, ge=1)
    delivery_limit: int = 5
    outbox_poll_seconds: float = 1.0
    # A batch the relay could not publish (broker or database away) is tried again after
    # base, 2·base, … up to the ceiling, for as long as it takes: a committed event must go.
    outbox_retry_base_seconds: float = Field(default=0.2, gt=0)
    outbox_retry_max_seconds: float = Field(default=5.0, gt=0)
    # Under a stream of commits the outbox relay waits this long before publishing, to
    # publish several commits' events in one batch; after a quiet spell it publishes at once.
    outbox_linger_seconds: float = Field(default=0.05, ge=0, le=5)
    outbox_batch: int = 200
    # How long a published event's trace (ids, topic, times: onectl trace) stays in the
    # outbox; its body, which may hold activation codes, goes as soon as it is confirmed.
    outbox_retention_hours: float = Field(default=24.0, gt=0)
    drain_seconds: float = 20.0
    # Planner statistics of the worker's own tables (shared/statistics.py): looked at this
    # often, refreshed for tables changed by more than these rows and share since analysed.
    statistics_interval_seconds: float = 5.0
    statistics_min_changes: int = 5000
    statistics_share: float = 0.5
    # /healthz, /readyz and /metrics (shared/ops.py). Port 0 picks a free port (tests); the
    # bound one is ``Worker.ops_port``. 127.0.0.1 suits the container's own healthcheck; set
    # 0.0.0.0 for an orchestrator or a Prometheus outside the container.
    ops_host: str = "127.0.0.1"
    ops_port: int = Field(default=8000, ge=0, le=65535)  # each worker's own: own_ops_port
    # How often the worker asks Postgres whether it answers; while it does not, the worker
    # stops consuming (messages wait in the queue) and reports itself not ready.
    database_check_seconds: float = Field(default=1.0, gt=0)
    log_level: str = "INFO"
    source_base: str = "urn:one:onboarding"

    @property
    def broker_addresses(self) -> list[str]:
        """Every broker address to try, in order (``amqp_urls``, else ``amqp_url``)."""
        return broker_addresses(self.amqp_urls) if self.amqp_urls else [self.amqp_url]

    @field_validator("amqp_urls")
    @classmethod
    def _addresses_valid(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            broker_addresses(value)  # raises on a malformed list
            return value
        return None

    @property
    def message_retry(self) -> RetryPolicy:
        """When the consume wrapper retries a message, and when it dead-letters it."""
        return RetryPolicy(tuple(self.retry_delays), self.max_attempts)

    @property
    def outbox_retry(self) -> RetryPolicy:
        return RetryPolicy.exponential(
            base=self.outbox_retry_base_seconds,
            ceiling=self.outbox_retry_max_seconds,
            max_attempts=None,
        )

    @field_validator("retry_delays")
    @classmethod
    def _delays_positive(cls, delays: list[float]) -> list[float]:
        if not delays or any(d <= 0 for d in delays):
            raise ValueError("retry delays must be a non-empty list of positive seconds")
        return delays


def broker_addresses(value: str) -> list[str]:
    """The addresses of a comma-separated ``ONE_AMQP_URLS``; each an amqp:// or amqps:// URL."""
    addresses = [part.strip() for part in value.split(",") if part.strip()]
    if not addresses:
        raise ValueError("ONE_AMQP_URLS names no broker address")
    wrong = [a.split("@")[-1] for a in addresses if not a.startswith(("amqp://", "amqps://"))]
    if wrong:
        raise ValueError(f"not an amqp:// or amqps:// URL: {', '.join(wrong)}")
    return addresses


def without_password(url: str) -> str:
    """``url`` as a log line or a message may show it: the user kept, the password gone."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}" if scheme else f"{user}@{host}"
