"""Where the tests find RabbitMQ and Postgres.

In order: URLs given in ``ONE_TEST_AMQP_URL`` / ``ONE_TEST_ADMIN_URL``; containers from
testcontainers when a Docker engine answers; the local services on 127.0.0.1. When none
is reachable the tests skip, except under ``CI=true`` where they fail.
"""

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest


@dataclass(frozen=True)
class Services:
    amqp_url: str
    admin_url: str  # a superuser on the maintenance database
    origin: str

    @property
    def pg_host(self) -> str:
        return urlsplit(self.admin_url).hostname or "127.0.0.1"

    @property
    def pg_port(self) -> int:
        return urlsplit(self.admin_url).port or 5432

    def database_url(self, name: str) -> str:
        return f"postgresql://{self.pg_host}:{self.pg_port}/{name}"


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _from_containers() -> tuple[Services, list[object]]:
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    postgres = PostgresContainer("postgres:15", username="postgres", password="postgres")
    rabbit = RabbitMqContainer("rabbitmq:3.10")
    postgres.start()
    rabbit.start()
    pg_host, pg_port = postgres.get_container_host_ip(), postgres.get_exposed_port(5432)
    mq_host, mq_port = rabbit.get_container_host_ip(), rabbit.get_exposed_port(5672)
    services = Services(
        amqp_url=f"amqp://guest:guest@{mq_host}:{mq_port}/",
        admin_url=f"postgresql://postgres:postgres@{pg_host}:{pg_port}/postgres",
        origin="testcontainers",
    )
    return services, [postgres, rabbit]


def discover() -> tuple[Services, list[object]]:
    given_amqp, given_pg = os.environ.get("ONE_TEST_AMQP_URL"), os.environ.get("ONE_TEST_ADMIN_URL")
    if given_amqp and given_pg:
        return Services(given_amqp, given_pg, "environment"), []
    if _docker_answers():
        return _from_containers()
    if _listening("127.0.0.1", 5432) and _listening("127.0.0.1", 5672):
        return Services(
            "amqp://guest:guest@127.0.0.1:5672/",
            "postgresql://postgres@127.0.0.1:5432/postgres",
            "local",
        ), []
    message = "no RabbitMQ and Postgres: no Docker engine and nothing on 127.0.0.1:5672/5432"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
