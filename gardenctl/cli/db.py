"""`gardenctl db prepare`: roles, schemas, publication and extensions for Supabase and GardenOS on the Patroni cluster.

The logic is in `gardenctl.ops.db_prepare`; the SQL in gardenctl/sql/. This module resolves the passwords (flag, then
environment), shows the plan, asks, applies, shows the verified result and records it in the journal.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Annotated, Optional

import typer

from gardenctl.cli.common import ConfigOpt, ContextOpt, DryRunOpt, Env, Output, OutputOpt, YesOpt, command_line, confirm, emit, make_env, who

EXIT_CODES = (
    "Exit codes: 0 prepared and verified (or, with --dry-run, nothing to refuse); 1 prepared and verified EXCEPT what a "
    "WARNING line names - pgvector not installable on the server (install it, or pass --no-vector when nothing needs "
    "it); 4 configuration (no rw-address, password file/env missing or not URL-safe); 5 PostgreSQL not reachable; "
    "6 an SQL statement failed (the transaction was rolled back: nothing of it stays); 7 refused (not a superuser, "
    "writes routed to a replica, a login role without password, not confirmed); 8 ran but the verification found "
    "something missing; 10 aborted."
)

db_app = typer.Typer(
    name="db",
    help="Prepare the PostgreSQL cluster for the GardenOS services (Supabase roles, schemas, publication, extensions).",
    no_args_is_help=True,
)

PasswordsFileOpt = Annotated[
    Optional[str],
    typer.Option(
        "--passwords-file",
        metavar="FILE",
        help=(
            "The role passwords as key=value lines: supabase-password (supabase_admin, authenticator, supabase_auth_admin, "
            "supabase_storage_admin), app-password (gardenos_app), kratos-password (kratos) - the format of "
            "manifests/secrets/gardenos-db.env, so the database and the Kubernetes Secret get the same values. "
            "Wins over GARDENCTL_DB_SUPABASE_PASSWORD / GARDENCTL_DB_APP_PASSWORD / GARDENCTL_DB_KRATOS_PASSWORD. "
            "Values are never printed. A role that already has a password keeps it when none is given."
        ),
        show_default=False,
    ),
]
NoVectorOpt = Annotated[
    bool,
    typer.Option("--no-vector", help="Do not ask for the pgvector extension (then a server without pgvector is not a warning)."),
]
ReasonOpt = Annotated[Optional[str], typer.Option("--reason", help="Why you do this; recorded in the operation journal.", show_default=False)]


@db_app.command("prepare", epilog=EXIT_CODES)
def prepare(
    ctx: typer.Context,
    passwords_file: PasswordsFileOpt = None,
    no_vector: NoVectorOpt = False,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    reason: ReasonOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create what an external PostgreSQL needs before the Supabase components and the GardenOS services start.

    Roles supabase_admin, authenticator, anon, authenticated, service_role, supabase_auth_admin,
    supabase_storage_admin (with Supabase's attributes, memberships and settings) plus gardenos_app and kratos (used by
    the manifests); schemas auth, storage, _realtime, extensions with their grants; the supabase_realtime publication;
    the extensions uuid-ossp, pgcrypto and vector (pgvector) in schema extensions; the database kratos.

    Idempotent: it creates only what is missing, so a second run changes nothing. Applied through HAProxy's
    read-write address (haproxy.rw-address) as the context's postgres user, which must be a superuser, in ONE
    transaction (the database kratos is created after it). Passwords are sent as SCRAM verifiers computed locally.
    First the plan (what is missing), then it asks (--yes to skip; without a terminal it refuses), applies, and
    verifies every item. The SQL is in gardenctl/sql/db_prepare*.sql.
    """
    from gardenctl import journal
    from gardenctl.errors import PreconditionFailed
    from gardenctl.ops.clients import postgres_endpoint
    from gardenctl.ops.db_prepare import apply_db_prepare, plan_db_prepare, resolve_passwords

    env = make_env(ctx, config, context)
    cluster = env.cluster()
    endpoint = postgres_endpoint(cluster, "rw")
    passwords = resolve_passwords(passwords_file, os.environ)
    entry = journal.new_entry("db prepare", who=who(), context=cluster.name, command_line=command_line(), reason=reason)
    started = time.monotonic()
    plan = result = None
    executing = False
    try:
        env.progress(f"inspecting {endpoint.where}/{endpoint.dbname} (HAProxy read-write) as {endpoint.user} ...")
        plan = plan_db_prepare(endpoint, passwords, context=cluster.name, vector=not no_vector)
        if output == Output.table or dry_run or not plan.ok:
            emit(env, plan, output)
        if not plan.ok:
            more = len(plan.problems) - 1
            raise PreconditionFailed(
                "db prepare refused: " + plan.problems[0] + (f" (and {more} more problem(s), listed above)" if more else ""),
                hint=(
                    "give the role passwords with --passwords-file FILE (format of manifests/secrets/gardenos-db.env) "
                    "or GARDENCTL_DB_SUPABASE_PASSWORD / GARDENCTL_DB_APP_PASSWORD / GARDENCTL_DB_KRATOS_PASSWORD"
                    if any("password" in p for p in plan.problems)
                    else None
                ),
            )
        if dry_run:
            env.progress("dry run: nothing was changed" + (" (already prepared)" if plan.complete else ""))
            return
        what = "re-assert the preparation (nothing missing)" if plan.complete else f"create {len(plan.missing)} missing item(s)"
        confirm(env, f"Apply db prepare on {endpoint.where}/{endpoint.dbname}: {what}?", yes=yes)
        executing = True
        result = apply_db_prepare(endpoint, passwords, plan, progress=env.progress)
        emit(env, result, output)
        for warning in result.warnings:
            env.err.print(f"WARNING: {warning}", highlight=False, soft_wrap=True, markup=False)
        if result.warnings and not result.vector.installed and result.vector.wanted:
            from gardenctl.ops.db_prepare import PGVECTOR_HINT

            env.err.print(f"hint: {PGVECTOR_HINT}", highlight=False, soft_wrap=True, markup=False)
    except BaseException as exc:
        if not dry_run:
            _journal(env, entry, started, plan, result, exc, executing)
        raise
    else:
        if not dry_run:
            _journal(env, entry, started, plan, result, None, executing)
    if result is not None and result.exit_code:
        raise typer.Exit(result.exit_code)


def _journal(env: Env, entry, started: float, plan, result, exc: BaseException | None, executing: bool) -> None:  # noqa: ANN001
    from gardenctl import journal
    from gardenctl.errors import GardenError

    details: dict = {}
    if plan is not None:
        details = {"endpoint": plan.endpoint, "database": plan.database, "missing_before": list(plan.missing)}
    if result is not None:
        outcome = journal.SUCCEEDED
        message = "prepared and verified" + (f", with warnings: {'; '.join(result.warnings)}" if result.warnings else "")
        details.update({"created": list(result.created), "passwords_set": [p.role for p in result.passwords if p.action == "set"], "warnings": list(result.warnings)})
        changed = bool(result.created or details["passwords_set"])
    else:
        outcome = journal.outcome_for_error(exc) if exc is not None else journal.FAILED
        message = exc.message if isinstance(exc, GardenError) else ("interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc or ""))
        changed = executing
    full = dataclasses.replace(entry, outcome=outcome, message=message, changed=changed, duration_seconds=time.monotonic() - started, details=details)
    try:
        path = journal.record(env.state_dir, full)
    except GardenError as err:
        env.err.print(f"warning: {err.message}", highlight=False)
        return
    env.progress(f"recorded in the operation journal {path} ({outcome})")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
