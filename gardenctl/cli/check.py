"""`gardenctl check`: the status rules as a monitoring plugin (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from typer.core import TyperCommand

# typer 0.29 parses with its own copy of click (typer._click), as cli/main.py's boundary knows.
from typer._click.exceptions import UsageError

from gardenctl.cli.common import ConfigOpt, ContextOpt, make_env


class CheckOutput(str, Enum):
    text = "text"
    json = "json"


HELP = """Run the health rules once and answer like a monitoring plugin (Nagios, Icinga, cron): the first line is a
summary such as `CRITICAL - no leader; 2 warnings`, then one line per finding (worst first, with hints).

Exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Anything that stops the check itself (bad config, a missing
password file it needs, unknown context, no rule selected) is `UNKNOWN - <reason>` with exit 3, as monitoring expects.

Thresholds come from the context's `thresholds:` section (lag-warning-bytes, lag-critical-bytes,
maintenance-critical-minutes, etcd-db-warning-percent). How long maintenance mode has been on is remembered in the
state directory (GARDENCTL_STATE_DIR), since Patroni does not record it.

Examples:

  gardenctl check --context prod --perfdata

  gardenctl check --quiet --prometheus /var/lib/node_exporter/textfile/gardenctl.prom   # from cron

  gardenctl check --skip etcd_db_size --only 'patroni_*,haproxy_rw'
"""


class _PluginCommand(TyperCommand):
    """Usage errors answer like a monitoring plugin: ``UNKNOWN - <problem>`` on stdout and exit 3 (click's usage
    exit code 2 would read as CRITICAL to Nagios/Icinga)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # noqa: ANN001
        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            from gardenctl.cli.main import plain_usage_message

            typer.echo(f"UNKNOWN - usage: {plain_usage_message(exc.format_message())} (see gardenctl check --help)")
            raise typer.Exit(3) from exc


def register(app: typer.Typer) -> None:
    app.command("check", help=HELP, cls=_PluginCommand)(check)


def check(
    ctx: typer.Context,
    output: Annotated[
        CheckOutput,
        typer.Option("--output", "-o", case_sensitive=False, help="text: plugin lines; json: a stable document (kind CheckResult)."),
    ] = CheckOutput.text,
    perfdata: Annotated[bool, typer.Option("--perfdata", help="Append perfdata to the first line (lag per replica in bytes with thresholds, etcd db sizes).")] = False,
    prometheus: Annotated[
        Optional[Path],
        typer.Option(
            "--prometheus",
            metavar="FILE",
            dir_okay=False,
            help="Also write node_exporter textfile-collector metrics to FILE (atomically; name it *.prom).",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing when everything is OK (for cron mail).")] = False,
    only: Annotated[
        Optional[List[str]],
        typer.Option("--only", metavar="RULES", help="Run only these rules (names or patterns like 'etcd_*'; repeat or comma-separate).", show_default=False),
    ] = None,
    skip: Annotated[
        Optional[List[str]],
        typer.Option("--skip", metavar="RULES", help="Skip these rules (names or patterns; repeat or comma-separate).", show_default=False),
    ] = None,
    list_rules: Annotated[bool, typer.Option("--list-rules", help="List the rule names with what each checks, and exit.")] = False,
    timeout: Annotated[
        Optional[float],
        typer.Option("--timeout", metavar="SECONDS", min=0.1, help="Per-endpoint timeout (default: the context's request-timeout-seconds, 2).", show_default=False),
    ] = None,
    context: ContextOpt = None,
    config: ConfigOpt = None,
) -> None:
    from gardenctl.cli.fast import check_body

    env = make_env(ctx, config, context)
    if list_rules:
        _list_rules(env, only or (), skip or ())
        raise typer.Exit(0)
    code = check_body(
        env, output=output.value, perfdata=perfdata, prometheus=prometheus, quiet=quiet, only=only or (), skip=skip or (), timeout=timeout
    )
    raise typer.Exit(code)


def _list_rules(env, only, skip) -> None:  # noqa: ANN001
    from gardenctl.ops.rules import RULES, select_rules

    from gardenctl.errors import GardenError

    try:
        cluster = env.cluster()
    except GardenError:  # listing rules works without a config; only optional layers need one
        cluster = None
    if cluster is not None:
        from gardenctl.ops.status import optional_layers_for

        optional_layers_for(cluster)  # registers the rules of the optional layers this context has
    names = select_rules(only, skip)
    width = max((len(n) for n in names), default=10)
    for name in names:
        r = RULES[name]
        env.out.file.write(f"{name.ljust(width)}  {r.description}\n")
    env.out.file.flush()
