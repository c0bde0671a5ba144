"""PostgreSQL adapter (psycopg 3): short, bounded connections through HAProxy or straight to a member."""

from __future__ import annotations

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


def connect(ep: Endpoint, *, autocommit: bool = True, statement_timeout_ms: int | None = 5000) -> Any:
    """A new connection, or `BackendUnreachable` / `BackendError` with PostgreSQL's own reason."""
    import psycopg

    try:
        conn = psycopg.connect(**_kwargs(ep), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
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
            raise BackendError(f"postgres: {ep.where}: {exc}") from exc
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
        raise BackendError(f"postgres: {ep.where}: {exc}") from exc
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
        raise BackendError(f"postgres: {ep.where}: {exc}") from exc
    finally:
        conn.close()
