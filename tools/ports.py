"""A free TCP port, for the servers the tests and benchmarks start (SMTP sinks, workers'
ops endpoints)."""

import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
