"""`gardenctl migrate-phase status | plan N | apply N | rollback`: move the GardenOS services through the phases of
manifests/, one verified step at a time, with the phase recorded in the cluster's etcd.

The logic is in `gardenctl.ops.migrate`; this module builds the adapters (etcd, kubernetes client, renderer, checks),
talks to the user and records the journal entry.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from gardenctl.cli.common import ConfigOpt, ContextOpt, DryRunOpt, Env, Output, OutputOpt, YesOpt, command_line, confirm, emit, make_env, who

if TYPE_CHECKING:  # pragma: no cover
    from gardenctl.config import ClusterConfig
    from gardenctl.ops.migrate import MigrateAdapters

MANIFESTS_ENV = "GARDENCTL_MANIFESTS_DIR"

EXIT_CODES = (
    "Exit codes: 0 done and verified (plan / --dry-run: the step would be allowed); 4 configuration (unknown phase, "
    "invalid playbook, no kubernetes section / kubeconfig); 5 etcd, PostgreSQL or the Kubernetes API not reachable; "
    "6 the API server refused an object (a field-manager conflict: --force-conflicts); 7 refused - a failed preflight "
    "check, more than one step without --force, another operator's migration (claim) or a lost compare-and-set race "
    "(nothing applied), kubectl missing, not confirmed; 8 a rollout failed or a post-check failed (the recorded phase "
    "is unchanged); 9 rollouts did not finish within --timeout (the recorded phase is unchanged; re-run apply to resume, "
    "or rollback); 10 aborted."
)

phase_app = typer.Typer(
    name="migrate-phase",
    help=(
        "Move the GardenOS services through the phases of manifests/ (1: Supabase minus analytics ... 5: own admin "
        "panel), one verified step at a time. The current phase and its history live in the cluster's etcd."
    ),
    no_args_is_help=True,
)

ManifestsOpt = Annotated[
    Optional[str],
    typer.Option("--manifests", metavar="DIR", help=f"The manifests directory (with phases/phase-N). Env {MANIFESTS_ENV}; default: manifests/ shipped with gardenctl.", show_default=False),
]
PlaybooksOpt = Annotated[
    Optional[str],
    typer.Option("--playbooks", metavar="DIR", help="Directory of the phase playbooks (phase-N.yaml: preflight and post-checks). Default: playbooks/phases shipped with gardenctl.", show_default=False),
]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Allow a step of more than one phase, and go ahead despite failed preflight checks marked `overridable: true` in the playbook (the shipped ones: a recent drill). Never skips the others."),
]
ForceConflictsOpt = Annotated[
    bool,
    typer.Option("--force-conflicts", help="Take over fields another field manager (kubectl, a controller) owns, instead of refusing (server-side apply force)."),
]
BreakLockOpt = Annotated[
    bool,
    typer.Option("--break-lock", help="Take over the migration claim another run left in etcd (only when that run is known to be dead)."),
]
TimeoutOpt = Annotated[
    Optional[float],
    typer.Option("--timeout", min=1, metavar="SECONDS", help="How long to wait for every workload of the phase to roll out. Default: the playbook's rollout-timeout-seconds (300 if unset).", show_default=False),
]
ReasonOpt = Annotated[Optional[str], typer.Option("--reason", help="Why you do this (a ticket); recorded in the operation journal.", show_default=False)]
PollOpt = Annotated[float, typer.Option("--poll-interval", min=0.01, hidden=True, help="Seconds between rollout polls.")]


def _adapters(env: Env, cluster: "ClusterConfig", manifests: str | None, playbooks: str | None, poll_interval: float = 2.0) -> "MigrateAdapters":
    from datetime import datetime, timezone

    from gardenctl.ops.clients import effective_timeout, etcd_client, postgres_endpoint
    from gardenctl.ops.migrate import MigrateAdapters
    from gardenctl.ops.migrate.checks import CheckEnv
    from gardenctl.ops.migrate.playbook import find_playbook_dir
    from gardenctl.ops.migrate.render import Renderer, find_manifests_dir
    from gardenctl.ops.migrate.state import PhaseStore

    renderer = Renderer(find_manifests_dir(manifests or os.environ.get(MANIFESTS_ENV) or None))
    playbooks_dir = find_playbook_dir(playbooks)
    store = PhaseStore(etcd_client(cluster), cluster.scope or cluster.name)
    kube = None
    problem = None
    namespace = "gardenos"
    if cluster.kubernetes is None:
        problem = f"context {cluster.name} has no kubernetes section (kubeconfig:, context:) in {cluster.source or 'the config file'}"
    else:
        from gardenctl.backends.kube import KubeClient
        from gardenctl.ops.k9s import kubernetes_settings

        settings = kubernetes_settings(cluster)
        namespace = settings.namespace
        kube = KubeClient(settings.kubeconfig, settings.context, timeout_seconds=max(effective_timeout(cluster) * 5, 10.0))

    def status():  # noqa: ANN202
        from gardenctl.ops.status import collect

        return collect(cluster)

    checks = CheckEnv(
        context=cluster.name,
        namespace=namespace,
        state_dir=env.state_dir,
        now=datetime.now(timezone.utc),
        kube=kube,
        kube_problem=problem,
        postgres=lambda: postgres_endpoint(cluster, "rw"),
        status=status,
    )
    return MigrateAdapters(
        context=cluster.name,
        store=store,
        renderer=renderer,
        playbooks_dir=playbooks_dir,
        checks=checks,
        who=who(),
        kube=kube,
        kube_problem=problem,
        poll_interval_seconds=poll_interval,
    )


def _close(adapters: "MigrateAdapters | None") -> None:
    if adapters is None:
        return
    for thing in (adapters.kube, adapters.store.kv):
        close = getattr(thing, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing must not hide the result
                pass


@phase_app.command("status", epilog="Exit codes: 0 read; 4 configuration; 5 etcd not reachable.")
def status(
    ctx: typer.Context,
    manifests: ManifestsOpt = None,
    playbooks: PlaybooksOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """The recorded phase of this cluster, its history (who moved it when), a migration in progress and the last
    failed attempt - read from etcd (/gardenos/<scope>/phase). Changes nothing."""
    from gardenctl.ops.migrate import read_status

    env = make_env(ctx, config, context)
    cluster = env.cluster()
    adapters = _adapters(env, cluster, manifests, playbooks)
    try:
        emit(env, read_status(adapters), output)
    finally:
        _close(adapters)


def _run(
    ctx: typer.Context,
    *,
    target: int | None,
    rollback: bool,
    plan_only: bool,
    yes: bool,
    dry_run: bool,
    force: bool,
    force_conflicts: bool,
    break_lock: bool,
    timeout: float | None,
    reason: str | None,
    manifests: str | None,
    playbooks: str | None,
    poll_interval: float,
    config,  # noqa: ANN001
    context: str | None,
    output: Output,
) -> None:
    from gardenctl import journal
    from gardenctl.ops.migrate import apply_phase, plan_phase

    env = make_env(ctx, config, context)
    cluster = env.cluster()
    adapters = _adapters(env, cluster, manifests, playbooks, poll_interval)
    command = "migrate-phase rollback" if rollback else "migrate-phase apply"
    entry = journal.new_entry(command, who=who(), context=cluster.name, command_line=command_line(), reason=reason)
    started = time.monotonic()
    plan = result = None
    executing = False
    record = not (plan_only or dry_run)
    try:
        plan = plan_phase(
            adapters, target=target, rollback=rollback, force=force, force_conflicts=force_conflicts, break_lock=break_lock, progress=env.progress
        )
        if output == Output.table or plan_only or dry_run or not plan.ok:
            emit(env, plan, output)
        if not plan.ok:
            raise plan.refusal()
        if plan_only or dry_run:
            env.progress(f"{'plan' if plan_only else 'dry run'}: the preflight passed; nothing was changed (would {plan.summary})")
            return
        confirm(env, f"{plan.summary[0].upper()}{plan.summary[1:]}?", yes=yes)
        executing = True
        result = apply_phase(adapters, plan, timeout_seconds=timeout, progress=env.progress)
        emit(env, result, output)
    except BaseException as exc:
        if record:
            _journal(env, entry, started, plan, result, exc, executing)
        raise
    else:
        if record:
            _journal(env, entry, started, plan, result, None, executing)
    finally:
        _close(adapters)


def _journal(env: Env, entry, started: float, plan, result, exc: BaseException | None, executing: bool) -> None:  # noqa: ANN001
    from gardenctl import journal
    from gardenctl.errors import GardenError

    details: dict = {}
    if plan is not None:
        details = {
            "cluster": plan.cluster,
            "action": plan.action,
            "from_phase": plan.current_phase,
            "to_phase": plan.target_phase,
            "etcd_revision_seen": plan.revision,
            "changes": plan.counts,
            "failed_checks": [c.name for c in plan.blocking],
            "forced": plan.force,
        }
    moments = ()
    if result is not None:
        outcome, message, changed = journal.SUCCEEDED, result.message, True
        details.update({"deleted": list(result.deleted), "kept": list(result.kept), "etcd_revision_recorded": result.revision})
        moments = result.moments
    else:
        outcome = journal.outcome_for_error(exc) if exc is not None else journal.FAILED
        message = exc.message if isinstance(exc, GardenError) else ("interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc or ""))
        changed = executing and not getattr(exc, "nothing_changed", False)
    full = dataclasses.replace(entry, outcome=outcome, message=message, changed=changed, duration_seconds=time.monotonic() - started, moments=tuple(moments), details=details)
    try:
        path = journal.record(env.state_dir, full)
    except GardenError as err:
        env.err.print(f"warning: {err.message}", highlight=False)
        return
    env.progress(f"recorded in the operation journal {path} ({outcome})")


PLAN_DOC = """

