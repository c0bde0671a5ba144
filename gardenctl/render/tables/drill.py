"""Tables for `gardenctl drill`: the plan, each run's figures against their thresholds, the playbook list, history."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gardenctl.ops.drill.playbook import PlaybookList
from gardenctl.ops.drill.result import DrillHistory, DrillPlan, DrillReport, DrillRun, format_value
from gardenctl.render import table_renderer


def _verdict(text: str) -> str:
    if text == "PASS":
        return "[green]PASS[/green]"
    if text == "FAIL":
        return "[bold red]FAIL[/bold red]"
    return text


@table_renderer(DrillPlan)
def _plan(plan: DrillPlan, console: Console) -> None:
    mode = "synchronous_mode on" if plan.synchronous_mode else "synchronous_mode off"
    console.print(
        f"Drill [bold]{escape(plan.playbook)}[/bold] on {escape(plan.context)}: {escape(plan.summary)}\n"
        f"  leader {escape(plan.leader or 'none')}, {mode}, {f'ttl {plan.ttl_seconds} s' if plan.ttl_seconds is not None else 'ttl unknown'}; "
        f"faults through {escape(plan.fault_target)}; probe {plan.rate:g} writes/s"
        + (f"; {plan.repeat} runs" if plan.repeat > 1 else ""),
        highlight=False,
    )
    if plan.patroni_config:
        console.print(f"  Patroni config for the drill (restored afterwards): {escape(str(plan.patroni_config))}", highlight=False)
    console.print("Steps:", highlight=False)
    for i, step in enumerate(plan.steps, start=1):
        console.print(f"  {i}. {escape(step)}", highlight=False)
    console.print("Thresholds:", highlight=False)
    for t in plan.thresholds:
        console.print(f"  {escape(t)}", highlight=False)
    table = Table(box=None, pad_edge=False, title="Preflight", title_justify="left")
    for col in ("CHECK", "RESULT", "DETAIL"):
        table.add_column(col)
    for c in plan.checks:
        if c.ok:
            verdict = "[green]ok[/green]"
        elif plan.force and c.overridable:
            verdict = "[yellow]forced[/yellow]"
        else:
            verdict = "[red]FAIL[/red]" + ("" if c.overridable else " (no --force)")
        table.add_row(escape(c.name), verdict, escape(c.detail))
    console.print(table)


def run_table(run: DrillRun) -> Table:
    table = Table(box=None, pad_edge=False)
    for col, justify in (("FIGURE", "left"), ("VALUE", "right"), ("THRESHOLD", "right"), ("RESULT", "left"), ("NOTE", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for f in run.figures:
        table.add_row(escape(f.label), f.shown, f.shown_limit, _verdict(f.verdict), escape(f.note or ""))
    return table


@table_renderer(DrillRun)
def _run(run: DrillRun, console: Console) -> None:
    _print_run(run, console)


def _print_run(run: DrillRun, console: Console, total: int = 1) -> None:
    mode = "sync" if run.synchronous_mode else "async"
    fs = "" if run.failsafe_mode is None else f", failsafe {'on' if run.failsafe_mode else 'off'}"
    leader = run.leader_before or "-"
    if run.leader_after and run.leader_after != run.leader_before:
        leader += f" -> {run.leader_after}"
    head = f"run {run.iteration}" + (f"/{total}" if total > 1 else "")
    console.print(
        f"[bold]{escape(run.playbook)}[/bold] {head}: {_verdict('PASS' if run.passed else 'FAIL')}  "
        f"(leader {escape(leader)}, {mode}{fs}, {run.duration_seconds:.0f} s)",
        highlight=False,
    )
    console.print(run_table(run))
    for note in run.notes:
        console.print(f"  - {escape(note)}", highlight=False)
    if run.write_errors:
        top = "; ".join(f"{n} x {text}" for text, n in run.write_errors[:3])
        rest = run.write_errors[3:]
        if rest:
            top += f"; {sum(n for _, n in rest)} x {len(rest)} other {'error' if len(rest) == 1 else 'errors'}"
        console.print(f"  - write errors: {escape(top)}", highlight=False)
    if run.aborted:
        console.print(f"  [red]steps aborted[/red]: {escape(run.aborted)}", highlight=False)
    if run.recovered:
        console.print(f"  cluster: {escape(run.recovery_message)}", highlight=False)
    else:
        console.print(f"  [bold red]cluster NOT back to full health[/bold red]: {escape(run.recovery_message)}", highlight=False)


@table_renderer(DrillReport)
def _report(report: DrillReport, console: Console) -> None:
    for i, run in enumerate(report.runs):
        if i:
            console.print()
        _print_run(run, console, len(report.runs))
    if len(report.runs) > 1:
        console.print()
        table = Table(box=None, pad_edge=False, title=f"{report.playbook}: {len(report.runs)} runs", title_justify="left")
        names = [f.name for f in report.runs[0].figures if f.unit == "s" or f.limit is not None]
        for col in ("FIGURE", "MIN", "MEDIAN", "MAX", "THRESHOLD", "FAILED RUNS"):
            table.add_column(col)
        for name in names:
            figs = [r.figure(name) for r in report.runs]
            values = sorted(f.value for f in figs if f is not None and f.value is not None)
            first = figs[0]
            unit = first.unit if first else ""
            failed = sum(1 for f in figs if f is not None and f.passed is False)
            if values:
                median = values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2
                cells = [format_value(values[0], unit), format_value(median, unit), format_value(values[-1], unit)]
            else:
                cells = ["n/a", "n/a", "n/a"]
            table.add_row(escape(first.label if first else name), *cells, first.shown_limit if first else "-", str(failed))
        console.print(table)
    passed = sum(1 for r in report.runs if r.passed)
    console.print(
        f"{_verdict('PASS' if report.passed else 'FAIL')}: {passed} of {len(report.runs)} run(s) of {escape(report.playbook)} passed",
        highlight=False,
    )


@table_renderer(PlaybookList)
def _list(result: PlaybookList, console: Console) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "SOURCE", "SUMMARY"):
        table.add_column(col)
    for p in result.playbooks:
        summary = f"[red]invalid[/red]: {escape(p.error)}" if p.error else escape(p.summary)
        table.add_row(escape(p.name), p.source, summary)
    console.print(table)
    if not result.playbooks:
        console.print("No playbooks found in: " + (", ".join(result.directories) or "(no playbook directory)"), highlight=False)


_HISTORY_FIGURES = (
    ("write_unavailable_seconds", "WRITE GAP", "s"),
    ("seconds_to_new_leader", "NEW LEADER", "s"),
    ("seconds_to_routed", "ROUTED", "s"),
    ("acked_writes_lost", "LOST", ""),
    ("split_brain", "SPLIT", ""),
)


@table_renderer(DrillHistory)
def _history(result: DrillHistory, console: Console) -> None:
    if not result.runs:
        console.print(f"No drill runs recorded in {escape(result.path)} yet. Try: gardenctl drill run switchover", highlight=False)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("STARTED (UTC)", "CONTEXT", "PLAYBOOK", "MODE", "RESULT", *(h for _, h, _ in _HISTORY_FIGURES), "FAILED"):
        table.add_column(col)
    for r in result.runs:
        started = (r.started_at or "?").replace("T", " ").replace("Z", "")[:19]
        mode = "-" if r.synchronous_mode is None else ("sync" if r.synchronous_mode else "async")
        verdict = "PASS" if r.passed else ("INTERRUPTED" if r.interrupted else "FAIL") + ("" if r.recovered else " (unrecovered)")
        cells = [format_value(r.figures.get(name), unit) for name, _, unit in _HISTORY_FIGURES]
        table.add_row(started, escape(r.context), escape(r.playbook), mode, _verdict(verdict) if verdict in ("PASS", "FAIL") else f"[bold red]{verdict}[/bold red]", *cells, escape(", ".join(r.failed)))
    console.print(table)
    if result.unreadable_lines:
        console.print(f"({result.unreadable_lines} unreadable line(s) in {escape(result.path)} skipped)", highlight=False)
