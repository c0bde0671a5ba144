"""What every command shares: the global options, the consoles, config selection, confirmation, the journal."""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from gardenctl.cli.env import Env, RootOptions
from gardenctl.errors import Aborted, PreconditionFailed

__all__ = ["Env", "RootOptions", "make_env", "confirm", "emit", "who", "command_line"]


class Output(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


ConfigOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        "-c",
        help="Config file. Env GARDENCTL_CONFIG; default ~/.config/gardenctl/config.yaml.",
        show_default=False,
        dir_okay=False,
    ),
]
ContextOpt = Annotated[
    Optional[str],
    typer.Option("--context", help="Cluster context to use. Env GARDENCTL_CONTEXT; default: current-context.", show_default=False),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format: table, json or yaml.", case_sensitive=False)]
WatchOpt = Annotated[
    Optional[float],
    typer.Option("--watch", "-w", metavar="SECONDS", min=0.5, help="Refresh every SECONDS in a live view (table output).", show_default=False),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show the plan and the preflight, change nothing.")]


def make_env(ctx: typer.Context, config: Path | None = None, context: str | None = None) -> Env:
    return Env.resolve(ctx.find_root().obj if ctx is not None else None, config, context)


def confirm(env: Env, question: str, *, yes: bool) -> None:
    """Ask before a dangerous step. Without a TTY and without --yes, refuse instead of waiting for input."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise PreconditionFailed(
            "not confirmed: standard input is not a terminal, so gardenctl cannot ask",
            hint="re-run with --yes once you have read the plan (or --dry-run to only see it)",
        )
    if not typer.confirm(question, default=False, err=True):
        raise Aborted("aborted: nothing was changed")


def who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def command_line() -> str:
    """The command as typed, quoted so that `--reason "kernel update"` stays one argument in the journal."""
    return shlex.join(["gardenctl", *sys.argv[1:]])


class Stopwatch:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        return self.clock() - self.start


def emit(env: Env, result: Any, output: Output | str) -> None:
    from gardenctl.render import render

    render(result, output.value if isinstance(output, Output) else output, env.out)
