"""``gardenctl db prepare``: the roles, schemas, publication and extensions Supabase and the GardenOS services need
in an external PostgreSQL, applied idempotently through HAProxy's read-write port.

Flow: `plan_db_prepare` inspects the primary (the checklist in ``gardenctl/sql/db_prepare_inspect.sql``, password
verifiers, pgvector availability) and says what is missing; `apply_db_prepare` runs ``gardenctl/sql/db_prepare.sql``
(+ ``db_prepare_vector.sql`` when the server has pgvector) and the password changes in ONE transaction, creates the
database ``kratos`` (outside it: CREATE DATABASE cannot run in a transaction), then inspects again and verifies that
every item is present and every given password verifies.

Passwords come from the caller (the CLI resolves ``--passwords-file`` / ``GARDENCTL_DB_*_PASSWORD``) and are never
printed or sent in clear: gardenctl computes the SCRAM-SHA-256 verifier locally and sends that (``ALTER ROLE ...
PASSWORD 'SCRAM-SHA-256$...'``), so the clear text never reaches the server's statement log. A role whose stored
verifier already matches the given password is left alone, which makes a second run a no-op.

pgvector: if ``vector`` is not in ``pg_available_extensions`` everything else is still prepared and the result
carries a warning naming the package to install on every database node (the CLI exits 1 for "prepared, with
warnings"; ``--no-vector`` asks for no pgvector at all, and then a run without it is complete).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from gardenctl.errors import BackendError, OperationFailed, PreconditionFailed

if TYPE_CHECKING:  # pragma: no cover
    from gardenctl.backends.postgres import Endpoint

# Which password (a key of manifests/secrets/gardenos-db.env) each login role gets.
ROLE_PASSWORD_KEYS: dict[str, str] = {
    "supabase_admin": "supabase-password",
    "authenticator": "supabase-password",
    "supabase_auth_admin": "supabase-password",
    "supabase_storage_admin": "supabase-password",
    "gardenos_app": "app-password",
    "kratos": "kratos-password",
}
PASSWORD_KEYS = ("supabase-password", "app-password", "kratos-password")
PASSWORD_ENV = {key: "GARDENCTL_DB_" + key.replace("-password", "").upper() + "_PASSWORD" for key in PASSWORD_KEYS}
URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
SCRAM_ITERATIONS = 4096
VECTOR_CREATED = "extension vector"
PGVECTOR_HINT = (
    "install pgvector on EVERY database node - it is not in Debian 12's own repositories; PGDG's apt repository "
    "(apt.postgresql.org) ships it as postgresql-15-pgvector (postgresql-<major>-pgvector) - then re-run "
    "`gardenctl db prepare` (for the local lab: scripts/install-pgvector builds it from Debian's source); "
    "or pass --no-vector if nothing needs the `vector` type"
)


# ------------------------------------------------------------------------------------------------ passwords


@dataclass(frozen=True, slots=True)
class RolePasswords:
    """Passwords by key (``supabase-password``, ...) and where each came from (``file:...`` / ``env:...``)."""

    values: Mapping[str, str] = field(default_factory=dict, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.values.get(key)


def parse_env_file(text: str, source: str) -> dict[str, str]:
    """``key=value`` lines (``#`` comments, blank lines; optional quotes), as in manifests/secrets/*.env."""
    from gardenctl.errors import ConfigError

    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "=" not in stripped:
            raise ConfigError(f"{source}:{number}: expected key=value")
        key, value = stripped.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def resolve_passwords(passwords_file: str | None, environ: Mapping[str, str]) -> RolePasswords:
    """Passwords from ``passwords_file`` (wins) and the ``GARDENCTL_DB_*_PASSWORD`` environment. Raises `ConfigError`
    for an unreadable file, an unknown key, an empty value or characters that would break a connection URL."""
    from pathlib import Path

    from gardenctl.errors import ConfigError

    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for key, var in PASSWORD_ENV.items():
        if environ.get(var):
            values[key], sources[key] = environ[var], f"env:{var}"
    if passwords_file:
        path = Path(passwords_file).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"--passwords-file {path}: {exc.strerror}") from exc
        for key, value in parse_env_file(text, str(path)).items():
            if key not in PASSWORD_KEYS:
                raise ConfigError(f"{path}: unknown key {key!r} (known: {', '.join(PASSWORD_KEYS)})")
            values[key], sources[key] = value, f"file:{path}"
    for key, value in values.items():
        if not value or value == "CHANGE-ME":
            raise ConfigError(f"{sources[key]}: {key} is empty or still CHANGE-ME", hint="python3 manifests/secrets/make-env-files writes random ones")
        if not URL_SAFE.fullmatch(value):
            raise ConfigError(
                f"{sources[key]}: {key} contains characters outside [A-Za-z0-9_-]",
                hint="the manifests put these passwords into connection URLs; use URL-safe characters only",
            )
    return RolePasswords(values=values, sources=sources)


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677, PostgreSQL's format)."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def verifier_matches(stored: str | None, password: str, role: str) -> bool:
    """Whether ``stored`` (pg_authid.rolpassword) verifies ``password``: SCRAM-SHA-256 or md5."""
    if not stored:
        return False
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", stored)
    if m:
        try:
            salt = base64.b64decode(m.group(2))
        except ValueError:
            return False
        return hmac.compare_digest(scram_verifier(password, salt=salt, iterations=int(m.group(1))), stored)
    if stored.startswith("md5"):
        return hmac.compare_digest("md5" + hashlib.md5((password + role).encode()).hexdigest(), stored)  # noqa: S324 - PostgreSQL's md5 format
    return False


