"""The error tree and the exit-code table.

Every error a user can cause or meet is a `GardenError` with a one-line message and an optional hint. The CLI
boundary (`gardenctl.cli.main`) prints ``Error: <message>`` (and ``hint: <hint>``) to stderr and exits with the
error's code. Anything that is not a `GardenError` is a bug: it shows a traceback only with ``--debug``.

Exit codes (documented in README.md):

====  =====================================================================================
code  meaning
====  =====================================================================================
0     success; for ``status`` / ``check``: every finding OK
1     ``status`` / ``check``: worst finding is WARNING; ``db prepare``: done, with a warning (e.g. pgvector missing)
2     ``status`` / ``check``: worst finding is CRITICAL; any command: command-line usage error
3     ``status`` / ``check``: UNKNOWN (health could not be determined)
4     configuration error (missing or malformed config file, unknown context, bad value)
5     a backend could not be reached (connection refused, timeout, DNS)
6     a backend answered with an error (HTTP 4xx/5xx, SQL error, API error code)
7     precondition refused (preflight failed, not confirmed, no TTY without ``--yes``)
8     operation failed (it ran, but did not converge or verify)
9     operation timed out while waiting for convergence
10    aborted by the user
130   interrupted (Ctrl-C)
====  =====================================================================================
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    USAGE = 2
    UNKNOWN = 3
    CONFIG = 4
    UNREACHABLE = 5
    BACKEND = 6
    REFUSED = 7
    FAILED = 8
    TIMEOUT = 9
    ABORTED = 10
    INTERRUPTED = 130


class GardenError(Exception):
    """Root of every error gardenctl reports to a user."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = list(details or [])

    def __str__(self) -> str:
        return self.message


class UsageError(GardenError):
    """A command-line argument names something that does not exist or is not allowed (like click's usage errors)."""

    exit_code = ExitCode.USAGE


class ConfigError(GardenError):
    """The configuration is missing, malformed or incomplete, or names something that does not exist."""

    exit_code = ExitCode.CONFIG


class BackendUnreachable(GardenError):
    """A backend did not answer: connection refused, timeout, name resolution."""

    exit_code = ExitCode.UNREACHABLE


class BackendError(GardenError):
    """A backend answered, with an error."""

    exit_code = ExitCode.BACKEND

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        code: str | None = None,
        body: str | None = None,
        details: list[str] | None = None,
    ) -> None:
        super().__init__(message, hint=hint, details=details)
        self.status = status
        self.code = code
        self.body = body


class PreconditionFailed(GardenError):
    """gardenctl refused to start an operation: a preflight check failed, or it could not ask for confirmation."""

    exit_code = ExitCode.REFUSED


class OperationFailed(GardenError):
    """The operation ran but did not reach or verify the state it was asked for."""

    exit_code = ExitCode.FAILED


class OperationTimeout(OperationFailed):
    """Waiting for convergence ran out of time."""

    exit_code = ExitCode.TIMEOUT


class Aborted(GardenError):
    """The user said no."""

    exit_code = ExitCode.ABORTED
