"""Registers the `gardenctl status` view (`gardenctl.render.status_view`) for ``render(report, "table")``."""

from __future__ import annotations

from rich.console import Console

from gardenctl.model import StatusReport
from gardenctl.render import table_renderer
from gardenctl.render.status_view import print_view, status_renderable


@table_renderer(StatusReport)
def _status(report: StatusReport, console: Console) -> None:
    print_view(console, status_renderable(report, console.width))