The plan: the objects of phase N rendered with `kubectl kustomize manifests/phases/phase-N`, compared with the
recorded phase's rendering and - when the Kubernetes API answers - with the live cluster (a server-side dry-run apply
gives exactly what would change): CREATE, UPDATE (which fields), DELETE (pruning: only objects labelled
app.kubernetes.io/part-of=gardenos with a gardenos/phase-added label and no owner), KEEP (never pruned:
PersistentVolumeClaims hold data, Namespaces hold everything). Then the phase's preflight from
playbooks/phases/phase-N.yaml, plus: one step at a time (unless --force), no other migration in progress, the API
reachable, the dry run accepted."""


@phase_app.command("plan", epilog=EXIT_CODES)
def plan(
    ctx: typer.Context,
    phase: Annotated[int, typer.Argument(min=1, help="The phase to plan for (1-5).", show_default=False)],
    force: ForceOpt = False,
    force_conflicts: ForceConflictsOpt = False,
    break_lock: BreakLockOpt = False,
    manifests: ManifestsOpt = None,
    playbooks: PlaybooksOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """What applying phase N would change, and whether its preflight passes. Changes nothing (same as apply
    --dry-run)."""
    _run(ctx, target=phase, rollback=False, plan_only=True, yes=False, dry_run=True, force=force, force_conflicts=force_conflicts, break_lock=break_lock, timeout=None, reason=None, manifests=manifests, playbooks=playbooks, poll_interval=2.0, config=config, context=context, output=output)


plan.__doc__ = (plan.__doc__ or "") + PLAN_DOC


@phase_app.command("apply", epilog=EXIT_CODES)
def apply(
    ctx: typer.Context,
    phase: Annotated[int, typer.Argument(min=1, help="The phase to move to: the recorded phase + 1 (or the same phase to re-apply it; further only with --force).", show_default=False)],
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    force: ForceOpt = False,
    force_conflicts: ForceConflictsOpt = False,
    break_lock: BreakLockOpt = False,
    timeout: TimeoutOpt = None,
    reason: ReasonOpt = None,
    manifests: ManifestsOpt = None,
    playbooks: PlaybooksOpt = None,
    poll_interval: PollOpt = 2.0,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Move the cluster to phase N: plan and preflight, ask, then claim the migration in etcd (compare-and-set: a
    second operator who planned from the same state is refused before anything is applied), server-side apply every
    object of the phase (field manager gardenctl), wait for every workload to roll out (--timeout), prune what the
    phase no longer has, run the post-checks and record the new phase in etcd (compare-and-set) and the journal. On
    any failure after the claim the recorded phase stays unchanged and the failure is noted in etcd (`status`
    shows it; `rollback` then restores the recorded phase)."""
    _run(ctx, target=phase, rollback=False, plan_only=False, yes=yes, dry_run=dry_run, force=force, force_conflicts=force_conflicts, break_lock=break_lock, timeout=timeout, reason=reason, manifests=manifests, playbooks=playbooks, poll_interval=poll_interval, config=config, context=context, output=output)


apply.__doc__ = (apply.__doc__ or "") + PLAN_DOC


@phase_app.command("rollback", epilog=EXIT_CODES)
def rollback(
    ctx: typer.Context,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    force: ForceOpt = False,
    force_conflicts: ForceConflictsOpt = False,
    break_lock: BreakLockOpt = False,
    timeout: TimeoutOpt = None,
    reason: ReasonOpt = None,
    manifests: ManifestsOpt = None,
    playbooks: PlaybooksOpt = None,
    poll_interval: PollOpt = 2.0,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Return to the previous phase (recorded phase - 1) the same way apply moves forward: plan, the target phase's
    preflight, confirm, claim, apply, rollouts, prune, post-checks, record. Right after a failed apply or rollback
    (the cluster may be between phases), it re-applies the recorded phase instead, restoring it."""
    _run(ctx, target=None, rollback=True, plan_only=False, yes=yes, dry_run=dry_run, force=force, force_conflicts=force_conflicts, break_lock=break_lock, timeout=timeout, reason=reason, manifests=manifests, playbooks=playbooks, poll_interval=poll_interval, config=config, context=context, output=output)


def register(app: typer.Typer) -> None:
    app.add_typer(phase_app, name="migrate-phase")
