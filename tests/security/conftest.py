"""The end-to-end pipeline fixture (four worker processes), for the log-secrets check."""

from tests.e2e.conftest import pipeline

__all__ = ["pipeline"]
