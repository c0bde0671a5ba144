"""The fast path for what cron and monitoring run every minute: `gardenctl check` and `gardenctl status`.

Building the Typer app costs more than the check itself (typer validates every option through pydantic: ~100 ms per
start on a small machine). For these two commands, when the arguments are plain (no --help, no --watch, nothing
unexpected), this module parses them itself and runs the very same command bodies (`check_body`, `status_body`,
which the Typer commands call too). Anything it does not recognise - including a bad value - falls back to the full
CLI, which answers with the proper usage error. `tests/unit/test_fastpath.py` checks that both parsers know the
same options, so the two cannot drift apart silently.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gardenctl.cli.env import Env, RootOptions


@dataclass(frozen=True)
class Opt:
    """One option as the fast parser understands it. ``kind``: flag | str | path | float | int | list | choice."""

    names: tuple[str, ...]
    dest: str
    kind: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None


ROOT_OPTS = (
    Opt(("--config", "-c"), "config", "path"),
    Opt(("--context",), "context", "str"),
    Opt(("--debug",), "debug", "flag"),
)
COMMON = (Opt(("--context",), "context", "str"), Opt(("--config", "-c"), "config", "path"))

CHECK_OPTS = (
    Opt(("--output", "-o"), "output", "choice", ("text", "json")),
    Opt(("--perfdata",), "perfdata", "flag"),
    Opt(("--prometheus",), "prometheus", "path"),
    Opt(("--quiet", "-q"), "quiet", "flag"),
    Opt(("--only",), "only", "list"),
    Opt(("--skip",), "skip", "list"),
    Opt(("--timeout",), "timeout", "float", minimum=0.1),
    *COMMON,
)
STATUS_OPTS = (
    Opt(("--output", "-o"), "output", "choice", ("table", "json", "yaml")),
    Opt(("--timeout",), "timeout", "float", minimum=0.1),
    *COMMON,
)
# Options of the Typer commands that the fast path leaves to the full CLI on purpose.
FULL_CLI_ONLY = {"check": {"--list-rules", "--help", "-h"}, "status": {"--watch", "-w", "--count", "--help", "-h"}}


class _Fallback(Exception):
    """The arguments need the full CLI."""


def _value(opt: Opt, raw: str) -> Any:
    if opt.kind in ("str", "list"):
        return raw
    if opt.kind == "path":
        if not raw:
            raise _Fallback
        return Path(raw)
    if opt.kind == "choice":
        lowered = raw.lower()
        if lowered not in opt.choices:
            raise _Fallback
        return lowered
    try:
        number = float(raw) if opt.kind == "float" else int(raw)
    except ValueError as exc:
        raise _Fallback from exc
    if number != number or number in (float("inf"), float("-inf")):  # nan, inf: let the full CLI refuse
        raise _Fallback
    if opt.minimum is not None and number < opt.minimum:
        raise _Fallback
    return number


def parse(opts: tuple[Opt, ...], args: list[str], *, stop_at_positional: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Parse ``args`` against ``opts``. Returns (values, remaining args from the first positional on, if allowed)."""
    by_name = {name: opt for opt in opts for name in opt.names}
    values: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                return values, args[i:]
            raise _Fallback
        name, eq, inline = arg.partition("=")
        opt = by_name.get(name)
        if opt is None or (eq and not name.startswith("--")):  # click reads `-o=json` as the value "=json"
            raise _Fallback
        if opt.kind == "flag":
            if eq:
                raise _Fallback
            values[opt.dest] = True
            i += 1
            continue
        if eq:
            raw = inline
            i += 1
        else:
            if i + 1 >= len(args):
                raise _Fallback
            raw = args[i + 1]
            i += 2
        value = _value(opt, raw)
        if opt.kind == "list":
            values.setdefault(opt.dest, []).append(value)
        else:
            values[opt.dest] = value
    return values, []


# ------------------------------------------------------------------------------------------------ command bodies


