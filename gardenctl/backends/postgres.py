"""PostgreSQL adapter (psycopg 3): short, bounded connections through HAProxy or straight to a member."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gardenctl.errors import BackendError, BackendUnreachable


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    user: str = "postgres"
    dbname: str = "postgres"
    password: str | None = None
    sslmode: str = "prefer"
    connect_timeout_seconds: int = 3

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Landing:
    """Where a new connection landed: the server's own address and whether it accepts writes."""

    server_addr: str | None
    server_port: int | None
    in_recovery: bool
    system_identifier: str | None = None
    timeline: int | None = None


def _kwargs(ep: Endpoint) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "host": ep.host,
        "port": ep.port,
        "user": ep.user,
        "dbname": ep.dbname,
        "sslmode": ep.sslmode,
        "connect_timeout": ep.connect_timeout_seconds,
        "application_name": "gardenctl",
    }
    if ep.password is not None:
        kwargs["password"] = ep.password
    return kwargs


def pg_reason(exc: BaseException) -> str:
    """PostgreSQL's or libpq's reason, on one line: the server's primary message for a failed statement; for a failed
    connection 'connection refused', 'password authentication failed for user "x"', 'timeout expired'. libpq writes
    'connection to server at "h", port p failed: REASON' per attempt plus tab-indented advice lines ('Is the server
    running ...?'); the advice is dropped, the reasons kept."""
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    if primary:
        return " ".join(str(primary).split())
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    reasons: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("\t", " ", "Multiple connection attempts")):
            continue
        reason = line.rsplit(" failed: ", 1)[-1] if " failed: " in line else line
        reason = re.sub(r"^(connection failed: |FATAL: |ERROR: )+", "", " ".join(reason.split()))
        reason = reason[:1].lower() + reason[1:] if reason[:2] != reason[:2].upper() else reason
        if reason and reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons) or " ".join(text.split())


def connect(ep: Endpoint, *, autocommit: bool = True, statement_timeout_ms: int | None = 5000) -> Any:
    """A new connection, or `BackendUnreachable` / `BackendError` with PostgreSQL's own reason."""
    import psycopg

    try:
        conn = psycopg.connect(**_kwargs(ep), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        reason = pg_reason(exc)
        if "password authentication failed" in reason or "no password supplied" in reason:
            raise BackendError(
                f"postgres: {ep.where}: {reason}",
                hint="set postgres.password-env or postgres.password-file for this context",
            ) from exc
        raise BackendUnreachable(f"postgres: {ep.where}: {reason}") from exc
    if statement_timeout_ms:
        try:
            conn.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
        except psycopg.Error as exc:
            conn.close()
            raise BackendError(f"postgres: {ep.where}: {pg_reason(exc)}") from exc
    return conn


def where_am_i(ep: Endpoint) -> Landing:
    """Open a **new** connection and ask the server who it is (used to verify HAProxy routing)."""
    import psycopg

    conn = connect(ep)
    try:
        row = conn.execute(
            "SELECT host(inet_server_addr()), inet_server_port(), pg_is_in_recovery(), "
            "(SELECT system_identifier::text FROM pg_control_system()), "
            "(SELECT timeline_id FROM pg_control_checkpoint())"
        ).fetchone()
    except psycopg.Error as exc:
        raise BackendError(f"postgres: {ep.where}: {pg_reason(exc)}") from exc
    finally:
        conn.close()
    return Landing(server_addr=row[0], server_port=row[1], in_recovery=bool(row[2]), system_identifier=row[3], timeline=row[4])


def can_write(ep: Endpoint) -> bool:
    """True if a new connection through ``ep`` accepts a write (in a rolled-back transaction)."""
    import psycopg

    conn = connect(ep, autocommit=False)
    try:
        conn.execute("CREATE TEMP TABLE gardenctl_write_probe (x int)")
        conn.rollback()
        return True
    except psycopg.errors.ReadOnlySqlTransaction:
        return False
    except psycopg.Error as exc:
        raise BackendError(f"postgres: {ep.where}: {pg_reason(exc)}") from exc
    finally:
        conn.close()
