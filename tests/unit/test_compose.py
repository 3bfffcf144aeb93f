"""compose.yaml, the broker definitions and the Postgres init script, checked without Docker.

The broker permissions are matched against the names ``shared.messaging.topology`` really
declares, and against every permission check the broker makes while a worker starts and
works (``tools.deploy_config.broker_accesses`` runs the real start-up code against a
recording channel). A permission is tested the way RabbitMQ applies it: ``re:run``, a
search, not a full match, so an unanchored pattern shows up as too broad.
"""

import copy
import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared import topics
from shared.messaging.topology import Names
from shared.settings import CommonSettings
from tools import deploy_config as dc

ROOT = Path(__file__).resolve().parents[2]
INFRA = {"rabbitmq", "postgres", "mailpit"}
CLUSTER_NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")  # the `cluster` profile adds two
DEPLOY_STEPS = {"topology"}
NAMES = Names()  # the names compose.yaml runs with (checked below)
DEFAULT_DELAYS = CommonSettings.model_construct().retry_delays
# Retry tiers the definitions must allow too: ONE_RETRY_DELAYS may change without them.
OTHER_DELAYS = ([0.3, 0.6], [2.5, 86400.0])


@cache
def compose() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return spec


@cache
def definitions() -> dict[str, Any]:
    defs: dict[str, Any] = json.loads(dc.DEFINITIONS.read_text())
    return defs


@cache
def accesses(worker: str, delays: tuple[float, ...]) -> tuple[dc.Access, ...]:
    return tuple(dc.broker_accesses(worker, NAMES, list(delays)))


