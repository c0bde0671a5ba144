"""`gardenctl drill run | list | history`: failover drills with measured recovery time and lost writes.

The logic is in `gardenctl.ops.drill`; this module finds the playbook, shows the plan, asks, runs, records
(drill history + operation journal) and decides the exit code.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from gardenctl.cli.common import ConfigOpt, ContextOpt, DryRunOpt, Env, Output, OutputOpt, YesOpt, command_line, confirm, emit, make_env, who

DRILL_HELP = (
    "Failover drills: break the cluster on purpose (a switchover, a killed leader, etcd members down, ...) while a "
    "write probe inserts numbered rows through HAProxy, then measure what clients saw and put everything back.\n\n"
    "Playbooks are YAML files (see `gardenctl drill list`). On a lab context faults go to the lab's processes by "
    "PID; on a real cluster over SSH to the systemd units named in the context's hosts: section."
)

RUN_HELP = (
    "Run the drill NAME (or the playbook in --playbook FILE) and judge it.\n\n"
    "Before: a preflight (refuses a paused or unhealthy cluster; --force overrides the health checks, never the pause) "
    "and a confirmation (--yes to skip it; without a terminal gardenctl refuses to guess). During: a write probe "
    "through the read-write port (numbered INSERTs, --rate per second), a read probe through the read-only port, "
    "Patroni and HAProxy watched 5 times a second; progress on stderr. After: everything the drill stopped is "
    "started again and gardenctl waits for full health (etcd, one leader, every replica streaming, HAProxy routed); "
    "the new primary is read directly to find acknowledged writes that were lost.\n\n"
    "The result - each figure against the playbook's threshold, PASS/FAIL - goes to stdout and to the drill history "
    "in the state directory (`gardenctl drill history`); the run is recorded in the operation journal."
)

EXIT_CODES = (
    "Exit codes: 0 every threshold held and the cluster is healthy again; 8 a threshold failed, a step failed, or the "
    "cluster could not be brought back to full health (said in the last line); 7 refused (preflight, not confirmed, "
    "no terminal without --yes); 4 bad playbook or config; 5/6 a backend could not be reached / answered an error "
    "before anything was changed."
)

drill_app = typer.Typer(help=DRILL_HELP, no_args_is_help=True)


def playbook_dirs(env: Env) -> tuple[tuple[Path, str], ...]:
    """Shipped playbooks, then the user's own (~/.config/gardenctl/drills/*.yaml, shadowing shipped ones by name)."""
    from gardenctl.config import default_config_path
    from gardenctl.ops.drill.playbook import builtin_playbook_dirs

    dirs = [(d, "builtin") for d in builtin_playbook_dirs()]
    base = env.config_path.expanduser().parent if env.config_path else default_config_path().parent
    dirs.append((base / "drills", "user"))
    return tuple(dirs)


@drill_app.command("list")
def list_cmd(ctx: typer.Context, config: ConfigOpt = None, output: OutputOpt = Output.table) -> None:
    """List the drill playbooks: the shipped ones and yours (in drills/ next to the config file). A playbook with an
    error is listed with it. Exit 4 if any playbook is invalid."""
    from gardenctl.errors import ConfigError
    from gardenctl.ops.drill.playbook import list_playbooks

    env = make_env(ctx, config)
    result = list_playbooks(playbook_dirs(env))
    emit(env, result, output)
    broken = [p for p in result.playbooks if p.error]
    if broken:
        raise ConfigError(f"{len(broken)} playbook(s) are invalid: " + "; ".join(p.error or "" for p in broken))


