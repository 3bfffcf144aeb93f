"""Property-based fuzzing of the consume wrapper, for every message type of the registry.

Each topic's bodies (valid envelopes with data drawn from the contract's JSON schema, the
same with corruptions, random JSON, random bytes, wrong types, huge strings within the size
limit, unknown major versions) go through the ``MessageProcessor`` of each worker that
consumes the topic, built from that worker's real routes and store class over a recording
fake connection (no database). Topics no worker consumes go to every worker's processor.

The property: ``process`` never raises; the outcome is applied or duplicate, or retry or
dead with a reason; a body that is not a CloudEvent of a handled type and major version is
dead at once, and a payload that fails its contract never reaches the handler (at most
the route's rejector, which answers with a rejection event).
"""

import asyncio
import string
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.account_manager.feed_store import PostgresFeedStore
from services.account_manager.handlers import routes as account_routes
from services.account_manager.settings import AccountManagerSettings
from services.credential_dispatch.handlers import routes as dispatch_routes
from services.credential_dispatch.store import PostgresDispatchStore
from services.directory_sync.handlers import routes as directory_routes
from services.directory_sync.settings import DirectorySyncSettings
from services.directory_sync.store import PostgresDirectoryStore
from services.order_intake.handlers import routes as order_routes
from services.order_intake.settings import OrderIntakeSettings
from services.order_intake.store import PostgresOrderStore
from shared import topics
from shared.contracts import CONTRACTS
from shared.envelope import Envelope, RawEnvelope, schema_major
from shared.messaging.consumer import MessageProcessor, Outcome, Route
from shared.settings import DEFAULT_MAX_MESSAGE_BYTES
from shared.store import TransactionStore

REJECTIONS = {topics.ORDER_REJECTED, topics.COMMAND_REJECTED}
UAIS = ["0741234P", "0750001A", "0691234C"]
SIRETS = ["21740010600019", "81234567800011"]
EMAILS = ["claire.martin@example.org", "a@example.org"]
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "x\r\nBcc: evil@example.org",
    "=cmd|' /C calc'!A0",
    "../../etc/passwd",
    "\x00",
    "\ud800",  # a lone surrogate: not encodable as UTF-8 on its own
    "🙂" * 50,
]


# --- A connection that answers every query with "nothing there" and records it ----------


class _Transaction:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


@dataclass
class FakeConnection:
    """Stands in for an asyncpg connection: records every statement, finds no row, and
    claims every inbox id (so that each message is handled, never a duplicate)."""

    statements: list[str] = field(default_factory=list)

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> str:
        self.statements.append(query)
        return "OK 0"

    async def executemany(self, query: str, *args: Any, **kwargs: Any) -> None:
        self.statements.append(query)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> list[Any]:
        self.statements.append(query)
        return []

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> None:
        self.statements.append(query)
        return None

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append(query)
        return True if "INSERT INTO inbox" in query else None

    async def copy_records_to_table(self, table: str, *args: Any, **kwargs: Any) -> None:
        self.statements.append(f"COPY {table}")

    def transaction(self, **_: Any) -> _Transaction:
        return _Transaction()


# --- Each worker's processor over the fake ----------------------------------------------


@dataclass
class Probe:
    """One worker's processor, whose routes record what reached handlers and rejectors."""

    worker: str
    processor: MessageProcessor[Any]
    stores: list[TransactionStore] = field(default_factory=list)
    handled: list[Any] = field(default_factory=list)  # validated payloads given to handlers
    rejected: list[str] = field(default_factory=list)  # topics given to a rejector

    def reset(self) -> None:
        self.stores.clear()
        self.handled.clear()
        self.rejected.clear()

    def emitted(self) -> list[str]:
        return [event.type for store in self.stores for event in store.emitted]


def _probe(worker: str, routes: dict[str, Route[Any]], store: Callable[[Any], Any]) -> Probe:
    probe = Probe(worker, processor=None)  # type: ignore[arg-type]

    def spy_handler(handler: Any) -> Any:
        async def handle(event: Envelope[Any], *, store: Any) -> None:
            probe.handled.append(event.data)
            await handler(event, store=store)

        return handle

    def spy_rejector(rejector: Any) -> Any:
        async def reject(event: RawEnvelope, reasons: Any, *, store: Any) -> None:
            probe.rejected.append(event.type)
            await rejector(event, reasons, store=store)

        return reject

    spied = {
        topic: replace(
            route,
            handler=spy_handler(route.handler),
            on_invalid=spy_rejector(route.on_invalid) if route.on_invalid else None,
        )
        for topic, route in routes.items()
    }

    @asynccontextmanager
    async def unit_of_work() -> AsyncIterator[Any]:
        made = store(FakeConnection())
        probe.stores.append(made)
        yield made

    probe.processor = MessageProcessor(spied, unit_of_work, handler_timeout=10.0)
    return probe


