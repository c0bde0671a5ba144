"""Table for `gardenctl history`: journal and Patroni timeline switches, merged by time."""

from __future__ import annotations

from datetime import timezone

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gardenctl.ops.history import HistoryReport
from gardenctl.render import table_renderer

_OUTCOME_STYLE = {"succeeded": "green", "scheduled": "green", "refused": "yellow", "aborted": "yellow", "unreadable": "red"}


@table_renderer(HistoryReport)
def _history(report: HistoryReport, console: Console) -> None:
    scope = f"context {report.context}" if report.context else "all contexts"
    patroni = "Patroni timeline history" if report.patroni_reachable else f"Patroni: [red]unreachable[/red] ({escape(report.patroni_error or '?')})"
    console.print(f"History for {escape(scope)} - journal {escape(report.journal_path)}; {patroni}", highlight=False)
    if not report.events:
        console.print("Nothing recorded yet.", highlight=False)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("WHEN (UTC)", "SOURCE", "WHAT", "OUTCOME", "WHO", "DETAIL"):
        table.add_column(col)
    for e in report.events:
        when = e.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if e.at is not None else "-"
        outcome = e.outcome or ""
        style = _OUTCOME_STYLE.get(outcome, "red" if outcome else "")
        table.add_row(when, e.source, escape(e.what), f"[{style}]{escape(outcome)}[/{style}]" if style else escape(outcome), escape(e.who or ""), escape(e.detail))
    console.print(table)
