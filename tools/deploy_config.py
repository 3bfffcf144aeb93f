"""The deployment files that must stay true to the code, generated from it.

- ``deploy/rabbitmq/definitions.json``: the ``one`` vhost and its whole topology (every
  exchange, queue and binding of ``topology.plan``, as ``onectl topology apply`` declares
  them), one broker user per worker allowed exactly what that worker does and, on the
  events exchange, to publish only the routing keys it publishes (topic permissions), an
  ``admin`` (the management UI, the deploy step, onectl), ``one_ent`` for the ENT's apps
  (may publish their commands only), ``one_orders`` for the order system (may publish
  ``order.received`` only) and ``one_integration`` for the upstream systems (may read
  the integration feed only).
- ``deploy/postgres/init.sql``: one login role ``one_<worker>`` and one schema per worker,
  nothing for PUBLIC, passwords taken from the container's environment; the group role
  ``one_ops`` (onectl's readers) and, per worker, the ``<worker>_ops`` schema it may read,
  owned by the worker, whose migrations put read-only views in it.

    python -m tools.deploy_config            # rewrite both files (dev passwords)
    python -m tools.deploy_config --check    # exit 1 when they differ from what the code says
    python -m tools.deploy_config --passwords-from-env --definitions /secure/definitions.json

The broker permissions are not written by hand. Each worker's broker start-up
(``topology.open_worker`` as it runs once the deploy step declared the topology,
``open_publisher``, ``QueueConsumer.start``) and its three kinds of publish (an outbox
event, a retry, a dead letter) are run against a recording fake channel, and each call
is mapped to the check RabbitMQ makes for it (rabbit_channel and rabbit_access_control,
3.10):

| call                                   | configure | write          | read     |
|----------------------------------------|-----------|----------------|----------|
| exchange.declare                       | exchange  |                |          |
| exchange.declare, passive              |           |                |          |
| queue.declare (new)                    | queue     | its DLX, if any| the queue, if it has a DLX |
| queue.declare, passive                 |           |                |          |
| queue.bind                             |           | queue          | exchange |
| basic.publish                          |           | exchange       |          |
| basic.consume                          |           |                | queue    |

The default exchange ``""`` is checked under the name ``amq.default``: no worker writes it
(through it, any queue could be written). On a topic exchange, a publish is also checked
against the user's topic permission (its routing key) and a binding against its read
pattern. RabbitMQ matches a permission with ``re:run`` (a search, not a full match), so
every pattern here is anchored.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika

from shared import topics
from shared.db import OPS_ROLE, ops_schema
from shared.messaging import topology
from shared.messaging.consumer import QueueConsumer
from shared.messaging.publisher import Outgoing, open_publisher
from shared.messaging.topology import Names
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"
INIT_SQL = ROOT / "deploy" / "postgres" / "init.sql"

VHOST = "one"
DATABASE = "one"
DEFAULT_EXCHANGE = "amq.default"  # the name "" is checked under
PERMISSIONS = ("configure", "write", "read")
ADMIN_USER = "admin"
ENT_USER = "one_ent"
ORDERS_USER = "one_orders"
INTEGRATION_USER = "one_integration"
HASHING = "rabbit_password_hashing_sha256"


# Names shared with compose.yaml (tests/unit/test_compose.py holds them together).
def amqp_user(worker: str) -> str:
    return f"one_{worker}"


def db_role(worker: str) -> str:
    return f"one_{worker}"  # shared.worker.Worker.database's default


def amqp_secret_var(worker: str) -> str:
    return f"{worker.upper()}_AMQP_PASSWORD"


def db_secret_var(worker: str) -> str:
    return f"{worker.upper()}_DB_PASSWORD"


def replicas_var(worker: str) -> str:
    return f"{worker.upper()}_REPLICAS"


def dev_amqp_secret(worker: str) -> str:
    return f"{worker}-amqp-dev"


def dev_db_secret(worker: str) -> str:
    return f"{worker}-db-dev"


# Names of variables, and dev defaults meant to be public: production sets its own.
ADMIN_SECRET_VAR = "RABBITMQ_ADMIN_PASSWORD"  # noqa: S105
INTEGRATION_SECRET_VAR = "INTEGRATION_AMQP_PASSWORD"  # noqa: S105
ENT_SECRET_VAR = "ENT_AMQP_PASSWORD"  # noqa: S105
ORDERS_SECRET_VAR = "ORDERS_AMQP_PASSWORD"  # noqa: S105
DEV_ADMIN_SECRET = "admin-dev"  # noqa: S105
DEV_INTEGRATION_SECRET = "integration-amqp-dev"  # noqa: S105
DEV_ENT_SECRET = "ent-amqp-dev"  # noqa: S105
DEV_ORDERS_SECRET = "orders-amqp-dev"  # noqa: S105


# --- what a worker does on the broker -----------------------------------------------------


@dataclass(frozen=True, order=True)
class Access:
    permission: str  # configure | write | read
    kind: str  # exchange | queue
    name: str  # as RabbitMQ checks it
    why: str


class _Recorder:
    def __init__(self) -> None:
        self.accesses: list[Access] = []

    def need(self, permission: str, kind: str, name: str, why: str) -> None:
        if kind == "exchange" and name == "":
            name = DEFAULT_EXCHANGE
        self.accesses.append(Access(permission, kind, name, why))


def _name(thing: Any) -> str:
    return thing if isinstance(thing, str) else str(thing.name)


class _Exchange:
    def __init__(self, recorder: _Recorder, name: str) -> None:
        self._recorder = recorder
        self.name = name

    async def publish(self, message: Any, routing_key: str, **_: Any) -> None:
        self._recorder.need("write", "exchange", self.name, f"basic.publish {routing_key}")


class _Queue:
    def __init__(self, recorder: _Recorder, name: str) -> None:
        self._recorder = recorder
        self.name = name

    async def bind(self, exchange: Any, routing_key: str | None = None, **_: Any) -> None:
        why = f"queue.bind {self.name} <- {_name(exchange)} ({routing_key})"
        self._recorder.need("write", "queue", self.name, why)
        self._recorder.need("read", "exchange", _name(exchange), why)

    async def consume(self, callback: Any, **_: Any) -> str:
        self._recorder.need("read", "queue", self.name, "basic.consume")
        return "ctag"

    async def cancel(self, tag: str, **_: Any) -> None:
        return None


class _Channel:
    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder

    @property
    def default_exchange(self) -> _Exchange:
        return _Exchange(self._recorder, "")

    async def set_qos(self, **_: Any) -> None:
        return None

    async def declare_exchange(
        self,
        name: str,
        type: Any = None,
        *,
        passive: bool = False,
        arguments: dict[str, Any] | None = None,
        **_: Any,
    ) -> _Exchange:
        if not passive:
            self._recorder.need("configure", "exchange", name, "exchange.declare")
            alternate = (arguments or {}).get("alternate-exchange")
            if alternate is not None:
                self._recorder.need("write", "exchange", alternate, f"alternate of {name}")
                self._recorder.need("read", "exchange", name, "exchange.declare with AE")
        return _Exchange(self._recorder, name)

    async def get_exchange(self, name: str, *, ensure: bool = True) -> _Exchange:
        return await self.declare_exchange(name, passive=True)

    async def declare_queue(
        self,
        name: str,
        *,
        passive: bool = False,
        arguments: dict[str, Any] | None = None,
        **_: Any,
    ) -> _Queue:
        if not passive:
            self._recorder.need("configure", "queue", name, "queue.declare")
            dlx = (arguments or {}).get("x-dead-letter-exchange")
            if dlx is not None:
                why = f"queue.declare {name} with dead-letter exchange {dlx!r}"
                self._recorder.need("read", "queue", name, why)
                self._recorder.need("write", "exchange", dlx, why)
        return _Queue(self._recorder, name)

    async def get_queue(self, name: str, *, ensure: bool = True) -> _Queue:
        return await self.declare_queue(name, passive=True)


class _Connection:
    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder

    async def channel(self, *_: Any, **__: Any) -> _Channel:
        return _Channel(self._recorder)


async def _trace(worker: str, names: Names, settings: CommonSettings) -> list[Access]:
    recorder = _Recorder()
    connection = _Connection(recorder)
    queue = await topology.open_worker(
        connection,  # type: ignore[arg-type]
        names,
        worker,
        delivery_limit=settings.delivery_limit,
        retry_delays=settings.retry_delays,
        prefetch=settings.prefetch,
    )
    publisher = await open_publisher(connection, names.exchange)  # type: ignore[arg-type]
    consumer = QueueConsumer(
        queue,
        None,  # type: ignore[arg-type]  # the processor is not reached by start()
        publisher,
        names=names,
        worker=worker,
        retry_policy=settings.message_retry,
    )
    await consumer.start()
    # The outbox relay publishes every event with Publisher.publish; QueueConsumer parks a
    # retry in a tier of its retry exchange and a poison message in the dead-letter
    # exchange with Publisher.send.
    await publisher.publish(Outgoing("any.topic", "id", "corr", b"{}"))
    for delay in settings.retry_delays:
        tier = names.retry_queue(worker, delay)
        await publisher.send(names.retry_exchange(worker), tier, aio_pika.Message(b""))
    await publisher.send(names.dead_exchange, "any.topic", aio_pika.Message(b""))
    return sorted(set(recorder.accesses))


def broker_accesses(
    worker: str, names: Names | None = None, retry_delays: list[float] | None = None
) -> list[Access]:
    """Every permission check the broker makes while ``worker`` starts and works, with the
    settings' defaults (not the caller's ONE_* environment)."""
    settings = CommonSettings.model_construct()
    if retry_delays is not None:
        settings = CommonSettings.model_construct(retry_delays=retry_delays)
    return asyncio.run(_trace(worker, names or Names(), settings))


# --- permissions --------------------------------------------------------------------------


def _retry_stem(names: Names, worker: str) -> str:
    sample = names.retry_queue(worker, 1.0)
    stem = sample.removesuffix("1000")
    assert stem != sample, "retry queue names no longer end in their delay in ms"
    return stem


def _pattern(resource_names: Iterable[str], retry_stem: str) -> str:
    parts = set()
    for name in resource_names:
        if name.startswith(retry_stem) and name[len(retry_stem) :].isdigit():
            # Any tier, so that ONE_RETRY_DELAYS can change without new definitions.
            parts.add(re.escape(retry_stem) + "[0-9]+")
        else:
            parts.add(re.escape(name))
    if not parts:
        return "^$"
    return "^(?:" + "|".join(sorted(parts)) + ")$"


def worker_permissions(worker: str, names: Names | None = None) -> dict[str, str]:
    names = names or Names()
    accesses = broker_accesses(worker, names)
    stem = _retry_stem(names, worker)
    return {
        permission: _pattern({a.name for a in accesses if a.permission == permission}, stem)
        for permission in PERMISSIONS
    }


def integration_permissions(names: Names | None = None) -> dict[str, str]:
    """Upstream systems: read the integration feed, nothing else."""
    names = names or Names()
    return {"configure": "^$", "write": "^$", "read": f"^{re.escape(names.upstream_queue)}$"}


def publisher_permissions(names: Names | None = None) -> dict[str, str]:
    """The ENT's apps and the order system: publish to the events exchange, nothing else
    (what they may publish there, their topic permission says)."""
    names = names or Names()
    return {"configure": "^$", "write": f"^{re.escape(names.exchange)}$", "read": "^$"}


def _keys(routing_keys: Iterable[str]) -> str:
    return "^(?:" + "|".join(sorted(re.escape(key) for key in set(routing_keys))) + ")$"


def topic_permissions(names: Names | None = None) -> dict[str, dict[str, str]]:
    """On the events exchange, the routing keys each user may publish: a worker its own
    events, one_ent the ENT's commands, one_orders the orders; nobody binds there but the
    deploy step (read: none)."""
    names = names or Names()
    wanted = {amqp_user(w): _keys(topics.PUBLICATIONS[w]) for w in topics.WORKERS}
    wanted[ENT_USER] = _keys(topics.ENT_COMMANDS)
    wanted[ORDERS_USER] = _keys(topics.ORDER_COMMANDS)
    return {
        user: {"exchange": names.exchange, "write": w, "read": "^$"} for user, w in wanted.items()
    }


# --- definitions --------------------------------------------------------------------------


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def hash_matches(hashed: str, password: str) -> bool:
    raw = base64.b64decode(hashed)
    return password_hash(password, raw[:4]) == hashed


def _dev_salt(user: str) -> bytes:
    # Dev files are committed and compared with the generator: a stable salt for them.
    # Production definitions (--passwords-from-env) get a random one.
    return hashlib.sha256(f"one-dev-salt:{user}".encode()).digest()[:4]


def dev_passwords() -> dict[str, str]:
    found = {amqp_user(w): dev_amqp_secret(w) for w in topics.WORKERS}
    found[ADMIN_USER] = DEV_ADMIN_SECRET
    found[INTEGRATION_USER] = DEV_INTEGRATION_SECRET
    found[ENT_USER] = DEV_ENT_SECRET
    found[ORDERS_USER] = DEV_ORDERS_SECRET
    return found


def env_passwords(environ: dict[str, str]) -> dict[str, str]:
    variables = {amqp_user(w): amqp_secret_var(w) for w in topics.WORKERS}
    variables[ADMIN_USER] = ADMIN_SECRET_VAR
    variables[INTEGRATION_USER] = INTEGRATION_SECRET_VAR
    variables[ENT_USER] = ENT_SECRET_VAR
    variables[ORDERS_USER] = ORDERS_SECRET_VAR
    missing = [var for var in variables.values() if not environ.get(var)]
    if missing:
        raise SystemExit(f"missing passwords: {', '.join(missing)}")
    return {user: environ[var] for user, var in variables.items()}


def _topology(names: Names, vhost: str) -> dict[str, list[dict[str, Any]]]:
    """``topology.plan`` with the settings' defaults, as RabbitMQ definitions."""
    settings = CommonSettings.model_construct()
    wanted = topology.plan(
        names, delivery_limit=settings.delivery_limit, retry_delays=settings.retry_delays
    )
    return {
        "exchanges": [
            {
                "name": e.name,
                "vhost": vhost,
                "type": e.type.value,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for e in wanted.exchanges
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": q.arguments,
            }
            for q in wanted.queues
        ],
        "bindings": [
            {
                "source": b.exchange,
                "vhost": vhost,
                "destination": b.queue,
                "destination_type": "queue",
                "routing_key": b.routing_key,
                "arguments": {},
            }
            for b in wanted.bindings
        ],
    }