def _probes(feed_dir: Path) -> dict[str, Probe]:
    common = {"ops_port": 0, "nightly_enabled": False}
    return {
        topics.ORDER_INTAKE: _probe(
            topics.ORDER_INTAKE, order_routes(OrderIntakeSettings(**common)), PostgresOrderStore
        ),
        topics.DIRECTORY_SYNC: _probe(
            topics.DIRECTORY_SYNC,
            directory_routes(DirectorySyncSettings(**common, feed_dir=str(feed_dir))),
            PostgresDirectoryStore,
        ),
        topics.ACCOUNT_MANAGER: _probe(
            topics.ACCOUNT_MANAGER,
            account_routes(AccountManagerSettings(**common)),
            PostgresFeedStore,
        ),
        topics.CREDENTIAL_DISPATCH: _probe(
            topics.CREDENTIAL_DISPATCH, dispatch_routes(), PostgresDispatchStore
        ),
    }


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Probe]:
    return _probes(tmp_path_factory.mktemp("feed"))


def consumers_of(topic: str) -> list[str]:
    """The workers subscribed to ``topic``; every worker when none is."""
    found = [w for w, bound in topics.SUBSCRIPTIONS.items() if topic in bound]
    return found or list(topics.WORKERS)


# --- Strategies -------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(HOSTILE)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
huge_strings = st.integers(min_value=10_000, max_value=1_000_000).map(lambda n: "A" * n)


def _string(name: str, schema: dict[str, Any]) -> st.SearchStrategy[str]:
    fmt = schema.get("format")
    if fmt == "uuid":
        return st.uuids().map(str)
    if fmt == "date":
        return st.dates().map(lambda d: d.isoformat())
    if fmt == "date-time":
        return st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    if fmt == "email" or name.endswith("email") or name in ("to", "sender"):
        return st.sampled_from(EMAILS)
    if name == "uai":
        return st.sampled_from(UAIS)
    if name == "siret":
        return st.sampled_from(SIRETS)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: len(s) < 60)
    low = max(schema.get("minLength", 1), 1)
    high = min(schema.get("maxLength", 40), 40)
    words = st.text(alphabet=string.ascii_letters + "éèàç -'", min_size=low, max_size=high)
    return words.filter(lambda s: s.strip()) | st.sampled_from(HOSTILE)


def from_schema(  # noqa: C901 - one branch a JSON Schema keyword
    schema: dict[str, Any], defs: dict[str, Any], name: str = ""
) -> st.SearchStrategy[Any]:
    """Values that mostly satisfy ``schema`` (a pydantic JSON schema): what the schema
    cannot say (check letters, cross-field rules) is left to chance."""
    if "$ref" in schema:
        return st.deferred(lambda: from_schema(defs[schema["$ref"].rsplit("/", 1)[1]], defs, name))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, defs, name) for s in schema[key]])
    if "allOf" in schema:
        return from_schema(schema["allOf"][0], defs, name)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: from_schema(v, defs, k) for k, v in properties.items() if k in required},
            optional={
                k: from_schema(v, defs, k) for k, v in properties.items() if k not in required
            },
        )
    if kind == "array":
        low = schema.get("minItems", 0)
        high = max(low, min(schema.get("maxItems", 3), 3))
        items = from_schema(schema.get("items", {}), defs, name)
        return st.lists(items, min_size=low, max_size=high)
    if kind == "string":
        return _string(name, schema)
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return st.integers(min_value=low, max_value=schema.get("maximum", low + 50))
    if kind == "number":
        return st.decimals(min_value=0, max_value=10_000, places=2).map(str)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return json_values


def data_for(topic: str) -> st.SearchStrategy[Any]:
    schema = CONTRACTS[topic].model_json_schema()
    return from_schema(schema, schema.get("$defs", {}))


