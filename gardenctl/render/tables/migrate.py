from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gardenctl.model import Check
from gardenctl.ops.migrate.diff import CREATE, DELETE, KEEP, UNCHANGED, UPDATE, Change
from gardenctl.ops.migrate.engine import PhaseApplyResult, PhasePlan, PhaseStatus
from gardenctl.render import table_renderer

_ACTION_STYLE = {CREATE: "green", UPDATE: "yellow", DELETE: "red", KEEP: "cyan", UNCHANGED: "dim"}


def _changes(changes: tuple[Change, ...], *, show_unchanged: bool = False) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("ACTION", "OBJECT", "DETAIL"):
        table.add_column(col, no_wrap=col != "DETAIL")
    for c in changes:
        if c.action == UNCHANGED and not show_unchanged:
            continue
        detail = c.note or ", ".join(c.fields)
        table.add_row(Text(c.action, style=_ACTION_STYLE.get(c.action, "")), Text(str(c.ref)), Text(detail))
    return table


def _checks(checks: tuple[Check, ...], force: bool) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("CHECK", "RESULT", "DETAIL"):
        table.add_column(col, no_wrap=col == "RESULT")
    for c in checks:
        if c.ok:
            result = Text("ok", style="green")
        elif force and c.overridable:
            result = Text("FAILED (forced)", style="yellow")
        else:
            result = Text("FAILED" + (" (overridable)" if c.overridable else ""), style="red")
        table.add_row(Text(c.name), result, Text(c.detail))
    return table


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(a, 0)} {a}" for a in (CREATE, UPDATE, DELETE, KEEP, UNCHANGED))


@table_renderer(PhaseStatus)
def _status(s: PhaseStatus, console: Console) -> None:
    if s.unreadable:
        console.print(Text(f"{s.context}: the recorded phase at {s.key} is UNREADABLE: {s.unreadable}", style="red"))
    elif not s.recorded:
        console.print(f"{s.context}: no phase applied yet ({s.key} in etcd): next is phase 1", highlight=False, markup=False)
    else:
        console.print(f"{s.context}: phase {s.phase}, since {s.updated_at or '?'} by {s.updated_by or '?'}  ({s.key})", highlight=False, markup=False)
    if s.claim is not None:
        console.print(Text(f"IN PROGRESS: {s.claim.describe()}", style="yellow"))
    if s.last_failure:
        f = s.last_failure
        console.print(
            Text(
                f"LAST ATTEMPT FAILED: {f.get('action', '?')} to phase {f.get('to', '?')} by {f.get('by', '?')} at {f.get('at', '?')}: "
                f"{f.get('error', '?')} - the cluster may be between phases; `gardenctl migrate-phase rollback` restores phase {s.phase}",
                style="red",
            )
        )
    phases = Table(box=None, pad_edge=False, show_edge=False, title="phases", title_justify="left")
    for col in ("", "PHASE", "TITLE"):
        phases.add_column(col)
    for p in s.phases:
        marker = "*" if p.phase == s.phase else (">" if p.phase == s.next_phase else "")
        phases.add_row(marker, str(p.phase), Text(p.title) if p.title else Text(f"(playbook: {p.problem})", style="red"))
    console.print(phases)
    if s.history:
        hist = Table(box=None, pad_edge=False, show_edge=False, title="history (newest last)", title_justify="left")
        for col in ("AT", "ACTION", "FROM", "TO", "BY", "FORCED"):
            hist.add_column(col)
        for t in s.history[-15:]:
            hist.add_row(t.at, t.action, str(t.from_phase), str(t.to_phase), Text(t.by), "yes" if t.forced else "")
        console.print(hist)


@table_renderer(PhasePlan)
def _plan(p: PhasePlan, console: Console) -> None:
    console.print(Text(f"Plan: {p.summary}", style="bold"))
    console.print(f"  phase {p.target_phase}: {p.title}", highlight=False, markup=False)
    console.print(f"  manifests {p.manifests}; playbook {p.playbook}; etcd revision {p.revision}", highlight=False, markup=False)
    if p.live:
        console.print(f"  changes against the live cluster: {_counts(p.counts)}", highlight=False, markup=False)
    else:
        console.print(Text(f"  live cluster not compared ({p.live_error}); changes between the rendered phases:", style="yellow"))
    console.print(_changes(p.changes))
    if p.live and any(c.action != UNCHANGED for c in p.rendered_changes):
        console.print(f"  (rendered phase {p.current_phase} -> {p.target_phase}: {_counts({a: sum(1 for c in p.rendered_changes if c.action == a) for a in (CREATE, UPDATE, DELETE, KEEP, UNCHANGED)})})", highlight=False, markup=False)
    console.print(Text("Preflight", style="bold"))
    console.print(_checks(p.preflight, p.force))
    if p.ok:
        console.print(Text("preflight passed", style="green"))
    else:
        console.print(Text(f"REFUSED: {len(p.blocking)} check(s) failed", style="red"))


@table_renderer(PhaseApplyResult)
def _result(r: PhaseApplyResult, console: Console) -> None:
    console.print(Text(f"{r.context}: {r.message} ({r.action} {r.from_phase} -> {r.to_phase})", style="bold green"))
    changed = tuple(c for c in r.applied if c.action != UNCHANGED)
    console.print(f"  applied {len(r.applied)} object(s), {len(changed)} changed; deleted {len(r.deleted)}; kept {len(r.kept)}", highlight=False, markup=False)
    for obj in r.deleted:
        console.print(f"  deleted {obj}", highlight=False, markup=False)
    for obj in r.kept:
        console.print(f"  kept    {obj} (not pruned; remove by hand when no longer needed)", highlight=False, markup=False)
    if r.post_checks:
        console.print(_checks(r.post_checks, False))
    for m in r.moments:
        console.print(f"  {m.seconds:6.1f}s  {m.label}", highlight=False, markup=False)