def definitions(
    names: Names | None = None,
    passwords: dict[str, str] | None = None,
    salt: Callable[[str], bytes | None] = _dev_salt,
    *,
    vhost: str = VHOST,
    user: Callable[[str], str] = lambda name: name,
) -> dict[str, Any]:
    """The broker's definitions: users, their permissions and topic permissions, the vhost
    and its topology. ``user`` renames the users (a test's own, on a shared broker)."""
    names = names or Names()
    passwords = passwords or dev_passwords()
    permissions: dict[str, dict[str, str]] = {
        ADMIN_USER: {"configure": ".*", "write": ".*", "read": ".*"},
        **{amqp_user(w): worker_permissions(w, names) for w in topics.WORKERS},
        ENT_USER: publisher_permissions(names),
        ORDERS_USER: publisher_permissions(names),
        INTEGRATION_USER: integration_permissions(names),
    }
    tags = {ADMIN_USER: ["administrator"]}
    return {
        "rabbit_version": "3.10.0",
        "users": [
            {
                "name": user(name),
                "password_hash": password_hash(passwords[name], salt(name)),
                "hashing_algorithm": HASHING,
                "tags": tags.get(name, []),
                "limits": {},
            }
            for name in permissions
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": user(name), "vhost": vhost, **perms} for name, perms in permissions.items()
        ],
        "topic_permissions": [
            {"user": user(name), "vhost": vhost, **perms}
            for name, perms in topic_permissions(names).items()
        ],
        "parameters": [],
        "global_parameters": [],
        "policies": [],
        # What onectl topology apply declares: the broker starts with all of it.
        **_topology(names, vhost),
    }