def check_body(
    env: Env,
    *,
    output: str = "text",
    perfdata: bool = False,
    prometheus: Path | None = None,
    quiet: bool = False,
    only: list[str] | tuple[str, ...] = (),
    skip: list[str] | tuple[str, ...] = (),
    timeout: float | None = None,
) -> int:
    """`gardenctl check` after parsing: run the rules, write the plugin lines or JSON, return the plugin exit code.
    Every GardenError (bad config, missing secret) becomes ``UNKNOWN - <reason>``, as monitoring expects."""
    from gardenctl.errors import GardenError
    from gardenctl.ops.check import plugin_lines, run_check, unknown_result

    name = env.context
    try:
        cluster = env.cluster()
        name = cluster.name
        result = run_check(cluster, timeout=timeout, only=only or (), skip=skip or (), state_dir=env.state_dir)
    except GardenError as exc:
        result = unknown_result(exc.message, name, hint=exc.hint)

    if prometheus is not None:
        from gardenctl.ops.check import with_finding
        from gardenctl.render.prometheus import check_metrics, write_textfile

        try:
            write_textfile(prometheus, check_metrics(result))
        except OSError as exc:
            result = with_finding(result, f"cannot write --prometheus file {prometheus}: {exc.strerror or exc}")

    if quiet and result.status.exit_code == 0:
        return 0
    if output == "json":
        import json

        from gardenctl.render import document

        sys.stdout.write(json.dumps(document(result), indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(plugin_lines(result, perfdata=perfdata)) + "\n")
    sys.stdout.flush()
    return result.status.exit_code


def status_body(env: Env, *, output: str = "table", timeout: float | None = None) -> int:
    """`gardenctl status` (one shot) after parsing: collect, render, return the worst finding's exit code."""
    from gardenctl.ops.status import PauseTracker, collect

    cluster = env.cluster()
    tracker = PauseTracker(env.state_dir, cluster.name)
    report = collect(cluster, timeout=timeout, paused_since=tracker.observe)
    if output == "table":
        from gardenctl.render.status_view import print_view, status_renderable

        print_view(env.out, status_renderable(report, env.out.width))
    else:
        from gardenctl.render import render

        render(report, output, env.out)
    return report.severity.exit_code


# ------------------------------------------------------------------------------------------------ dispatch


def _run_check(env: Env, values: dict[str, Any]) -> int:
    return check_body(
        env,
        output=values.get("output", "text"),
        perfdata=values.get("perfdata", False),
        prometheus=values.get("prometheus"),
        quiet=values.get("quiet", False),
        only=values.get("only", ()),
        skip=values.get("skip", ()),
        timeout=values.get("timeout"),
    )


def _run_status(env: Env, values: dict[str, Any]) -> int:
    return status_body(env, output=values.get("output", "table"), timeout=values.get("timeout"))


COMMANDS: dict[str, tuple[tuple[Opt, ...], Callable[[Env, dict[str, Any]], int]]] = {
    "check": (CHECK_OPTS, _run_check),
    "status": (STATUS_OPTS, _run_status),
}


def plan(argv: list[str]) -> tuple[Callable[[Env, dict[str, Any]], int], Env, dict[str, Any]] | None:
    """What the fast path would run for ``argv``, or None when the full CLI must handle it."""
    try:
        root_values, rest = parse(ROOT_OPTS, argv, stop_at_positional=True)
        if not rest or rest[0] not in COMMANDS:
            return None
        opts, runner = COMMANDS[rest[0]]
        values, _ = parse(opts, rest[1:])
    except _Fallback:
        return None
    root = RootOptions(config_path=root_values.get("config"), context=root_values.get("context"), debug=root_values.get("debug", False))
    env = Env.resolve(root, values.get("config"), values.get("context"))
    return runner, env, values


def run(argv: list[str]) -> int | None:
    """Run ``argv`` on the fast path and return its exit code, or None to use the full CLI."""
    planned = plan(argv)
    if planned is None:
        return None
    runner, env, values = planned
    return runner(env, values)
