from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gardenctl.ops.db_prepare import VECTOR_CREATED, DbItem, DbPreparePlan, DbPrepareResult, PasswordAction, VectorStatus
from gardenctl.render import table_renderer

_PASSWORD_TEXT = {
    "set": ("will be set", "yellow"),
    "unchanged": ("current (verifies)", ""),
    "kept": ("kept (none given)", ""),
    "missing": ("MISSING (none given, none set)", "red"),
}


def _items(items: tuple[DbItem, ...], *, after: bool) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("KIND", "NAME", "STATE", "DETAIL"):
        table.add_column(col)
    for item in items:
        if item.ok:
            state = Text("present", style="")
        else:
            state = Text("MISSING" if after else ("missing: will create" if item.detail.startswith("missing") or not item.detail else "differs: will fix"), style="red" if after else "yellow")
        table.add_row(item.kind, Text(item.name), state, Text("" if item.detail == "missing" else item.detail))
    return table


def _passwords(actions: tuple[PasswordAction, ...], *, after: bool) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("ROLE", "PASSWORD", "FROM"):
        table.add_column(col)
    for a in actions:
        text, style = _PASSWORD_TEXT.get(a.action, (a.action, ""))
        if after and a.action == "set":
            text = "set (verifies)"
        table.add_row(a.role, Text(text, style=style), Text(a.source or "-"))
    return table


def _vector(v: VectorStatus, *, after: bool = False) -> Text:
    if not v.wanted:
        return Text("pgvector: not requested (--no-vector)")
    if v.installed:
        return Text(f"pgvector: installed (vector {v.installed_version})")
    if v.available:
        return Text(f"pgvector: available ({v.available_version}), will be created in schema extensions", style="yellow")
    rest = "everything else is prepared" if after else "everything else will be prepared"
    return Text(f"pgvector: NOT AVAILABLE on this server (no 'vector' in pg_available_extensions): {rest}", style="red")


@table_renderer(DbPreparePlan)
def _plan(plan: DbPreparePlan, console: Console) -> None:
    head = f"db prepare plan: {plan.context} -> {plan.endpoint}/{plan.database} as {plan.user}"
    if plan.server_version:
        head += f" (PostgreSQL {plan.server_version})"
    console.print(head, highlight=False, markup=False)
    console.print(_items(plan.items, after=False))
    console.print(_passwords(plan.passwords, after=False))
    console.print(_vector(plan.vector))
    missing = len(plan.missing)
    line = f"{missing} item(s) to create or fix" if missing else "every item is present"
    if plan.vector.wanted and plan.vector.available and not plan.vector.installed:
        line += ", and the vector extension to create"
    console.print(line, highlight=False, markup=False)
    for problem in plan.problems:
        console.print(Text(f"REFUSED: {problem}", style="red"))


@table_renderer(DbPrepareResult)
def _result(result: DbPrepareResult, console: Console) -> None:
    console.print(f"db prepare on {result.endpoint}/{result.database}: verified in {result.seconds:.1f}s", highlight=False, markup=False)
    console.print(_items(result.items, after=True))
    console.print(_passwords(result.passwords, after=True))
    console.print(_vector(result.vector, after=True))
    items = [c for c in result.created if c != VECTOR_CREATED]
    if items or VECTOR_CREATED in result.created:
        line = f"created or fixed {len(items)} item(s)" if items else "no item needed creating or fixing"
        if VECTOR_CREATED in result.created:
            line += ", and created the vector extension"
        console.print(line, highlight=False, markup=False)
    else:
        console.print("nothing created: everything was already there", highlight=False, markup=False)