def render_definitions(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# --- Postgres -----------------------------------------------------------------------------


def _ident(name: str) -> str:
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), name
    return name


def init_sql() -> str:
    db = _ident(DATABASE)
    lines = [
        "-- Generated by `python -m tools.deploy_config` from shared.topics.WORKERS: edit that,",
        "-- not this file. Run once by the postgres image on an empty data directory, as the",
        f"-- superuser, in database {db} (POSTGRES_DB). Each worker gets its own login role and",
        "-- its own schema; the workers get no admin URL, so they cannot create roles.",
        "-- Passwords come from the container's environment (psql 15 \\getenv): an unset one",
        "-- leaves its variable unset and the script stops on a syntax error.",
        "\\set ON_ERROR_STOP on",
        "",
        f"REVOKE ALL ON DATABASE {db} FROM PUBLIC;",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        *_ops_role_sql(db),
    ]
    for worker in topics.WORKERS:
        lines += ["", *_worker_sql(db, worker)]
    return "\n".join(lines) + "\n"


def _ops_role_sql(db: str) -> list[str]:
    ops = _ident(OPS_ROLE)
    return [
        "",
        "-- onectl's readers. No login of its own: each operator logs in as themselves, a",
        "-- member of it (their name in the server's log and pg_stat_activity, no shared",
        "-- password to change when one leaves):",
        f"--   CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE {ops};",
        "-- It may read the <worker>_ops views (the workers' migrations grant them), and no",
        "-- worker's own schema.",
        f"CREATE ROLE {ops} NOLOGIN;",
        f"GRANT CONNECT ON DATABASE {db} TO {ops};",
    ]


