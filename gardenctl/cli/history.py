"""`gardenctl history`: the operation journal next to Patroni's timeline history."""

from __future__ import annotations

from typing import Annotated

import typer

from gardenctl.cli.common import ConfigOpt, ContextOpt, Output, OutputOpt, emit, make_env

HISTORY_HELP = (
    "Show what was done to the cluster: the operation journal (every switchover, failover and other mutating "
    "gardenctl command: when, who, context, command line, reason, outcome, timings) next to Patroni's own timeline "
    "history (every promotion, whoever caused it), merged by time.\n\n"
    "A timeline switch without a journal entry next to it was not done by gardenctl here: an automatic failover, "
    "patronictl, or gardenctl on another machine (each machine keeps its own journal in its state directory, "
    "GARDENCTL_STATE_DIR or ~/.local/state/gardenctl).\n\n"
    "Works when the cluster is down: the journal is local, and Patroni is shown as unreachable. Exit 0 whenever the "
    "journal could be read."
)


def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Show the newest N rows (0: none, only the header).")] = 20,
    all_contexts: Annotated[bool, typer.Option("--all-contexts", help="Show journal entries of every context, not only the current one.")] = False,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """The operation journal next to Patroni's timeline history (help: HISTORY_HELP)."""
    from gardenctl.errors import ConfigError
    from gardenctl.ops.history import get_history

    env = make_env(ctx, config, context)
    cfg = env.config()  # a malformed file is an error; a missing one only means "journal only"
    cluster = None
    problem = None
    if cfg.exists:
        cluster = env.cluster()  # an unknown --context is the user's mistake: say so (exit 4)
    else:
        problem = f"no config file at {cfg.path}: showing the journal only"
    patroni = None
    if cluster is not None:
        from gardenctl.ops.clients import patroni_client

        try:
            patroni = patroni_client(cluster, read_only=True)
        except ConfigError as exc:
            problem = exc.message
    try:
        report = get_history(
            env.state_dir,
            patroni,
            context=None if all_contexts or cluster is None else cluster.name,
            limit=limit,
            patroni_problem=problem,
        )
    finally:
        if patroni is not None:
            patroni.close()
    if not report.patroni_reachable:
        env.progress(f"Patroni history not available: {report.patroni_error}")
    emit(env, report, output)


def register(app: typer.Typer) -> None:
    app.command("history", help=HISTORY_HELP)(history)
