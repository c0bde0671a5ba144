"""Tables for `gardenctl bootstrap`: the plan (terraform-like), apply/destroy results, render output."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gardenctl.ops.bootstrap.apply import ApplyResult, DestroyPlan, DestroyResult
from gardenctl.ops.bootstrap.plan import BootstrapPlan
from gardenctl.ops.bootstrap.render import RenderResult
from gardenctl.render import table_renderer

_SYMBOL = {"create": ("+", "green"), "change": ("~", "yellow"), "keep": ("=", "dim"), "extra": ("!", "magenta")}
_KIND = {"ssh_key": "ssh key", "network": "network", "firewall": "firewall", "placement_group": "placement group", "server": "server"}


@table_renderer(BootstrapPlan)
def _plan(plan: BootstrapPlan, console: Console) -> None:
    console.print(Text(f"Plan for cluster {plan.cluster}", style="bold"))
    table = Table(box=None, pad_edge=False, show_header=True)
    for col in ("", "KIND", "NAME", "ROLE", "DETAIL"):
        table.add_column(col)
    for item in plan.items:
        symbol, style = _SYMBOL.get(item.action, ("?", ""))
        detail = "; ".join(item.changes) if item.changes else item.detail
        if item.action == "extra":
            detail = (detail + "; " if detail else "") + "labelled for this cluster but not in the inventory: apply leaves it, destroy deletes it"
        table.add_row(Text(symbol, style=style), _KIND.get(item.kind, item.kind), item.name, item.role or "", detail)
    console.print(table)
    for warning in plan.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    c = plan.counts
    summary = f"Plan: {c['create']} to create, {c['change']} to change, {c['keep']} unchanged"
    if c["extra"]:
        summary += f", {c['extra']} not in the inventory"
    console.print(summary + "." + ("" if not plan.up_to_date else " Nothing to do for the Hetzner resources."), highlight=False)


@table_renderer(ApplyResult)
def _apply(result: ApplyResult, console: Console) -> None:
    console.print(
        f"Applied cluster {result.cluster}: {len(result.created)} created, {len(result.changed)} changed, "
        f"{len(result.kept)} unchanged ({result.seconds:.1f}s).",
        highlight=False,
    )
    table = Table(box=None, pad_edge=False)
    for col in ("NODE", "ROLE", "STATUS", "TYPE", "LOCATION", "PRIVATE IP", "PUBLIC IPV4"):
        table.add_column(col)
    for n in result.nodes:
        table.add_row(n.name, n.role, n.status, n.server_type, n.location or "-", n.private_ip or "-", n.public_ipv4 or "-")
    console.print(table)
    for r in result.k3s:
        console.print(f"  K3s {r.node}: {r.action}", highlight=False)
    if result.kubeconfig is not None:
        k = result.kubeconfig
        console.print(f"Kubeconfig: context {k.context} -> {k.server} merged into {k.path} (other contexts kept: {len(k.kept_contexts)}).", highlight=False)
        console.print(f"Next: kubectl --context {k.context} get nodes", highlight=False)
    if result.bridge_applied:
        console.print("Database bridge applied: Services db-rw / db-ro in namespace gardenos.", highlight=False)
    for w in result.warnings:
        console.print(Text(f"warning: {w}", style="yellow"))


@table_renderer(DestroyPlan)
def _destroy_plan(plan: DestroyPlan, console: Console) -> None:
    if plan.empty:
        console.print(f"Nothing labelled gardenos/cluster={plan.cluster} exists.", highlight=False)
        return
    console.print(Text(f"Destroy cluster {plan.cluster}: these resources will be deleted", style="bold red"))
    for name in plan.names:
        console.print(f"  - {name}", highlight=False)
    if plan.protected:
        console.print(Text("The inventory marks this cluster protected: destroy refuses.", style="yellow"))


@table_renderer(DestroyResult)
def _destroy(result: DestroyResult, console: Console) -> None:
    console.print(f"Destroyed cluster {result.cluster}: {len(result.deleted)} resources deleted ({result.seconds:.1f}s).", highlight=False)


@table_renderer(RenderResult)
def _render(result: RenderResult, console: Console) -> None:
    table = Table(box=None, pad_edge=False, title=f"Rendered cluster {result.cluster} into {result.directory} (secrets redacted)", title_justify="left")
    for col in ("NODE", "FILE", "GOES TO", "BYTES"):
        table.add_column(col)
    for f in result.files:
        table.add_row(f.node, f.file, f.target or ("user data" if f.kind == "cloud-init" else "-"), str(f.bytes))
    console.print(table)
