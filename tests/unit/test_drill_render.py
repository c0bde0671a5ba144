"""The drill result as a table: the listed write errors add up to the failed writes."""

from __future__ import annotations

import io
from datetime import datetime, timezone

from rich.console import Console

from gardenctl.ops.drill.result import DrillRun
from gardenctl.render import render


def run_with_errors(errors):
    return DrillRun(
        playbook="kill-leader", context="lab", run_id="r1", iteration=1, started_at=datetime(2030, 1, 2, tzinfo=timezone.utc),
        duration_seconds=30.0, synchronous_mode=False, failsafe_mode=None, ttl_seconds=20, fault_target="node1",
        leader_before="node1", leader_after="node2", figures=(), write_errors=tuple(errors),
    )


def rendered(run) -> str:
    out = io.StringIO()
    render(run, "table", Console(file=out, width=200, no_color=True))
    return out.getvalue()


def test_write_errors_beyond_the_top_three_are_counted():
    errors = [("server closed the connection", 24), ("connection refused", 4), ("timeout", 2), ("read-only", 2), ("reset", 1)]
    line = next(ln for ln in rendered(run_with_errors(errors)).splitlines() if "write errors:" in ln)
    assert line.strip() == "- write errors: 24 x server closed the connection; 4 x connection refused; 2 x timeout; 3 x 2 other errors"


def test_three_kinds_or_fewer_are_listed_whole():
    errors = [("connection refused", 4), ("timeout", 2)]
    line = next(ln for ln in rendered(run_with_errors(errors)).splitlines() if "write errors:" in ln)
    assert line.strip() == "- write errors: 4 x connection refused; 2 x timeout"
