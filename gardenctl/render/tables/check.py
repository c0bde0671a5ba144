"""`gardenctl check` as text: the monitoring-plugin lines (summary first, then one line per finding)."""

from __future__ import annotations

from rich.console import Console

from gardenctl.ops.check import CheckResult, plugin_lines
from gardenctl.render import table_renderer


@table_renderer(CheckResult)
def _check(result: CheckResult, console: Console) -> None:
    console.file.write("\n".join(plugin_lines(result)) + "\n")
    console.file.flush()
