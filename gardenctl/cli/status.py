"""`gardenctl status`: one view of every layer (Patroni, etcd, HAProxy) with findings; exit code = worst finding."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from gardenctl.cli.common import ConfigOpt, ContextOpt, Output, OutputOpt, WatchOpt, make_env
from gardenctl.errors import ExitCode

TimeoutOpt = Annotated[
    Optional[float],
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        min=0.1,
        help="Per-endpoint timeout; a layer that does not answer in time is shown as unreachable. "
        "Default: the context's request-timeout-seconds (2).",
        show_default=False,
    ),
]
CountOpt = Annotated[
    Optional[int],
    typer.Option("--count", min=1, metavar="N", help="With --watch: stop after N refreshes (default: until Ctrl-C).", show_default=False),
]

HELP = """Show every layer of the cluster at once: Patroni members (role, state, timeline, lag in bytes, pending
restart, tags, maintenance mode, scheduled switchover), etcd members (id, health, leader, raft term/index, db size
against the quota, alarms, quorum) and HAProxy (each server's status and last check, where read-write goes), then the
findings of the health rules (the same rules as `gardenctl check`).

All layers are asked concurrently; one that does not answer is shown as unreachable and the rest still renders.

Exit code: the worst finding - 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (4 bad config). JSON/YAML keys are stable
field names (`kind: StatusReport`, `version`); an unknown lag is null, never 0.
"""


def register(app: typer.Typer) -> None:
    app.command("status", help=HELP)(status)


def status(
    ctx: typer.Context,
    output: OutputOpt = Output.table,
    watch: WatchOpt = None,
    count: CountOpt = None,
    context: ContextOpt = None,
    config: ConfigOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    env = make_env(ctx, config, context)
    if watch is None:
        if count is not None:
            raise typer.BadParameter("--count only makes sense with --watch", param_hint="--count")
        from gardenctl.cli.fast import status_body

        raise typer.Exit(status_body(env, output=output.value, timeout=timeout))
    from gardenctl.ops.status import PauseTracker, collect

    cluster = env.cluster()
    tracker = PauseTracker(env.state_dir, cluster.name)

    def once():  # noqa: ANN202
        return collect(cluster, timeout=timeout, paused_since=tracker.observe)

    if output is not Output.table:
        raise typer.BadParameter("--watch shows the live table view; use it without -o json/yaml", param_hint="--watch")
    raise typer.Exit(_watch(env, once, watch, count))


def _watch(env, once, interval: float, count: int | None) -> int:  # noqa: ANN001
    """Refresh every ``interval`` seconds. On a terminal: a rich Live view in the alternate screen (fits the pane,
    compact below 100 columns); otherwise each refresh is printed in turn. Ctrl-C ends it with exit code 130 (as
    for any interrupted command); with --count, the exit code is the last refresh's worst finding."""
    from gardenctl.render.status_view import status_renderable

    out = env.out
    code = 0
    refreshes = 0

    def frame():  # noqa: ANN202
        nonlocal code, refreshes
        report = once()
        code = report.severity.exit_code
        refreshes += 1
        footer = f"every {interval:g}s - Ctrl-C to quit" if count is None else f"refresh {refreshes}/{count} every {interval:g}s"
        return status_renderable(report, out.width, footer=footer)

    try:
        if out.is_terminal and not out.is_dumb_terminal:
            from rich.live import Live

            with Live(frame(), console=out, auto_refresh=False, screen=True, redirect_stderr=False) as live:
                while count is None or refreshes < count:
                    time.sleep(interval)
                    live.update(frame(), refresh=True)
        else:
            from gardenctl.render.status_view import print_view

            print_view(out, frame())
            while count is None or refreshes < count:
                time.sleep(interval)
                out.file.write("\n")
                print_view(out, frame())
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)  # 130, as the README's exit-code table says
    return code
