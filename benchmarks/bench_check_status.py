#!/usr/bin/env python3
"""Time `gardenctl check`, `gardenctl status -o json` and `patronictl list` against the same running lab.

Each command runs as a new process, as cron or a user would run it. The three are interleaved (rotating order) so a
change in machine load hits all of them alike; after one warm-up run each, N timed runs each. The result (median,
p90, ratios of the medians against `patronictl list`) goes to docs/benchmarks/check-status.md together with the exact
command that produced it.

Goals (issue 3): check <= 0.3 x, status <= 0.4 x the time of `patronictl list`.

Usage (a lab must be running; `gardenctl lab up` writes the 'lab' context):

    .venv/bin/python benchmarks/bench_check_status.py --config ~/.config/gardenctl/config.yaml --context lab --runs 30

The patronictl config is derived from the context (scope, REST credentials, etcd endpoints) into a temporary file.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"check": 0.3, "status": 0.4, "status-table": 0.4}


def patronictl_config(config: Path | None, context: str | None) -> str:
    from gardenctl.config import load_config, select_cluster

    cluster = select_cluster(load_config(config), context)
    rest: dict[str, object] = {}
    if cluster.patroni.username:
        rest["authentication"] = {"username": cluster.patroni.username, "password": cluster.patroni.password.resolve("patroni") or ""}
    hosts = ",".join(e.split("://", 1)[1].rstrip("/") for e in cluster.etcd.endpoints)
    doc = {"scope": cluster.scope, "restapi": rest, "etcd3": {"hosts": hosts}}
    return yaml.safe_dump(doc, sort_keys=False)


NOT_OK: list[str] = []


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall-clock seconds, CPU seconds (user + system of the child) and the exit code of one run. CPU time is less
    disturbed than wall time when other work shares the machine, so both are reported. The first line of a run that
    did not exit 0 is kept for the report (a benchmark of a degraded cluster is not the same benchmark)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        out = proc.stdout.decode(errors="replace")
        line = out.splitlines()[0] if out else proc.stderr.decode(errors="replace").strip()[:200]
        if "check" in cmd:
            NOT_OK.append(line)
        elif '"severity"' in out:
            import json

            try:
                doc = json.loads(out)
                NOT_OK.append("status: " + "; ".join(f"{f['severity']} {f['message']}" for f in doc["findings"] if f["severity"] != "OK"))
            except ValueError:
                NOT_OK.append(line)
    return wall, cpu, proc.returncode


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="gardenctl config file (default: GARDENCTL_CONFIG or ~/.config/gardenctl/config.yaml)")
    parser.add_argument("--context", default=None, help="context of the running lab (default: current-context)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command (default 20)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks" / "check-status.md", help="markdown file to write")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    bindir = Path(sys.executable).parent
    gardenctl = [str(bindir / "gardenctl")] if (bindir / "gardenctl").exists() else [sys.executable, "-m", "gardenctl"]
    patronictl = shutil.which("patronictl", path=str(bindir)) or shutil.which("patronictl")
    if not patronictl:
        print("patronictl not found (pip install 'gardenctl[lab]')", file=sys.stderr)
        return 2
    base = list(gardenctl)
    if args.config:
        base += ["--config", str(args.config)]
    if args.context:
        base += ["--context", args.context]
    state = tempfile.mkdtemp(prefix="bench-state-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARDENCTL_STATE")}
    env["GARDENCTL_STATE_DIR"] = state
    env.setdefault("NO_COLOR", "1")
    env["COLUMNS"] = "120"
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        fh.write(patronictl_config(args.config, args.context))
        pctl_config = fh.name
    os.chmod(pctl_config, 0o600)
    commands = {
        "check": [*base, "check"],
        "status": [*base, "status", "-o", "json"],
        "status-table": [*base, "status"],
        "patronictl": [patronictl, "-c", pctl_config, "list"],
    }
    shown = {
        "check": "gardenctl check",
        "status": "gardenctl status -o json",
        "status-table": "gardenctl status (table, 120 columns)",
        "patronictl": "patronictl -c <derived from the context> list",
    }
    load_before = os.getloadavg()
    codes: dict[str, set[int]] = {k: set() for k in commands}
    for name, cmd in commands.items():  # warm-up: page cache, .pyc files
        _, _, code = timed(cmd, env)
        codes[name].add(code)
    times: dict[str, list[float]] = {k: [] for k in commands}
    cpu: dict[str, list[float]] = {k: [] for k in commands}
    order = list(commands)
    for i in range(args.runs):
        rotated = order[i % len(order):] + order[: i % len(order)]
        for name in rotated:
            seconds, cpu_seconds, code = timed(commands[name], env)
            times[name].append(seconds)
            cpu[name].append(cpu_seconds)
            codes[name].add(code)
    load_after = os.getloadavg()
    os.unlink(pctl_config)
    shutil.rmtree(state, ignore_errors=True)

    median = {k: statistics.median(v) for k, v in times.items()}
    ninety = {k: p90(v) for k, v in times.items()}
    cpu_median = {k: statistics.median(v) for k, v in cpu.items()}
    ratio = {k: median[k] / median["patronictl"] for k in GOALS}
    cpu_ratio = {k: cpu_median[k] / cpu_median["patronictl"] for k in GOALS}
    rows = [
        "| command | wall median | wall p90 | wall min | ratio (wall median) | CPU median | ratio (CPU) | goal | exit codes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in (*GOALS, "patronictl"):
        goal = GOALS.get(name)
        r = f"{ratio[name]:.2f}x" if name in ratio else "1.00x"
        rc = f"{cpu_ratio[name]:.2f}x" if name in cpu_ratio else "1.00x"
        verdict = "" if goal is None else (f"<= {goal}x: {'met' if ratio[name] <= goal else 'MISSED'}")
        rows.append(
            f"| `{shown[name]}` | {median[name] * 1000:.0f} ms | {ninety[name] * 1000:.0f} ms | {min(times[name]) * 1000:.0f} ms | {r} "
            f"| {cpu_median[name] * 1000:.0f} ms | {rc} | {verdict} | {sorted(codes[name])} |"
        )
    table = "\n".join(rows)
    if NOT_OK:
        table += "\n\nRuns that did not exit 0 (the lab was briefly not healthy under the shared load):\n\n" + "\n".join(
            f"- `{line}`" for line in dict.fromkeys(NOT_OK)
        )
    print(table)
    if args.no_write:
        return 0

    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).as_posix(), "benchmarks/bench_check_status.py", *sys.argv[1:]])
    versions = subprocess.run([patronictl, "version"], capture_output=True, text=True).stdout.strip() or "?"
    doc = f"""# `gardenctl check` / `gardenctl status` against `patronictl list`

Produced by:

```
{command}
```

on {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}, {os.cpu_count()} CPUs, Python {platform.python_version()},
{versions}; load average {load_before[0]:.2f} before and {load_after[0]:.2f} after (other work shared the machine).
Each command is a new process (as cron runs it) against the same running lab: 1 warm-up run each, then {args.runs}
interleaved runs each (rotating order, so load changes hit all of them alike).

{table}

Goals (issue 3): `check` at most 0.3 x and `status` at most 0.4 x the time of `patronictl list`.

What the time is made of, and what was done about it: see "Startup" below (written by hand; the script keeps it
when it rewrites the numbers above).
"""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    notes = ""
    if args.output.exists():
        text = args.output.read_text()
        marker = "\n## Startup"
        if marker in text:
            notes = text[text.index(marker):]
    args.output.write_text(doc + notes)
    print(f"written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
