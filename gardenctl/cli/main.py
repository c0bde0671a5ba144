"""The `gardenctl` entry point and the one error boundary.

A `GardenError` becomes ``Error: <message>`` (+ ``hint: ...``) on stderr and its documented exit code.
Anything else is a bug: one line by default, the traceback with ``--debug`` or GARDENCTL_DEBUG=1.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from gardenctl import __version__
from gardenctl.cli.common import RootOptions
from gardenctl.errors import ExitCode, GardenError
from gardenctl.render import make_console

# typer 0.29 vendors its own click (typer._click); its Exit/Abort are typer.Exit/typer.Abort.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError as ClickUsageError

INTERNAL_ERROR = 70

app = typer.Typer(
    name="gardenctl",
    help=(
        "Ops console for the GardenOS stack: PostgreSQL run by Patroni with etcd, HAProxy in front, K3s for the "
        "services, all on Hetzner Cloud.\n\n"
        "Start with `gardenctl lab up` (a real local cluster) and `gardenctl status`."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gardenctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", "-c", help="Config file. Env GARDENCTL_CONFIG; default ~/.config/gardenctl/config.yaml.", dir_okay=False, show_default=False),
    ] = None,
    context: Annotated[
        Optional[str],
        typer.Option("--context", help="Cluster context to use for this command. Env GARDENCTL_CONTEXT.", show_default=False),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for internal errors.", envvar="GARDENCTL_DEBUG")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)] = False,
) -> None:
    ctx.obj = RootOptions(config_path=config, context=context, debug=debug)


# One module per command (or command group) under gardenctl/cli/, each exposing `register(app)`. Only the module of
# the command being run is imported (a cron `gardenctl check` pays for nothing else); --help and completion
# generation register them all. Keys are the command names a user types.
COMMANDS = {
    "status": "status",
    "check": "check",
    "switchover": "switchover",
    "failover": "switchover",
    "history": "history",
    "lab": "lab",
    "config": "config_cmd",
    "drill": "drill",
    "bootstrap": "bootstrap",
    "migrate-phase": "migrate",
    "db": "db",
    "k9s": "k9s",
}
_ROOT_OPTIONS_WITH_VALUE = ("--config", "-c", "--context")
_registered: set[str] = set()


def _register(module_name: str) -> None:
    if module_name in _registered:
        return
    importlib.import_module(f"gardenctl.cli.{module_name}").register(app)
    _registered.add(module_name)


def command_name(argv: list[str]) -> str | None:
    """The subcommand in ``argv`` (skipping the root options), or None (no command, --help, --version)."""
    args = iter(argv)
    for arg in args:
        if arg in _ROOT_OPTIONS_WITH_VALUE:
            next(args, None)
        elif arg == "--":
            return None
        elif not arg.startswith("-"):
            return arg
    return None


def full_app() -> typer.Typer:
    """The app with every command registered (help, completions, tests that walk the tree)."""
    for module_name in dict.fromkeys(COMMANDS.values()):
        _register(module_name)
    return app


def app_for(argv: list[str]) -> typer.Typer:
    name = command_name(argv)
    if name in COMMANDS:
        _register(COMMANDS[name])
        return app
    return full_app()


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("GARDENCTL_DEBUG", "").lower() in ("1", "true", "yes")


def _help_layout() -> None:
    """Help in click's plain layout, always: it wraps every line to the terminal (or 80 columns in a pipe) and never
    cuts anything off. rich's option tables truncate option names on narrow terminals, show a type for every flag
    (``--yes <bool>``, which reads as if it took a value) and keep the hard line breaks of a command's docstring in
    the command list."""
    import typer.core

    typer.core.HAS_RICH = False


_VALIDATION_WORDING = (
    # typer validates values with pydantic, whose messages are written for API payloads
    (re.compile(r"Value error, "), ""),
    (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be at least \1"),
    (re.compile(r"Input should be less than or equal to (\S+)"), r"must be at most \1"),
    (re.compile(r"Input should be greater than (\S+)"), r"must be more than \1"),
    (re.compile(r"Input should be less than (\S+)"), r"must be less than \1"),
    (re.compile(r"Input should be a valid number, unable to parse string as a number"), "not a number"),
    (re.compile(r"Input should be a valid integer, unable to parse string as an integer"), "not a whole number"),
    (re.compile(r"Input should be a valid integer, got a number with a fractional part"), "not a whole number"),
    (re.compile(r"Input should be a valid boolean, unable to interpret input"), "not true or false"),
)


def plain_usage_message(message: str) -> str:
    """A usage error in an operator's words: "Invalid value for '--watch': must be at least 0.5"."""
    for pattern, replacement in _VALIDATION_WORDING:
        message = pattern.sub(replacement, message)
    return message


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    err = make_console(stderr=True)
    _help_layout()
    command = typer.main.get_command(app_for(argv))
    try:
        result = command.main(args=argv, prog_name="gardenctl", standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except GardenError as exc:
        err.print(f"[bold red]Error:[/bold red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        for line in exc.details:
            err.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err.print(f"[yellow]hint:[/yellow] {escape(exc.hint)}", highlight=False, soft_wrap=True)
        return int(exc.exit_code)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err.print("Aborted.", highlight=False)
        return int(ExitCode.ABORTED)
    except NoArgsIsHelpError as exc:
        # `gardenctl`, `gardenctl lab`, ... without a subcommand: the help is the answer (exit 2, as click does).
        sys.stderr.write(exc.format_message().rstrip("\n") + "\n")
        return int(exc.exit_code)
    except ClickUsageError as exc:
        # One error line and a hint, laid out like every other gardenctl error (click prints three lines).
        err.print(f"[bold red]Error:[/bold red] {escape(plain_usage_message(exc.format_message()))}", highlight=False, soft_wrap=True)
        path = exc.ctx.command_path if exc.ctx is not None else "gardenctl"
        err.print(f"[yellow]hint:[/yellow] {escape(path)} -h shows the usage", highlight=False, soft_wrap=True)
        return int(exc.exit_code)
    except ClickException as exc:
        exc.show(file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        err.print("Interrupted.", highlight=False)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the boundary: anything else is a bug
        if _debug_requested(argv):
            err.print_exception(show_locals=False)
        else:
            err.print(
                f"[bold red]Error:[/bold red] internal error: {escape(type(exc).__name__)}: {escape(str(exc))} "
                "(this is a gardenctl bug; re-run with --debug for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
        return INTERNAL_ERROR


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