# ------------------------------------------------------------------------------------------------ the session


class PgSession:
    """One PostgreSQL connection with every psycopg error translated (the chokepoint for the SQL gardenctl runs here
    and for the migrate-phase database checks)."""

    def __init__(self, endpoint: "Endpoint", *, autocommit: bool = False, statement_timeout_ms: int = 30000) -> None:
        from gardenctl.backends.postgres import connect

        self.endpoint = endpoint
        self.conn = connect(endpoint, autocommit=autocommit, statement_timeout_ms=statement_timeout_ms)

    def run(self, sql: Any, params: Any = None, *, what: str) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            cur = self.conn.execute(sql, params) if params is not None else self.conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []
        except psycopg.Error as exc:
            from gardenctl.backends.postgres import pg_reason

            message = pg_reason(exc)
            raise BackendError(f"postgres {self.endpoint.where}: {what}: {message}", code=getattr(exc, "sqlstate", None)) from exc

    def commit(self) -> None:
        import psycopg

        try:
            self.conn.commit()
        except psycopg.Error as exc:
            from gardenctl.backends.postgres import pg_reason

            raise BackendError(f"postgres {self.endpoint.where}: commit: {pg_reason(exc)}") from exc

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing must never hide a result
            pass

    def __enter__(self) -> "PgSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True, slots=True)
class DbItem:
    kind: str
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PasswordAction:
    """``set`` (new or different), ``unchanged`` (verifies already), ``kept`` (none given, the role has one),
    ``missing`` (none given and the role has none: refused)."""

    role: str
    key: str
    action: str
    source: str | None = None


@dataclass(frozen=True, slots=True)
class VectorStatus:
    wanted: bool
    available: bool
    installed_version: str | None = None
    available_version: str | None = None

    @property
    def installed(self) -> bool:
        return self.installed_version is not None


@dataclass(frozen=True, slots=True)
class DbPreparePlan:
    __kind__ = "DbPreparePlan"
    __json_properties__ = ("ok", "missing", "complete")

    context: str
    endpoint: str
    database: str
    user: str
    items: tuple[DbItem, ...]
    passwords: tuple[PasswordAction, ...]
    vector: VectorStatus
    server_version: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(f"{i.kind} {i.name}" for i in self.items if not i.ok)

    @property
    def complete(self) -> bool:
        """Nothing to do: every item present, every given password current, pgvector installed if wanted."""
        return (
            not self.missing
            and all(p.action in ("unchanged", "kept") for p in self.passwords)
            and (not self.vector.wanted or self.vector.installed)
        )