def interpolate(value: Any, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR:-default}``, with the defaults unless ``env`` sets VAR."""
    env = env or {}
    return re.sub(
        r"\$\{([A-Za-z0-9_]+)(?::-([^}]*))?\}",
        lambda m: env.get(m[1], m[2] or ""),
        str(value),
    )


def variable(value: Any) -> tuple[str, str]:
    found = re.fullmatch(r"\$\{([A-Z0-9_]+):-([^}]*)\}", str(value))
    assert found, f"{value!r} is not ${{VAR:-default}}"
    return found[1], found[2]


def rabbit_allows(pattern: str, name: str) -> bool:
    # rabbit_auth_backend_internal: "" means "^$"; then re:run, which searches.
    return re.search(pattern or "^$", name) is not None


def user_permissions(defs: dict[str, Any], user: str) -> dict[str, str] | None:
    for entry in defs.get("permissions", []):
        if entry["user"] == user and entry["vhost"] == dc.VHOST:
            return {p: entry[p] for p in dc.PERMISSIONS}
    return None


# --- what the checks are made of (and shown to catch what they should) --------------------


def other_workers_queues(worker: str) -> list[str]:
    return [
        queue
        for other in topics.WORKERS
        if other != worker
        for queue in [
            NAMES.work_queue(other),
            *(NAMES.retry_queue(other, d) for d in DEFAULT_DELAYS),
        ]
    ]


def permission_problems(defs: dict[str, Any], worker: str) -> list[str]:  # noqa: C901 - a check a branch
    user = dc.amqp_user(worker)
    perms = user_permissions(defs, user)
    if perms is None:
        return [f"{user} has no permissions on vhost {dc.VHOST}"]
    problems = [
        f"{user} {p} {perms[p]!r} is not anchored (RabbitMQ searches)"
        for p in dc.PERMISSIONS
        if not (perms[p].startswith("^") and perms[p].endswith("$"))
    ]
    # Everything the worker does, for the default retry tiers and for others.
    for delays in (tuple(DEFAULT_DELAYS), *(tuple(d) for d in OTHER_DELAYS)):
        for access in accesses(worker, delays):
            if not rabbit_allows(perms[access.permission], access.name):
                problems.append(f"{user} lacks {access.permission} on {access.name}: {access.why}")
    # Nothing on another worker's queues, nor its retry exchange.
    for queue in other_workers_queues(worker):
        for p in dc.PERMISSIONS:
            if rabbit_allows(perms[p], queue):
                problems.append(f"{user} may {p} {queue}, another worker's queue")
    for other in topics.WORKERS:
        if other != worker and rabbit_allows(perms["write"], NAMES.retry_exchange(other)):
            problems.append(f"{user} may write {NAMES.retry_exchange(other)}")
    # Configures nothing (the deploy step declared everything), never writes the default
    # exchange (through which any queue could be written).
    if perms["configure"] != "^$":
        problems.append(f"{user} may configure {perms['configure']!r}")
    if rabbit_allows(perms["write"], dc.DEFAULT_EXCHANGE):
        problems.append(f"{user} may write {dc.DEFAULT_EXCHANGE}")
    # Reads only its own queues: not the dead letters, not the integration feed.
    own = NAMES.work_queue(worker)
    for queue in [NAMES.dead_letter_queue, NAMES.upstream_queue]:
        if rabbit_allows(perms["read"], queue):
            problems.append(f"{user} may read {queue}")
    # Names it never uses.
    strangers = [
        f"x{own}",
        f"{own}x",
        f"{own}.other",
        f"{NAMES.retry_queue(worker, 1.0)}.x",
        f"{NAMES.prefix}.retry",
        f"{NAMES.exchange}x",
        "amq.topic",
        "amq.gen-abc",
        "anything",
    ]
    for name in strangers:
        for p in dc.PERMISSIONS:
            if rabbit_allows(perms[p], name):
                problems.append(f"{user} may {p} {name!r}, which it never uses")
    return problems


def first_address(service: dict[str, Any]) -> Any:
    """The first broker address a worker of compose.yaml tries, split."""
    urls = interpolate(service["environment"]["ONE_AMQP_URLS"])
    return urlsplit(CommonSettings(amqp_urls=urls).broker_addresses[0])


def worker_problems(spec: dict[str, Any], worker: str) -> list[str]:
    service = spec.get("services", {}).get(worker)
    if service is None:
        return [f"no service {worker}"]
    problems: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"{worker}: {what}")

    expect(service.get("command") == ["python", "-m", f"services.{worker}"], "command")
    expect("build" in service, "built from the Dockerfile")
    expect(service.get("restart") in {"unless-stopped", "always", "on-failure"}, "restart")
    expect(bool(service.get("stop_grace_period")), "stop_grace_period")
    check = " ".join(map(str, service.get("healthcheck", {}).get("test", [])))
    for part in ("urllib.request", "127.0.0.1", "/healthz", "ONE_OPS_PORT", "'8000'"):
        expect(part in check, f"healthcheck has {part}")
    expect("curl" not in check and "wget" not in check, "healthcheck needs no curl")
    depends = service.get("depends_on", {})
    for infra in ("rabbitmq", "postgres"):
        expect(
            depends.get(infra, {}).get("condition") == "service_healthy",
            f"waits for {infra} healthy",
        )
    replicas = service.get("deploy", {}).get("replicas")
    pattern = r"\$\{" + dc.replicas_var(worker) + r":-[1-9][0-9]*\}"
    expect(
        re.fullmatch(pattern, str(replicas)) is not None,
        f"deploy.replicas is ${{{dc.replicas_var(worker)}:-N}}, got {replicas!r}",
    )

    env = service.get("environment", {})
    addresses = CommonSettings(amqp_urls=interpolate(env.get("ONE_AMQP_URLS", ""))).broker_addresses
    expect(
        [urlsplit(a).hostname for a in addresses] == list(CLUSTER_NODES),
        "AMQP addresses: every node of the cluster, the first node first",
    )
    for address in map(urlsplit, addresses):
        expect(address.username == dc.amqp_user(worker), f"AMQP user {dc.amqp_user(worker)}")
        expect(address.path == f"/{dc.VHOST}", "AMQP vhost")
        expect(address.password == dc.dev_amqp_secret(worker), "AMQP dev password as defined")
    expect(
        str(env.get("ONE_AMQP_URLS")).count(f"${{{dc.amqp_secret_var(worker)}:-") == 3,
        f"AMQP password from {dc.amqp_secret_var(worker)}",
    )
    expect(env.get("ONE_DATABASE_ROLE") == dc.db_role(worker), f"DB role {dc.db_role(worker)}")
    expect(
        str(env.get("ONE_DATABASE_PASSWORD", "")).startswith(f"${{{dc.db_secret_var(worker)}:-"),
        f"DB password from {dc.db_secret_var(worker)}",
    )
    db_url = urlsplit(str(env.get("ONE_DATABASE_URL", "")))
    expect(db_url.hostname == "postgres" and db_url.path == f"/{dc.DATABASE}", "database URL")
    expect(db_url.username is None, "database URL names no user")
    expect(env.get("ONE_DATABASE_ADMIN_URL") == "", "no admin URL: cannot create roles")
    expect(env.get("ONE_EXCHANGE") == NAMES.exchange, "exchange the definitions were made for")
    expect(env.get("ONE_TOPOLOGY_PREFIX") == NAMES.prefix, "prefix the definitions were made for")
    return problems


# --- compose.yaml -------------------------------------------------------------------------


def test_the_stack_is_the_three_services_the_deploy_step_and_every_worker() -> None:
    assert set(compose()["services"]) == INFRA | set(CLUSTER_NODES) | DEPLOY_STEPS | set(
        topics.WORKERS
    )


def test_the_topology_is_applied_by_the_admin_before_any_worker_starts() -> None:
    services = compose()["services"]
    step = services["topology"]
    assert step["command"] == ["python", "-m", "onectl", "topology", "apply"]
    assert step["restart"] == "no"
    assert step["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    amqp = urlsplit(interpolate(step["environment"]["ONE_AMQP_URL"]))
    assert (amqp.username, amqp.password, amqp.path) == (
        dc.ADMIN_USER,
        dc.DEV_ADMIN_SECRET,
        f"/{dc.VHOST}",
    )
    for worker in topics.WORKERS:
        assert services[worker]["depends_on"]["topology"] == {
            "condition": "service_completed_successfully"
        }


@pytest.mark.parametrize("worker", topics.WORKERS)
def test_worker_service(worker: str) -> None:
    assert worker_problems(compose(), worker) == []


def test_a_missing_worker_is_caught() -> None:
    spec = copy.deepcopy(compose())
    del spec["services"][topics.ACCOUNT_MANAGER]
    assert worker_problems(spec, topics.ACCOUNT_MANAGER) == ["no service account_manager"]


def test_a_shared_or_wrong_credential_is_caught() -> None:
    spec = copy.deepcopy(compose())
    env = spec["services"][topics.ORDER_INTAKE]["environment"]
    env["ONE_AMQP_URLS"] = "amqp://guest:guest@rabbitmq:5672/"
    env["ONE_DATABASE_ADMIN_URL"] = "postgresql://postgres@postgres:5432/postgres"
    spec["services"][topics.ORDER_INTAKE]["deploy"] = {"replicas": 1}
    problems = worker_problems(spec, topics.ORDER_INTAKE)
    assert any("AMQP user" in p for p in problems)
    assert any("admin URL" in p for p in problems)
    assert any("replicas" in p for p in problems)


def test_workers_share_no_credentials() -> None:
    services = compose()["services"]
    urls = [first_address(services[w]) for w in topics.WORKERS]
    envs = [services[w]["environment"] for w in topics.WORKERS]
    assert len({u.username for u in urls}) == len(topics.WORKERS)
    assert len({u.password for u in urls}) == len(topics.WORKERS)
    assert len({e["ONE_DATABASE_ROLE"] for e in envs}) == len(topics.WORKERS)
    assert len({e["ONE_DATABASE_PASSWORD"] for e in envs}) == len(topics.WORKERS)


def test_replicas_follow_the_environment() -> None:
    for worker in topics.WORKERS:
        replicas = compose()["services"][worker]["deploy"]["replicas"]
        assert interpolate(replicas) == "1"
        assert interpolate(replicas, {dc.replicas_var(worker): "3"}) == "3"


def test_the_cluster_profile_adds_two_nodes_that_join_the_first() -> None:
    services = compose()["services"]
    conf = (ROOT / "deploy" / "rabbitmq" / "cluster.conf").read_text()
    peers = re.findall(
        r"^cluster_formation\.classic_config\.nodes\.\d+ = rabbit@(\S+)$", conf, re.M
    )
    assert peers == list(CLUSTER_NODES)
    cookies = set()
    for node in CLUSTER_NODES:
        service = services[node]
        assert service["hostname"] == node  # the node name rabbit@<hostname> peers look for
        assert service.get("profiles") == (None if node == "rabbitmq" else ["cluster"])
        assert any("cluster.conf:/etc/rabbitmq/conf.d/" in v for v in service["volumes"]), node
        cookies.add(interpolate(service["environment"]["RABBITMQ_ERLANG_COOKIE"]))
    assert len(cookies) == 1  # one cookie, or the nodes cannot talk


def test_every_service_has_a_healthcheck_and_a_restart_policy() -> None:
    for name, service in compose()["services"].items():
        if name in DEPLOY_STEPS:  # runs once, then exits
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, name
        assert service.get("restart") == "unless-stopped", name


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def _run_healthcheck(port: int) -> int:
    test = compose()["services"][topics.ORDER_INTAKE]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    done = subprocess.run(
        [sys.executable, "-c", test[3]],
        env={"ONE_OPS_PORT": str(port)},
        capture_output=True,
        timeout=20,
    )
    return done.returncode


def test_the_worker_healthcheck_command_really_checks(health_server: Any) -> None:
    port, handler = health_server
    assert _run_healthcheck(port) == 0
    handler.status = 503
    assert _run_healthcheck(port) != 0


def test_every_worker_waits_for_the_broker_and_the_database_and_dispatch_for_mail() -> None:
    services = compose()["services"]
    assert services[topics.CREDENTIAL_DISPATCH]["depends_on"]["mailpit"] == {
        "condition": "service_healthy"
    }


def test_mailpit_serves_its_web_ui_and_takes_the_mail() -> None:
    mailpit = compose()["services"]["mailpit"]
    published = {interpolate(p).rsplit(":", 1)[1]: interpolate(p) for p in mailpit["ports"]}
    assert published["8025"].startswith("8025:")  # the web UI
    assert "1025" in published
    env = compose()["services"][topics.CREDENTIAL_DISPATCH]["environment"]
    assert interpolate(env["ONE_SMTP_HOST"]) == "mailpit"
    assert interpolate(env["ONE_SMTP_PORT"]) == "1025"
    assert env["ONE_CHROMIUM_PATH"] == "/usr/bin/chromium"


def test_directory_sync_reads_the_feed_from_a_volume() -> None:
    service = compose()["services"][topics.DIRECTORY_SYNC]
    feed = service["environment"]["ONE_FEED_DIR"]
    targets = [interpolate(v).split(":")[1] for v in service["volumes"]]
    assert feed in targets


def test_rabbitmq_loads_the_definitions() -> None:
    rabbit = compose()["services"]["rabbitmq"]
    assert rabbit["image"] == "rabbitmq:3.10-management"
    mounts = dict(interpolate(v).split(":")[:2] for v in rabbit["volumes"])
    conf = (ROOT / "deploy/rabbitmq/rabbitmq.conf").read_text()
    loaded = re.search(r"^load_definitions\s*=\s*(\S+)", conf, re.M)
    assert loaded
    assert mounts["./deploy/rabbitmq/definitions.json"] == loaded[1]
    assert mounts["./deploy/rabbitmq/rabbitmq.conf"].startswith("/etc/rabbitmq/conf.d/")


def test_postgres_runs_the_init_script_with_each_workers_password() -> None:
    services = compose()["services"]
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15"
    env = postgres["environment"]
    assert env.get("POSTGRES_HOST_AUTH_METHOD") != "trust"
    assert env["POSTGRES_DB"] == dc.DATABASE
    mounts = dict(interpolate(v).split(":")[:2] for v in postgres["volumes"])
    assert mounts["./deploy/postgres/init.sql"].startswith("/docker-entrypoint-initdb.d/")
    for worker in topics.WORKERS:
        # The very same expression (variable and dev default) as the worker logs in with.
        worker_env = services[worker]["environment"]
        assert env[dc.db_secret_var(worker)] == worker_env["ONE_DATABASE_PASSWORD"]
        assert variable(env[dc.db_secret_var(worker)]) == (
            dc.db_secret_var(worker),
            dc.dev_db_secret(worker),
        )
    assert "-h" in postgres["healthcheck"]["test"]  # not healthy while init.sql runs


# --- deploy/postgres/init.sql -------------------------------------------------------------


def test_init_sql_gives_each_worker_its_role_and_its_schema_and_nothing_to_public() -> None:
    sql = dc.INIT_SQL.read_text()
    assert re.search(rf"^REVOKE ALL ON DATABASE {dc.DATABASE} FROM PUBLIC;$", sql, re.M)
    assert re.search(r"^REVOKE CREATE ON SCHEMA public FROM PUBLIC;$", sql, re.M)
    for worker in topics.WORKERS:
        role = dc.db_role(worker)
        assert re.search(rf"^\\getenv (\w+) {dc.db_secret_var(worker)}$", sql, re.M), worker
        assert re.search(rf"^CREATE ROLE {role} LOGIN PASSWORD :'\w+';$", sql, re.M), worker
        assert re.search(rf"^CREATE SCHEMA {worker} AUTHORIZATION {role};$", sql, re.M), worker
        assert re.search(rf"^REVOKE ALL ON SCHEMA {worker} FROM PUBLIC;$", sql, re.M), worker
        assert re.search(rf"^GRANT CONNECT ON DATABASE {dc.DATABASE} TO {role};$", sql, re.M)
    assert "SUPERUSER" not in sql and "CREATEROLE" not in sql and "CREATEDB" not in sql


# --- deploy/rabbitmq/definitions.json -----------------------------------------------------


def test_committed_files_are_what_the_code_says() -> None:
    """Fails when topics, topology or the worker list change without
    `python -m tools.deploy_config` being run."""
    assert definitions() == dc.definitions(), "run: python -m tools.deploy_config"
    assert dc.INIT_SQL.read_text() == dc.init_sql(), "run: python -m tools.deploy_config"


def test_users_and_their_dev_passwords() -> None:
    users = {u["name"]: u for u in definitions()["users"]}
    assert "guest" not in users
    assert [v["name"] for v in definitions()["vhosts"]] == [dc.VHOST]
    services = compose()["services"]
    for worker in topics.WORKERS:
        user = users[dc.amqp_user(worker)]
        assert user["tags"] == []
        assert user["hashing_algorithm"] == dc.HASHING
        password = first_address(services[worker]).password
        assert password and dc.hash_matches(user["password_hash"], password), worker
    assert users[dc.ADMIN_USER]["tags"] == ["administrator"]
    assert dc.hash_matches(users[dc.ADMIN_USER]["password_hash"], dc.DEV_ADMIN_SECRET)


@pytest.mark.parametrize("worker", topics.WORKERS)
def test_worker_may_do_what_it_does_and_nothing_on_other_queues(worker: str) -> None:
    assert permission_problems(definitions(), worker) == []


@pytest.mark.parametrize("worker", topics.WORKERS)
def test_worker_reads_its_own_queues_and_not_another_workers(worker: str) -> None:
    read = user_permissions(definitions(), dc.amqp_user(worker))
    assert read is not None
    assert re.fullmatch(read["read"], NAMES.work_queue(worker))
    assert not any(rabbit_allows(read["read"], q) for q in other_workers_queues(worker))
    # Its retry tiers dead-letter back to its queue by themselves: it never reads them.
    assert not any(
        rabbit_allows(read["read"], NAMES.retry_queue(worker, d)) for d in DEFAULT_DELAYS
    )


@pytest.mark.parametrize(
    ("permission", "pattern"),
    [
        ("read", ".*"),
        ("configure", ".*"),
        ("write", ".*"),
        ("read", "^one\\..*$"),
        ("read", "one\\.order_intake"),  # unanchored: RabbitMQ searches
        ("write", "^(?:one\\.events|one\\.order_intake|one\\.account_manager)$"),
        ("write", "^(?:one\\.events|one\\.dead|one\\.order_intake\\.retry|amq\\.default)$"),
        ("configure", "^one\\.order_intake$"),
    ],
)
def test_a_permission_too_broad_is_caught(permission: str, pattern: str) -> None:
    defs = copy.deepcopy(definitions())
    for entry in defs["permissions"]:
        if entry["user"] == dc.amqp_user(topics.ORDER_INTAKE):
            entry[permission] = pattern
    assert permission_problems(defs, topics.ORDER_INTAKE) != []


def test_a_permission_too_narrow_or_a_missing_user_is_caught() -> None:
    defs = copy.deepcopy(definitions())
    for entry in defs["permissions"]:
        if entry["user"] == dc.amqp_user(topics.ORDER_INTAKE):
            entry["write"] = "^one\\.events$"  # no retries, no dead letters
    problems = permission_problems(defs, topics.ORDER_INTAKE)
    assert any("lacks write on one.order_intake.retry" in p for p in problems)
    assert any("lacks write on one.dead" in p for p in problems)
    defs["permissions"] = [
        e for e in defs["permissions"] if e["user"] != dc.amqp_user(topics.ORDER_INTAKE)
    ]
    assert permission_problems(defs, topics.ORDER_INTAKE) != []


def test_the_trace_follows_the_real_topology() -> None:
    """The recorded start-up is the real one, once the deploy step ran: the worker
    configures nothing, consumes its own queue, and publishes to the events exchange, its
    retry exchange and the dead-letter exchange, all of them in the plan."""
    from shared.messaging.topology import all_exchange_names

    exchanges = set(all_exchange_names(NAMES))
    for worker in topics.WORKERS:
        done = accesses(worker, tuple(DEFAULT_DELAYS))
        assert not [a for a in done if a.permission == "configure"]
        assert {a.name for a in done if a.permission == "read"} == {NAMES.work_queue(worker)}
        written = {a.name for a in done if a.permission == "write"}
        assert written == {NAMES.exchange, NAMES.dead_exchange, NAMES.retry_exchange(worker)}
        assert written <= exchanges


def test_the_definitions_carry_the_whole_topology() -> None:
    """What onectl topology apply declares, the broker starts with: every queue with its
    arguments, every exchange, every binding (a worker's subscriptions among them)."""
    from shared.messaging.topology import plan

    wanted = plan(NAMES, delivery_limit=5, retry_delays=DEFAULT_DELAYS)
    defs = definitions()
    queues = {q["name"]: q["arguments"] for q in defs["queues"]}
    assert queues == {q.name: q.arguments for q in wanted.queues}
    assert {e["name"]: e["type"] for e in defs["exchanges"]} == {
        e.name: e.type.value for e in wanted.exchanges
    }
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in defs["bindings"]}
    for worker in topics.WORKERS:
        for topic in topics.SUBSCRIPTIONS[worker]:
            assert (NAMES.exchange, NAMES.work_queue(worker), topic) in bindings
    dead = queues[NAMES.dead_letter_queue]
    assert dead["x-max-length"] > 0 and dead["x-message-ttl"] > 0  # bounded
    assert dead["x-overflow"] == "drop-head"


