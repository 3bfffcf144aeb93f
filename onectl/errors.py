"""Exit codes and the one error type commands raise to end with a message."""

from typing import Any

OK = 0
NOT_FOUND = 1
INVALID = 2
UNREACHABLE = 3


class CliError(Exception):
    """Ends the command with ``message`` on stderr (or as JSON) and exit ``code``."""

    def __init__(self, code: int, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def not_found(message: str, details: Any = None) -> CliError:
    return CliError(NOT_FOUND, message, details=details)


def invalid(message: str, details: Any = None) -> CliError:
    return CliError(INVALID, message, details=details)


def unreachable(message: str) -> CliError:
    return CliError(UNREACHABLE, message)