@st.composite
def corrupted(draw: st.DrawFn, data: Any) -> Any:
    """``data`` with one spoilt part: a key dropped, retyped, blown up, or one added."""
    if not isinstance(data, dict) or not data:
        return draw(json_values)
    key = draw(st.sampled_from(sorted(data)))
    how = draw(st.sampled_from(["drop", "retype", "huge", "extra", "nested"]))
    spoilt = dict(data)
    if how == "drop":
        del spoilt[key]
    elif how == "retype":
        spoilt[key] = draw(json_values)
    elif how == "huge":
        spoilt[key] = draw(huge_strings)
    elif how == "extra":
        spoilt[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    else:
        value = spoilt[key]
        if isinstance(value, list) and value:
            spoilt[key] = [draw(corrupted(value[0])), *value[1:]]
        elif isinstance(value, dict):
            spoilt[key] = draw(corrupted(value))
        else:
            spoilt[key] = draw(json_values)
    return spoilt


def envelope(topic: str, data: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "m-" + str(id(data)),
        "source": "urn:one:fuzz",
        "type": topic,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "dataschema": CONTRACTS[topic].dataschema(),
        "correlationid": "fuzz",
        "data": data,
        **overrides,
    }


@st.composite
def bodies(draw: st.DrawFn, topic: str) -> bytes:
    import json

    kind = draw(
        st.sampled_from(
            ["valid", "valid", "corrupt", "random_data", "envelope", "major", "json", "bytes"]
        )
    )
    data = draw(data_for(topic))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        value: Any = draw(json_values)
    elif kind == "valid":
        value = envelope(topic, data)
    elif kind == "corrupt":
        value = envelope(topic, draw(corrupted(data)))
    elif kind == "random_data":
        value = envelope(topic, draw(json_values))
    elif kind == "major":
        major = draw(st.integers(min_value=0, max_value=99).filter(lambda m: m != 1))
        schema = draw(
            st.sampled_from(
                [
                    f"urn:one:schema:{topic}:{major}",
                    f"urn:one:schema:{topic}:{major}.3",
                    "",
                    "urn:one:schema:",
                    f"urn:other:{topic}:1",
                ]
            )
        )
        value = envelope(topic, data, dataschema=schema)
    else:  # a spoilt envelope attribute
        attribute = draw(
            st.sampled_from(
                ["specversion", "id", "source", "type", "time", "dataschema", "correlationid"]
            )
        )
        spoilt = envelope(topic, data)
        if draw(st.booleans()):
            del spoilt[attribute]
        else:
            spoilt[attribute] = draw(json_values | huge_strings)
        value = spoilt
    # Python's json writes a lone surrogate as an escape; the parser must cope with it.
    return json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


# --- The oracle ---------------------------------------------------------------------------


def expected(topic_routes: dict[str, Route[Any]], body: bytes) -> str:
    """What a body is: ``unreadable`` (not a CloudEvent of a handled type and major),
    ``invalid`` (its payload fails the contract) or ``valid``."""
    try:
        raw = RawEnvelope.model_validate_json(body)
    except ValidationError:
        return "unreadable"
    route = topic_routes.get(raw.type)
    if route is None or schema_major(raw.dataschema) != route.model.major:
        return "unreadable"
    try:
        route.model.model_validate(raw.data)
    except ValidationError:
        return "invalid"
    return "valid"


def check(probe: Probe, routes: dict[str, Route[Any]], body: bytes, outcome: Outcome) -> str:
    assert outcome.kind in ("applied", "duplicate", "retry", "dead"), outcome
    if outcome.kind in ("retry", "dead"):
        assert isinstance(outcome.reason, str) and outcome.reason.strip(), outcome
    what = expected(routes, body)
    if what == "unreadable":
        assert outcome.kind == "dead", (outcome, body[:300])
        assert not probe.handled and not probe.rejected and not probe.stores
    elif what == "invalid":
        assert not probe.handled, (outcome, body[:300])
        route = routes[RawEnvelope.model_validate_json(body).type]
        if route.on_invalid is None:
            assert outcome.kind == "dead", (outcome, body[:300])
        elif outcome.kind == "applied":
            # Applied only as a reasoned refusal: the rejector ran, nothing else was said.
            assert probe.rejected
            assert set(probe.emitted()) <= REJECTIONS, probe.emitted()
    else:
        assert not probe.rejected
        if outcome.kind in ("applied", "duplicate"):
            assert len(probe.handled) <= 1
            model = routes[RawEnvelope.model_validate_json(body).type].model
            assert all(isinstance(data, model) for data in probe.handled)
    return what


SEEN: dict[str, dict[str, dict[str, int]]] = {}  # topic -> body kind -> outcome -> count


@pytest.mark.parametrize("topic", sorted(CONTRACTS))
def test_every_message_is_applied_or_dead_lettered_with_a_reason(
    topic: str, probes: dict[str, Probe]
) -> None:
    workers = consumers_of(topic)
    routes_of = {w: probes[w].processor._routes for w in workers}

    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(body=bodies(topic))
    def run(body: bytes) -> None:
        for worker in workers:
            probe = probes[worker]
            probe.reset()
            outcome = asyncio.run(probe.processor.process(body))
            what = check(probe, routes_of[worker], body, outcome)
            tally = SEEN.setdefault(topic, {}).setdefault(what, {})
            tally[outcome.kind] = tally.get(outcome.kind, 0) + 1

    run()
    if any(topic in bound for bound in topics.SUBSCRIPTIONS.values()):
        # The examples reached the handlers of this topic's consumers, not only the parser
        # and the validation: the fuzzing is not vacuous.
        assert "valid" in SEEN[topic], SEEN[topic]
    else:
        assert SEEN[topic] == {"unreadable": SEEN[topic]["unreadable"]}  # no handler: dead


def test_a_body_over_the_limit_is_dead_at_once_without_parsing(probes: dict[str, Probe]) -> None:
    probe = probes[topics.ACCOUNT_MANAGER]
    probe.reset()
    body = b'{"specversion": "1.0", "data": "' + b"A" * DEFAULT_MAX_MESSAGE_BYTES + b'"}'
    outcome = asyncio.run(probe.processor.process(body))
    assert outcome == Outcome.dead(
        f"message of {len(body)} bytes is over the limit of {DEFAULT_MAX_MESSAGE_BYTES} bytes"
    )
    assert not probe.stores and not probe.handled