@dataclass(frozen=True, slots=True)
class DbPrepareResult:
    __kind__ = "DbPrepareResult"
    __json_properties__ = ("complete", "exit_code")

    context: str
    endpoint: str
    database: str
    items: tuple[DbItem, ...]
    passwords: tuple[PasswordAction, ...]
    vector: VectorStatus
    created: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return all(i.ok for i in self.items) and not self.warnings

    @property
    def exit_code(self) -> int:
        """0: everything prepared and verified; 1: prepared and verified except what ``warnings`` names."""
        return 0 if self.complete else 1


# ------------------------------------------------------------------------------------------------ inspection


def _inspect(session: PgSession) -> tuple[DbItem, ...]:
    from gardenctl import sql

    rows = session.run(sql.load("db_prepare_inspect.sql"), what="inspecting roles, schemas, publication")
    return tuple(DbItem(kind=str(r[0]), name=str(r[1]), ok=bool(r[2]), detail=str(r[3] or "")) for r in rows)


def _vector(session: PgSession, wanted: bool) -> VectorStatus:
    rows = session.run(
        "SELECT (SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = 'vector'), "
        "(SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector')",
        what="checking pgvector",
    )
    available, installed = rows[0] if rows else (None, None)
    return VectorStatus(wanted=wanted, available=available is not None, installed_version=installed, available_version=available)


def _stored_passwords(session: PgSession) -> dict[str, str | None]:
    rows = session.run(
        "SELECT rolname, rolpassword FROM pg_catalog.pg_authid WHERE rolname = ANY(%s)", (list(ROLE_PASSWORD_KEYS),), what="reading password verifiers"
    )
    return {str(r[0]): r[1] for r in rows}


def _password_actions(stored: dict[str, str | None], passwords: RolePasswords) -> tuple[PasswordAction, ...]:
    out = []
    for role, key in ROLE_PASSWORD_KEYS.items():
        given = passwords.get(key)
        source = passwords.sources.get(key)
        if given is not None:
            action = "unchanged" if verifier_matches(stored.get(role), given, role) else "set"
        else:
            action = "kept" if stored.get(role) else "missing"
        out.append(PasswordAction(role=role, key=key, action=action, source=source))
    return tuple(out)


def _preconditions(session: PgSession) -> tuple[list[str], str | None]:
    rows = session.run(
        "SELECT pg_is_in_recovery(), (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), current_setting('server_version')",
        what="checking the server",
    )
    in_recovery, superuser, version = rows[0]
    problems = []
    if in_recovery:
        problems.append("the server behind the read-write address is a replica (in recovery): HAProxy routes writes wrongly; see `gardenctl status`")
    if not superuser:
        problems.append("the configured postgres user is not a superuser: creating supabase_admin (SUPERUSER) and the publication needs one")
    return problems, version


def plan_db_prepare(endpoint: "Endpoint", passwords: RolePasswords, *, context: str, vector: bool = True) -> DbPreparePlan:
    """Inspect the database behind ``endpoint`` (HAProxy's read-write address). Changes nothing.

    Raises `BackendUnreachable` / `BackendError` when PostgreSQL cannot be reached or queried."""
    with PgSession(endpoint, autocommit=True) as session:
        problems, version = _preconditions(session)
        items = _inspect(session)
        stored = _stored_passwords(session) if not problems else {}
        actions = _password_actions(stored, passwords)
        vec = _vector(session, vector)
    for act in actions:
        if act.action == "missing":
            problems.append(
                f"no password for role {act.role} ({act.key}) and it has none yet: pass --passwords-file FILE "
                f"(key={act.key}) or set {PASSWORD_ENV[act.key]}"
            )
    return DbPreparePlan(
        context=context,
        endpoint=endpoint.where,
        database=endpoint.dbname,
        user=endpoint.user,
        items=items,
        passwords=actions,
        vector=vec,
        server_version=version,
        problems=tuple(dict.fromkeys(problems)),
    )


