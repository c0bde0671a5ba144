from __future__ import annotations

from rich.console import Console
from rich.table import Table

from gardenctl import yamltext
from gardenctl.model import ConfigView, ContextList
from gardenctl.render import table_renderer


@table_renderer(ContextList)
def _contexts(result: ContextList, console: Console) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("CURRENT", "NAME", "SCOPE", "PATRONI", "ETCD", "LAB"):
        table.add_column(col)
    for row in result.contexts:
        table.add_row("*" if row.current else "", row.name, row.scope or "-", str(row.patroni_endpoints), str(row.etcd_endpoints), "yes" if row.lab else "")
    console.print(table)


@table_renderer(ConfigView)
def _view(result: ConfigView, console: Console) -> None:
    console.file.write(yamltext.dump(result.config))