def _worker_sql(db: str, worker: str) -> list[str]:
    role, schema, var = _ident(db_role(worker)), _ident(worker), f"{worker}_password"
    ops_views = _ident(ops_schema(worker))
    return [
        f"-- {worker}",
        f"\\getenv {var} {db_secret_var(worker)}",
        f"CREATE ROLE {role} LOGIN PASSWORD :'{var}';",
        f"GRANT CONNECT ON DATABASE {db} TO {role};",
        f"CREATE SCHEMA {schema} AUTHORIZATION {role};",
        f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;",
        f"ALTER ROLE {role} SET search_path = {schema};",
        f"CREATE SCHEMA {ops_views} AUTHORIZATION {role};",
        f"GRANT USAGE ON SCHEMA {ops_views} TO {_ident(OPS_ROLE)};",
    ]


# --- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ")
    parser.add_argument("--exchange", default=Names().exchange)
    parser.add_argument("--prefix", default=Names().prefix)
    parser.add_argument(
        "--passwords-from-env",
        action="store_true",
        help=f"read {amqp_secret_var('<WORKER>')}, {ADMIN_SECRET_VAR}, "
        f"{INTEGRATION_SECRET_VAR}, {ENT_SECRET_VAR}, {ORDERS_SECRET_VAR}; random salts",
    )
    parser.add_argument("--definitions", type=Path, default=DEFINITIONS)
    parser.add_argument("--init-sql", type=Path, default=INIT_SQL)
    args = parser.parse_args(argv)

    names = Names(exchange=args.exchange, prefix=args.prefix)
    if args.passwords_from_env:
        data = definitions(names, env_passwords(dict(os.environ)), salt=lambda _user: None)
    else:
        data = definitions(names)
    wanted = {args.definitions: render_definitions(data), args.init_sql: init_sql()}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path} differs from the code: run python -m tools.deploy_config")
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
