"""`gardenctl switchover` and `gardenctl failover`: plan -> preflight -> confirm -> one Patroni request -> verify ->
journal. The logic is in `gardenctl.ops.switchover`; this module parses flags, talks to the user and records."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from gardenctl.cli.common import ConfigOpt, ContextOpt, DryRunOpt, Env, Output, OutputOpt, YesOpt, command_line, confirm, emit, make_env, who

if TYPE_CHECKING:  # pragma: no cover
    from gardenctl.config import ClusterConfig
    from gardenctl.ops.switchover import SwitchoverAdapters

EXIT_CODES = (
    "Exit codes: 0 converged (or scheduled, and Patroni shows it); 4 configuration; 5 Patroni not reachable; "
    "6 Patroni answered an error (400/422/5xx); 7 refused - by the preflight, by Patroni (412), or not confirmed; "
    "8 failed - Patroni kept the leader or promoted another member; 9 timed out waiting for convergence (the request was "
    "sent once and may still complete: watch `gardenctl status`); 10 aborted."
)

CONVERGED = (
    "Converged means: the candidate leads in Patroni on a new timeline; a NEW connection through the HAProxy "
    "read-write port lands on it and accepts a write; the old leader streams from it again. The moments (seconds "
    "from the request) and the final topology are printed. Each step may take --timeout seconds."
)

SWITCHOVER_HELP = (
    "Move the leader role to a healthy replica, and verify that clients follow.\n\n"
    "First the topology and a preflight, changing nothing: the leader is healthy (its own REST API answers as a running "
    "primary); the candidate exists, answers, streams, is on the leader's timeline, lags no more than "
    "maximum_lag_on_failover (or --max-lag), and its tags allow promotion (nofailover, failover_priority); in synchronous "
    "mode it is the synchronous standby (and that is the default); a paused cluster takes only a switchover to a named "
    "candidate and no scheduled one; etcd has quorum; no switchover is already scheduled; the HAProxy read-write port "
    "reaches the leader. A failed check refuses (exit 7) before anything is sent.\n\n"
    "Then it asks (--yes to skip; without a terminal it refuses instead of waiting), sends ONE request to Patroni's REST "
    "API - never a second, even when Patroni answers 503 \"status unknown\": then it polls through any member that "
    "answers - and verifies convergence. Every run is recorded in the operation journal (`gardenctl history`)."
)

FAILOVER_HELP = (
    "Promote a named replica when the leader is down (or must go now).\n\n"
    "The preflight checks the candidate as for a switchover (exists, REST API answers, a running replica - with the "
    "leader gone replicas show \"running\" rather than \"streaming\" -, timeline, lag, tags, the synchronous standby in "
    "synchronous mode) and etcd quorum; the leader does not have to be healthy. Patroni promotes the candidate once the "
    "dead leader's key expires (up to ttl seconds).\n\n"
    "If the old leader was down when the plan was made, gardenctl does not wait for it: the failover counts as converged "
    "when the candidate leads, the read-write port routes to it and it accepts writes, and a warning says that the old "
    "leader is not running (start it again and it rejoins as a replica). If the old leader was up, it must come back as "
    "a streaming replica, as in a switchover. Recorded in the operation journal."
)

CandidateOpt = Annotated[
    Optional[str],
    typer.Option("--candidate", help="Member to promote (a name from `gardenctl status`). Default: the synchronous standby in synchronous mode, else the best eligible replica (highest failover_priority, then lowest lag).", show_default=False),
]
ReasonOpt = Annotated[
    Optional[str],
    typer.Option("--reason", help="Why you do this (a ticket, 'kernel update'); recorded in the operation journal, shown by `gardenctl history`.", show_default=False),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help=(
            "Go ahead despite failed checks marked overridable - only those Patroni itself would still accept: leader's REST API "
            "down, candidate not streaming, older timeline, lag above the limit, etcd not reachable from here, read-write port "
            "not on the leader. Never overrides an unknown, unreachable or ineligible (tags) candidate, unknown lag, the "
            "synchronous-standby rule, a paused cluster or an already scheduled switchover."
        ),
    ),
]
MaxLagOpt = Annotated[
    Optional[int],
    typer.Option("--max-lag", min=0, metavar="BYTES", help="Largest replication lag a candidate may have, in bytes. Default: Patroni's maximum_lag_on_failover (1048576 unless configured).", show_default=False),
]
TimeoutOpt = Annotated[
    Optional[float],
    typer.Option("--timeout", min=1, metavar="SECONDS", help="How long each convergence step may take (new leader in Patroni; HAProxy routing and a write; old leader streaming). Default: ttl + 2 x loop_wait from Patroni's config.", show_default=False),
]


def _adapters(cluster: "ClusterConfig") -> "SwitchoverAdapters":
    """Adapters for one context, from `gardenctl.ops.clients`. A missing read-write address is not an error here:
    the preflight shows it (convergence could not be verified) and refuses."""
    from gardenctl.errors import ConfigError
    from gardenctl.ops.clients import etcd_client, patroni_client, postgres_endpoint
    from gardenctl.ops.switchover import PostgresRwProbe, SwitchoverAdapters

    patroni = patroni_client(cluster)
    etcd = etcd_problem = None
    try:
        etcd = etcd_client(cluster)
    except ConfigError as exc:
        etcd_problem = exc.message
    rw = rw_problem = None
    try:
        rw = PostgresRwProbe(postgres_endpoint(cluster, "rw", connect_timeout=2))
    except ConfigError as exc:
        rw_problem = exc.message
    return SwitchoverAdapters(patroni=patroni, etcd=etcd, rw=rw, rw_problem=rw_problem, etcd_problem=etcd_problem)


def _close(adapters: "SwitchoverAdapters") -> None:
    for client in (adapters.patroni, adapters.etcd):
        close = getattr(client, "close", None)
        if close is not None:
            close()


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    from gardenctl.ops.switchover import parse_when

    try:
        return parse_when(value, datetime.now(timezone.utc))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--at'") from exc


def _run(
    ctx: typer.Context,
    *,
    action: str,
    candidate: str | None,
    at: str | None,
    yes: bool,
    dry_run: bool,
    reason: str | None,
    force: bool,
    max_lag: int | None,
    timeout: float | None,
    config,  # noqa: ANN001
    context: str | None,
    output: Output,
) -> None:
    from gardenctl import journal
    from gardenctl.ops.switchover import execute, plan_failover, plan_switchover

    env = make_env(ctx, config, context)
    scheduled_at = _parse_at(at)
    cluster = env.cluster()
    adapters = _adapters(cluster)
    entry = journal.new_entry(action, who=who(), context=cluster.name, command_line=command_line(), reason=reason)
    requested = {"candidate": candidate, "scheduled_at": scheduled_at.isoformat() if scheduled_at else None, "force": force or None}
    started = time.monotonic()
    plan = result = None
    executing = False
    try:
        env.progress(f"reading cluster {cluster.name} (Patroni, each member's REST API, etcd, HAProxy read-write port) ...")
        if action == "failover":
            plan = plan_failover(adapters, candidate=candidate or "", force=force, max_lag_bytes=max_lag, timeout_seconds=timeout)
        else:
            plan = plan_switchover(adapters, candidate=candidate, at=scheduled_at, force=force, max_lag_bytes=max_lag, timeout_seconds=timeout)
        if output == Output.table or not plan.ok or dry_run:
            emit(env, plan, output)
        if not plan.ok:
            raise plan.refusal()
        if dry_run:
            env.progress(f"dry run: the preflight passed; nothing was changed (would {plan.summary})")
            return
        confirm(env, f"{plan.summary[0].upper()}{plan.summary[1:]}?", yes=yes)
        executing = True
        result = execute(adapters, plan, progress=env.progress)
        emit(env, result, output)
        if result.error is not None:
            raise result.error
    except BaseException as exc:
        if not dry_run:
            _journal(env, entry, started, plan, result, exc, executing, requested)
        raise
    else:
        if not dry_run:
            _journal(env, entry, started, plan, result, None, executing, requested)
    finally:
        _close(adapters)


def _journal(env: Env, entry, started: float, plan, result, exc: BaseException | None, executing: bool, requested: dict) -> None:  # noqa: ANN001
    """Record what happened, whatever happened. A journal that cannot be written is a warning: it must not turn a
    verified switchover into a failure exit, nor hide the real error."""
    from gardenctl import journal
    from gardenctl.errors import GardenError

    if result is not None:
        outcome, message, changed = result.outcome, result.message, result.request_sent
        details, moments = result.journal_details(), result.moments
    else:
        outcome = journal.outcome_for_error(exc) if exc is not None else journal.FAILED
        message = exc.message if isinstance(exc, GardenError) else ("interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc or ""))
        changed = executing
        if executing and isinstance(exc, KeyboardInterrupt):
            message = "interrupted while the request may be running; check `gardenctl status`"
        details, moments = {k: v for k, v in requested.items() if v is not None}, ()
        if plan is not None:
            details = {"scope": plan.scope, "leader_before": plan.leader, "candidate": plan.candidate, "failed_checks": [c.name for c in plan.preflight.blocking]}
    full = dataclasses.replace(
        entry,
        outcome=outcome,
        message=message,
        changed=changed,
        duration_seconds=time.monotonic() - started,
        moments=tuple(moments),
        details=details,
    )
    try:
        path = journal.record(env.state_dir, full)
    except GardenError as err:
        env.err.print(f"warning: {err.message}", highlight=False)
        return
    env.progress(f"recorded in the operation journal {path} ({outcome})")


def switchover(
    ctx: typer.Context,
    candidate: CandidateOpt = None,
    at: Annotated[
        Optional[str],
        typer.Option("--at", metavar="TIME", help="Schedule it instead of running it now: an ISO 8601 time WITH a time zone, in the future (2030-01-31T22:00:00+01:00 or ...Z). Refused while the cluster is paused.", show_default=False),
    ] = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    reason: ReasonOpt = None,
    force: ForceOpt = False,
    max_lag: MaxLagOpt = None,
    timeout: TimeoutOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Move the leader role to a healthy replica, and verify that clients follow (help: SWITCHOVER_HELP)."""
    _run(ctx, action="switchover", candidate=candidate, at=at, yes=yes, dry_run=dry_run, reason=reason, force=force, max_lag=max_lag, timeout=timeout, config=config, context=context, output=output)


def failover(
    ctx: typer.Context,
    candidate: Annotated[str, typer.Option("--candidate", help="Member to promote (required: a failover always names its target).", show_default=False)],
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    reason: ReasonOpt = None,
    force: ForceOpt = False,
    max_lag: MaxLagOpt = None,
    timeout: TimeoutOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Promote a named replica when the leader is down (help: FAILOVER_HELP)."""
    _run(ctx, action="failover", candidate=candidate, at=None, yes=yes, dry_run=dry_run, reason=reason, force=force, max_lag=max_lag, timeout=timeout, config=config, context=context, output=output)


def register(app: typer.Typer) -> None:
    app.command("switchover", help=SWITCHOVER_HELP, epilog=CONVERGED + "\n\n" + EXIT_CODES)(switchover)
    app.command("failover", help=FAILOVER_HELP, epilog=CONVERGED + "\n\n" + EXIT_CODES)(failover)