@drill_app.command("run", help=RUN_HELP, epilog=EXIT_CODES)
def run_cmd(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="Playbook name (gardenctl drill list).", show_default=False)] = None,
    playbook_file: Annotated[
        Optional[Path],
        typer.Option("--playbook", help="Run the playbook in this YAML file instead of a named one.", dir_okay=False, show_default=False),
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", "-n", min=1, max=1000, help="Run it N times in a row (stops early if the cluster is not healthy again).")] = 1,
    report: Annotated[
        Optional[Path], typer.Option("--report", help="Also write a Markdown report (figures, thresholds, timeline) to this file.", dir_okay=False, show_default=False)
    ] = None,
    rate: Annotated[
        Optional[float], typer.Option("--rate", min=1.0, max=200.0, help="Probe writes (and reads) per second; default: the playbook's (20).", show_default=False)
    ] = None,
    failsafe: Annotated[
        Optional[bool],
        typer.Option("--failsafe/--no-failsafe", help="Turn Patroni's failsafe_mode on/off for the drill (PATCH /config), restored afterwards. Default: leave it as it is.", show_default=False),
    ] = None,
    recovery_timeout: Annotated[float, typer.Option("--recovery-timeout", min=10, help="Seconds to wait for full health after the drill.")] = 180.0,
    probe_log: Annotated[
        Optional[Path],
        typer.Option("--probe-log", help="Append every probe attempt (id, times, server, timeline, error) as JSON lines to this file.", dir_okay=False, show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Run even if the preflight finds the cluster unhealthy (a replica not streaming, an etcd member down, HAProxy not routed). Never on a paused cluster.")] = False,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    from gardenctl import journal
    from gardenctl.errors import GardenError, OperationFailed
    from gardenctl.ops.drill import history
    from gardenctl.ops.drill.context import adapters_for
    from gardenctl.ops.drill.playbook import resolve_playbook
    from gardenctl.ops.drill.report import report_markdown
    from gardenctl.ops.drill.result import DrillReport
    from gardenctl.ops.drill.runner import DrillOptions, plan_drill, run_drill

    env = make_env(ctx, config, context)
    playbook = resolve_playbook(name, playbook_file, playbook_dirs(env))
    cluster = env.cluster()
    options = DrillOptions(rate=rate, force=force, failsafe=failsafe, recovery_timeout_seconds=recovery_timeout)
    adapters = adapters_for(cluster)
    entry = journal.new_entry("drill", who=who(), context=cluster.name, command_line=command_line(), reason=f"drill {playbook.name}")
    started = time.monotonic()
    runs: list[Any] = []
    executing = False
    try:
        env.progress(f"drill {playbook.name} on {cluster.name}: reading the cluster (Patroni, etcd, HAProxy, fault target) ...")
        plan = plan_drill(playbook, adapters, options, repeat=repeat)
        from gardenctl.render import render

        if dry_run:
            emit(env, plan, output)
        else:
            render(plan, "table", env.err)
        if not plan.ok:
            failed = plan.blocking
            overridable = all(c.overridable for c in failed)
            from gardenctl.errors import PreconditionFailed

            raise PreconditionFailed(
                f"drill {playbook.name} refused: " + "; ".join(f"{c.name}: {c.detail}" for c in failed),
                hint="--force runs it anyway on an unhealthy cluster" if overridable else None,
            )
        if dry_run:
            env.progress("dry run: the preflight passed; nothing was changed")
            return
        confirm(env, f"Run drill {playbook.name} on {cluster.name} ({repeat} time{'s' if repeat > 1 else ''})? It breaks the cluster on purpose.", yes=yes)
        executing = True
        for i in range(1, repeat + 1):
            if i > 1:
                again = plan_drill(playbook, adapters, options)
                if not again.ok:
                    env.progress(f"stopping after {i - 1} run(s): " + "; ".join(f"{c.name}: {c.detail}" for c in again.blocking))
                    break
            env.progress(f"--- run {i}/{repeat}: {playbook.summary}")
            sink = _attempt_sink(env, probe_log) if probe_log else None
            run = _run_with_status(
                env, lambda status, i=i, sink=sink: run_drill(playbook, adapters, options, iteration=i, progress=env.progress, status=status, on_attempts=sink)
            )
            runs.append(run)
            try:
                path = history.append(env.state_dir, run)
            except GardenError as err:
                env.err.print(f"warning: {err.message}", highlight=False)
                path = None
            verdict = "PASS" if run.passed else "FAIL"
            env.progress(f"run {i}/{repeat}: {verdict}" + (f" ({', '.join(run.failed_figures)})" if run.failed_figures else "") + (f"; recorded in {path}" if path else ""))
            if run.interrupted:
                raise KeyboardInterrupt  # recorded above; the boundary says "Interrupted." and exits 130
            if not run.recovered:
                break
        result = DrillReport(
            playbook=playbook.name,
            summary=playbook.summary,
            context=cluster.name,
            runs=tuple(runs),
            history_file=str(history.history_path(env.state_dir)),
            report_file=str(report) if report else None,
        )
        if report is not None:
            try:
                report.write_text(report_markdown(result, command_line()))
                env.progress(f"report written to {report}")
            except OSError as exc:
                env.err.print(f"warning: cannot write the report {report}: {exc.strerror or exc}", highlight=False)
        emit(env, result, output)
        not_recovered = [r for r in runs if not r.recovered]
        if not_recovered:
            raise OperationFailed(
                f"drill {playbook.name}: the cluster is NOT back to full health: {not_recovered[-1].recovery_message}",
                hint="see `gardenctl status`" + ("; the lab's logs: gardenctl lab logs NAME" if adapters.target.kind == "lab" else ""),
            )
        failed_runs = [r for r in runs if not r.passed]
        if failed_runs or len(runs) < repeat:
            reasons = sorted({f for r in failed_runs for f in r.failed_figures} | {"a step failed" for r in failed_runs if r.aborted})
            raise OperationFailed(
                f"drill {playbook.name}: {len(failed_runs)} of {len(runs)} run(s) failed" + (f" ({', '.join(reasons)})" if reasons else "")
                + (f"; stopped after {len(runs)} of {repeat}" if len(runs) < repeat else "")
            )
    except BaseException as exc:
        if not dry_run:
            _journal(env, entry, started, playbook.name, runs, exc, executing)
        raise
    else:
        if not dry_run:
            _journal(env, entry, started, playbook.name, runs, None, executing)
    finally:
        adapters.close()


def _attempt_sink(env: Env, path: Path) -> Any:
    """Write each probe attempt as one JSON line (times: seconds since the drill started)."""
    import json

    def sink(run_id: str, probe: str, attempts: list[Any]) -> None:
        try:
            with open(path, "a") as fh:
                for a in attempts:
                    row = {"run_id": run_id, "probe": probe, "id": a.id, "started": round(a.started, 4), "finished": round(a.finished, 4),
                           "ok": a.ok, "server": a.server, "timeline": a.timeline, "in_recovery": a.in_recovery, "error": a.error}
                    fh.write(json.dumps(row) + "\n")
        except OSError as exc:
            env.err.print(f"warning: cannot write the probe log {path}: {exc.strerror or exc}", highlight=False)

    return sink


def _run_with_status(env: Env, fn: Any) -> Any:
    """A live one-line status on a terminal (stderr); nothing extra otherwise."""
    if not env.err.is_terminal:
        return fn(None)
    with env.err.status("starting ...") as live:
        return fn(lambda line: live.update(line))


def _journal(env: Env, entry: Any, started: float, playbook: str, runs: list[Any], exc: BaseException | None, executing: bool) -> None:
    from gardenctl import journal
    from gardenctl.errors import GardenError
    from gardenctl.model import Moment

    if exc is None:
        outcome, message = journal.SUCCEEDED, f"drill {playbook}: {len(runs)} run(s) passed"
    elif isinstance(exc, KeyboardInterrupt):
        outcome = journal.outcome_for_error(exc)
        message = "interrupted" + (f" during run {len(runs)}; the cluster was recovered: {runs[-1].recovery_message}" if runs and runs[-1].recovered else "")
    else:
        outcome = journal.FAILED if runs else journal.outcome_for_error(exc)
        message = exc.message if isinstance(exc, GardenError) else str(exc)
    details = {
        "playbook": playbook,
        "runs": [
            {
                "run_id": r.run_id,
                "passed": r.passed,
                "recovered": r.recovered,
                "leader_before": r.leader_before,
                "leader_after": r.leader_after,
                "failed": list(r.failed_figures),
                "figures": {f.name: f.value for f in r.figures},
            }
            for r in runs
        ],
    }
    moments = tuple(Moment(e.what, e.seconds) for e in runs[-1].events) if runs else ()
    full = dataclasses.replace(
        entry, outcome=outcome, message=message, changed=executing, duration_seconds=time.monotonic() - started, moments=moments, details=details
    )
    try:
        path = journal.record(env.state_dir, full)
    except GardenError as err:
        env.err.print(f"warning: {err.message}", highlight=False)
        return
    env.progress(f"recorded in the operation journal {path} ({outcome})")


@drill_app.command("history")
def history_cmd(
    ctx: typer.Context,
    playbook: Annotated[Optional[str], typer.Option("--playbook", "-p", help="Only runs of this playbook.", show_default=False)] = None,
    all_contexts: Annotated[bool, typer.Option("--all-contexts", help="Runs on every context, not just the current one.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-l", min=0, help="Show the newest N runs (0: all).")] = 50,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Every drill run with its figures (state directory, drill-history.jsonl), oldest first. By default only the
    current context's runs; without a config file, every context's."""
    from gardenctl.errors import ConfigError
    from gardenctl.ops.drill import history

    env = make_env(ctx, config, context)
    ctx_name = None
    if not all_contexts:
        try:
            ctx_name = env.cluster().name
        except ConfigError:
            ctx_name = None
    result = history.read(env.state_dir, limit=limit or None, playbook=playbook, context=ctx_name)
    emit(env, result, output)


def register(app: typer.Typer) -> None:
    app.add_typer(drill_app, name="drill")
