"""Tables for `gardenctl switchover` / `failover`: the plan (topology + preflight) and the result (moments + final
topology)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gardenctl.model import PatroniMember
from gardenctl.ops.switchover import MemberProbe, SwitchoverPlan, SwitchoverResult
from gardenctl.render import table_renderer


def _lag(member: PatroniMember) -> str:
    if member.is_leader:
        return "-"
    return "unknown" if member.lag_bytes is None else f"{member.lag_bytes} B"


def _tags(member: PatroniMember) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(member.tags.items())) if member.tags else ""


def _api(probe: MemberProbe | None) -> str:
    if probe is None:
        return ""
    if probe.api_reachable:
        return "ok"
    if probe.api_reachable is None:
        return "no api_url"
    return f"[red]down[/red]: {escape(probe.error or '?')}"


def members_table(members: tuple[PatroniMember, ...], probes: tuple[MemberProbe, ...] = ()) -> Table:
    by_name = {p.name: p for p in probes}
    table = Table(box=None, pad_edge=False)
    columns = ["MEMBER", "HOST:PORT", "ROLE", "STATE", "TL", "LAG", "TAGS"] + (["REST API"] if probes else [])
    for col in columns:
        table.add_column(col)
    for m in members:
        row = [escape(m.name), m.address, m.role, escape(m.state), "-" if m.timeline is None else str(m.timeline), _lag(m), escape(_tags(m))]
        if probes:
            row.append(_api(by_name.get(m.name)))
        table.add_row(*row)
    return table


@table_renderer(SwitchoverPlan)
def _plan(plan: SwitchoverPlan, console: Console) -> None:
    facts = [
        f"leader {plan.leader or 'none'}",
        f"timeline {plan.timeline if plan.timeline is not None else '?'}",
        "maintenance mode ON (paused)" if plan.paused else "maintenance mode off",
        "synchronous mode on" if plan.synchronous_mode else "synchronous mode off",
    ]
    via = f" (via {plan.source})" if plan.source else ""
    console.print(f"Cluster {escape(plan.scope or '?')}{via}: " + ", ".join(facts), highlight=False)
    console.print(members_table(plan.members, plan.probes))
    console.print()
    source = f" (candidate {plan.candidate_source})" if plan.candidate else ""
    console.print(f"Preflight for: {escape(plan.summary)}{escape(source)}", highlight=False)
    table = Table(box=None, pad_edge=False)
    for col in ("CHECK", "RESULT", "DETAIL"):
        table.add_column(col)
    for check in plan.preflight.checks:
        if check.ok:
            verdict = "[green]ok[/green]"
        elif plan.preflight.force and check.overridable:
            verdict = "[yellow]FORCED[/yellow]"
        elif check.overridable:
            verdict = "[red]FAIL[/red] (overridable)"
        else:
            verdict = "[red]FAIL[/red]"
        table.add_row(check.name, verdict, escape(check.detail))
    console.print(table)
    if plan.ok:
        console.print(
            f"Preflight passed. Convergence: each step may take up to {plan.timeout_seconds:.0f}s.",
            highlight=False,
        )
    console.print()


@table_renderer(SwitchoverResult)
def _result(result: SwitchoverResult, console: Console) -> None:
    name = result.action.capitalize()
    if result.outcome == "succeeded":
        console.print(f"[green]{name} converged[/green]: {escape(result.message)}", highlight=False)
    elif result.outcome == "scheduled":
        console.print(f"[green]{name} scheduled[/green]: {escape(result.message)}", highlight=False)
    else:
        console.print(f"[red]{name} did not converge ({result.outcome})[/red]: {escape(result.message)}", highlight=False)
    if result.moments:
        table = Table(box=None, pad_edge=False, title="Moments (seconds from the request)", title_justify="left")
        table.add_column("SECONDS", justify="right")
        table.add_column("MOMENT")
        for m in result.moments:
            table.add_row(f"{m.seconds:.2f}", escape(m.label))
        console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    if result.final_members:
        console.print("Topology now:", highlight=False)
        console.print(members_table(result.final_members))
