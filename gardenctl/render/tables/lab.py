from __future__ import annotations

from rich.console import Console
from rich.table import Table

from gardenctl.lab import LabStatus, LabUpResult
from gardenctl.render import table_renderer


@table_renderer(LabUpResult)
def _up(result: LabUpResult, console: Console) -> None:
    if result.already_running:
        console.print(f"Lab already running in {result.lab_dir}.")
    else:
        console.print(f"Lab ready in {result.seconds:.1f}s ({result.lab_dir}).")
        for label, seconds in result.moments:
            console.print(f"  {seconds:5.1f}s  {label}", highlight=False)
    console.print(f"  read-write: {result.rw_address}   read-only: {result.ro_address}", highlight=False)
    console.print("Next: gardenctl status", highlight=False)


@table_renderer(LabStatus)
def _status(result: LabStatus, console: Console) -> None:
    if not result.exists:
        console.print(f"No lab in {result.lab_dir}. Start one with: gardenctl lab up")
        return
    table = Table(box=None, pad_edge=False, title=f"lab {result.lab_dir} (base port {result.base_port})", title_justify="left")
    for col in ("NAME", "KIND", "PID", "STATE", "POSTGRES PID", "LOG"):
        table.add_column(col)
    for p in result.processes:
        pg = "-" if p.postgres_running is None else (str(p.postgres_pid) if p.postgres_running else "stopped")
        table.add_row(p.name, p.kind, str(p.pid or "-"), "running" if p.running else "[red]stopped[/red]", pg, p.log)
    console.print(table)