def apply_db_prepare(
    endpoint: "Endpoint",
    passwords: RolePasswords,
    plan: DbPreparePlan,
    *,
    progress: Callable[[str], None] = lambda _m: None,
) -> DbPrepareResult:
    """Apply the preparation (see the module docstring) and verify it.

    Raises `PreconditionFailed` for a refused plan, `BackendError` when a statement fails (the transaction is rolled
    back: nothing of it stays), `OperationFailed` when the verification finds an item still missing."""
    from psycopg import sql as psql

    from gardenctl import sql

    if not plan.ok:
        raise PreconditionFailed("db prepare refused: " + "; ".join(plan.problems))
    started = time.monotonic()
    created = [f"{i.kind} {i.name}" for i in plan.items if not i.ok and i.kind != "database"]
    with PgSession(endpoint, autocommit=False) as session:
        problems, _ = _preconditions(session)
        if problems:
            raise PreconditionFailed("db prepare refused: " + "; ".join(problems))
        progress(f"applying gardenctl/sql/db_prepare.sql on {endpoint.where}/{endpoint.dbname} in one transaction ...")
        session.run(sql.load("db_prepare.sql"), what="db_prepare.sql")
        vec = _vector(session, plan.vector.wanted)
        if vec.wanted and vec.available and not vec.installed:
            progress("creating extension vector (pgvector) in schema extensions ...")
            session.run(sql.load("db_prepare_vector.sql"), what="db_prepare_vector.sql")
            created.append(VECTOR_CREATED)
        stored = _stored_passwords(session)
        for act in _password_actions(stored, passwords):
            if act.action == "set":
                secret = passwords.get(act.key)
                assert secret is not None
                statement = psql.SQL("ALTER ROLE {} PASSWORD {}").format(psql.Identifier(act.role), psql.Literal(scram_verifier(secret)))
                session.run(statement, what=f"setting the password of {act.role}")
        session.commit()
        progress("committed")
    with PgSession(endpoint, autocommit=True) as session:
        exists = session.run("SELECT 1 FROM pg_catalog.pg_database WHERE datname = 'kratos'", what="looking for database kratos")
        if not exists:
            progress("creating database kratos (owner kratos) ...")
            try:
                session.run(psql.SQL("CREATE DATABASE {} OWNER {}").format(psql.Identifier("kratos"), psql.Identifier("kratos")), what="CREATE DATABASE kratos")
                created.append("database kratos")
            except BackendError as exc:
                if exc.code != "42P04":  # duplicate_database: a concurrent run created it first
                    raise
        items = _inspect(session)
        stored = _stored_passwords(session)
        actions = _password_actions(stored, passwords)
        vec = _vector(session, plan.vector.wanted)
    still = [f"{i.kind} {i.name} ({i.detail or 'not as expected'})" for i in items if not i.ok]
    if still:
        raise OperationFailed("db prepare ran, but these are still missing or wrong: " + "; ".join(still))
    wrong = [a.role for a in actions if a.action in ("set", "missing")]
    if wrong:
        raise OperationFailed("db prepare ran, but the password of " + ", ".join(wrong) + " does not verify")
    warnings = []
    if vec.wanted and not vec.installed:
        warnings.append(f"pgvector is not installable on {endpoint.where} (no 'vector' in pg_available_extensions): everything else is prepared")
    return DbPrepareResult(
        context=plan.context,
        endpoint=endpoint.where,
        database=endpoint.dbname,
        items=items,
        passwords=tuple(
            PasswordAction(a.role, a.key, "set" if p.action == "set" else a.action, a.source) for a, p in zip(actions, plan.passwords)
        ),
        vector=vec,
        created=tuple(created),
        warnings=tuple(warnings),
        seconds=time.monotonic() - started,
    )


def inspect_prepared(endpoint: "Endpoint") -> tuple[tuple[DbItem, ...], VectorStatus]:
    """The checklist and pgvector state, read-only (the ``db-prepared`` phase check)."""
    with PgSession(endpoint, autocommit=True) as session:
        return _inspect(session), _vector(session, True)