def topic_write(user: str) -> str:
    [entry] = [t for t in definitions()["topic_permissions"] if t["user"] == user]
    assert entry["exchange"] == NAMES.exchange and entry["read"] == "^$"
    return str(entry["write"])


EVERY_TOPIC = sorted(
    {t for subs in topics.SUBSCRIPTIONS.values() for t in subs}
    | {t for pubs in topics.PUBLICATIONS.values() for t in pubs}
    | {topics.DIRECTORY_SYNC_APPROVE_REQUESTED, "anything", "order.received.x", ""}
)


@pytest.mark.parametrize("worker", topics.WORKERS)
def test_a_worker_publishes_its_own_events_only(worker: str) -> None:
    write = topic_write(dc.amqp_user(worker))
    allowed = {t for t in EVERY_TOPIC if rabbit_allows(write, t)}
    assert allowed == set(topics.PUBLICATIONS[worker])


def test_the_ent_publishes_its_commands_and_the_order_system_its_orders_and_cancellations() -> None:
    ent = {t for t in EVERY_TOPIC if rabbit_allows(topic_write(dc.ENT_USER), t)}
    assert ent == set(topics.ENT_COMMANDS)
    # Every command (*.requested) and account.activated; no event, no order.
    commands = {t for t in EVERY_TOPIC if t.endswith(".requested")}
    assert ent == commands | {topics.ACCOUNT_ACTIVATED}
    assert topics.ACCOUNTS_CREATED not in ent and topics.ORDER_RECEIVED not in ent
    orders = {t for t in EVERY_TOPIC if rabbit_allows(topic_write(dc.ORDERS_USER), t)}
    assert orders == {topics.ORDER_RECEIVED, topics.ORDER_CANCELLED}
    for user in (dc.ENT_USER, dc.ORDERS_USER):
        perms = user_permissions(definitions(), user)
        assert perms == {"configure": "^$", "write": "^one\\.events$", "read": "^$"}


def test_integration_user_reads_the_feed_only() -> None:
    perms = user_permissions(definitions(), dc.INTEGRATION_USER)
    assert perms is not None
    assert rabbit_allows(perms["read"], NAMES.upstream_queue)
    assert not rabbit_allows(perms["write"], NAMES.exchange)
    for queue in [NAMES.work_queue(w) for w in topics.WORKERS] + [NAMES.dead_letter_queue]:
        assert not any(rabbit_allows(perms[p], queue) for p in dc.PERMISSIONS)
    assert not rabbit_allows(perms["configure"], NAMES.upstream_queue)
    assert not rabbit_allows(perms["write"], dc.DEFAULT_EXCHANGE)


# --- Dockerfile ---------------------------------------------------------------------------


def test_the_image_runs_every_worker_as_a_non_root_user_with_chromium() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    assert re.search(r"apt-get install .*\bchromium\b", dockerfile)
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    for folder in ("shared", "services"):
        assert re.search(rf"^COPY {folder} ", dockerfile, re.M)
