"""Desired state from the inventory, current state from the API (by labels), and the diff between them.

Like a terraform plan: every resource is ``create``, ``change`` (with the changes apply will make), ``keep``, or
``extra`` (carries the cluster's label but the inventory no longer asks for it: apply leaves it, destroy removes it).
Differences apply cannot fix safely (a different server type, a different private address) are ``warnings``.
Reading never changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gardenctl.cloud import (
    CLUSTER_LABEL,
    ROLE_LABEL,
    CloudFirewall,
    CloudNetwork,
    CloudPlacementGroup,
    CloudServer,
    CloudSSHKey,
    FirewallRuleSpec,
)
from gardenctl.inventory import Inventory, NodeSpec

ANY_IPV4, ANY_IPV6 = "0.0.0.0/0", "::/0"


class CloudReader(Protocol):
    def list_servers(self, selector: str) -> list[CloudServer]: ...
    def list_networks(self, selector: str) -> list[CloudNetwork]: ...
    def list_firewalls(self, selector: str) -> list[CloudFirewall]: ...
    def list_placement_groups(self, selector: str) -> list[CloudPlacementGroup]: ...
    def list_ssh_keys(self, selector: str | None = None) -> list[CloudSSHKey]: ...


@dataclass(frozen=True, slots=True)
class CurrentState:
    servers: tuple[CloudServer, ...] = ()
    networks: tuple[CloudNetwork, ...] = ()
    firewalls: tuple[CloudFirewall, ...] = ()
    placement_groups: tuple[CloudPlacementGroup, ...] = ()
    ssh_keys: tuple[CloudSSHKey, ...] = ()  # every key of the project (keys are matched by content, too)

    def server(self, name: str) -> CloudServer | None:
        return next((s for s in self.servers if s.name == name), None)

    def network(self, name: str) -> CloudNetwork | None:
        return next((n for n in self.networks if n.name == name), None)

    def firewall(self, name: str) -> CloudFirewall | None:
        return next((f for f in self.firewalls if f.name == name), None)

    def placement_group(self, name: str) -> CloudPlacementGroup | None:
        return next((p for p in self.placement_groups if p.name == name), None)

    def ssh_key_for(self, name: str, public_key: str) -> CloudSSHKey | None:
        blob = _blob(public_key)
        return next((k for k in self.ssh_keys if k.name == name and _blob(k.public_key) == blob), None) or next(
            (k for k in self.ssh_keys if _blob(k.public_key) == blob), None
        )


def _blob(public_key: str) -> str:
    parts = public_key.split()
    return parts[1] if len(parts) > 1 else public_key


def read_state(cloud: CloudReader, inventory: Inventory) -> CurrentState:
    """Everything carrying ``gardenos/cluster=<name>``, and the project's SSH keys."""
    sel = inventory.selector
    return CurrentState(
        servers=tuple(sorted(cloud.list_servers(sel), key=lambda s: s.name)),
        networks=tuple(cloud.list_networks(sel)),
        firewalls=tuple(cloud.list_firewalls(sel)),
        placement_groups=tuple(cloud.list_placement_groups(sel)),
        ssh_keys=tuple(cloud.list_ssh_keys(None)),
    )


def firewall_rules(inventory: Inventory) -> list[FirewallRuleSpec]:
    """SSH and the Kubernetes API from the allowed networks, ICMP from anywhere.

    Hetzner Cloud firewalls filter only the *public* interface: traffic between the nodes on the private network
    (etcd, Patroni, PostgreSQL, HAProxy, flannel) is not filtered by this firewall at all.
    """
    allowed = tuple(inventory.allowed_networks)
    return [
        FirewallRuleSpec("in", "tcp", "22", allowed, "SSH from the allowed networks"),
        FirewallRuleSpec("in", "tcp", "6443", allowed, "Kubernetes API from the allowed networks"),
        FirewallRuleSpec("in", "icmp", None, (ANY_IPV4, ANY_IPV6), "ICMP (ping, path MTU discovery)"),
    ]


@dataclass(frozen=True, slots=True)
class PlanItem:
    kind: str  # ssh_key | network | firewall | placement_group | server
    name: str
    action: str  # create | change | keep | extra
    changes: tuple[str, ...] = ()
    detail: str = ""
    role: str | None = None


@dataclass(frozen=True, slots=True)
class BootstrapPlan:
    __kind__ = "BootstrapPlan"
    __json_properties__ = ("counts",)

    cluster: str
    items: tuple[PlanItem, ...]
    warnings: tuple[str, ...] = ()
    state: CurrentState | None = field(default=None, repr=False)

    @property
    def counts(self) -> dict[str, int]:
        out = {"create": 0, "change": 0, "keep": 0, "extra": 0}
        for item in self.items:
            out[item.action] = out.get(item.action, 0) + 1
        return out

    @property
    def up_to_date(self) -> bool:
        return self.counts["create"] == 0 and self.counts["change"] == 0

    def of(self, kind: str) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.items if i.kind == kind)


def _rules_equal(a: tuple[FirewallRuleSpec, ...] | list[FirewallRuleSpec], b: list[FirewallRuleSpec]) -> bool:
    return sorted(r.key() for r in a) == sorted(r.key() for r in b)


def server_changes(node: NodeSpec, server: CloudServer, network: CloudNetwork | None, groups: dict[str, CloudPlacementGroup]) -> tuple[list[str], list[str]]:
    """(changes apply makes, warnings apply leaves to the operator) for one existing server."""
    changes: list[str] = []
    warnings: list[str] = []
    if server.labels.get(ROLE_LABEL) != node.role:
        changes.append(f"set label {ROLE_LABEL}={node.role}")
    ip = server.private_ip(network.id) if network is not None else None
    if network is None or ip is None:
        changes.append(f"attach to the private network as {node.private_ip}")
    elif ip != node.private_ip:
        warnings.append(
            f"server {node.name} has private address {ip}, the inventory says {node.private_ip}: "
            "rendered configs would be wrong; rebuild it (destroy the server and apply) or fix the inventory"
        )
    if server.status in ("off", "stopping"):
        changes.append("power on")
    if server.server_type != node.server_type:
        warnings.append(f"server {node.name} is {server.server_type}, the inventory says {node.server_type}: apply does not resize (do it in the Hetzner console)")
    group = groups.get(node.placement_group)
    if group is not None and server.placement_group_id not in (None, group.id):
        warnings.append(f"server {node.name} is in another placement group than {node.placement_group}")
    return changes, warnings


def make_plan(inventory: Inventory, state: CurrentState) -> BootstrapPlan:
    items: list[PlanItem] = []
    warnings: list[str] = []

    for name, key in zip(inventory.ssh_key_names, inventory.ssh_public_keys):
        found = state.ssh_key_for(name, key)
        if found is None:
            items.append(PlanItem("ssh_key", name, "create", detail=" ".join(key.split()[:1] + key.split()[2:3])))
        else:
            note = "" if found.labels.get(CLUSTER_LABEL) == inventory.cluster else f"already in the project as {found.name!r} (used, never deleted)"
            items.append(PlanItem("ssh_key", found.name if note else name, "keep", detail=note))

    network = state.network(inventory.network_name)
    if network is None:
        items.append(PlanItem("network", inventory.network_name, "create", detail=f"{inventory.ip_range}, subnet {inventory.subnet} ({inventory.network_zone})"))
    else:
        changes = []
        if network.ip_range != inventory.ip_range:
            warnings.append(f"network {network.name} has range {network.ip_range}, the inventory says {inventory.ip_range}")
        if not any(s.ip_range == inventory.subnet for s in network.subnets):
            changes.append(f"add subnet {inventory.subnet}")
        items.append(PlanItem("network", network.name, "change" if changes else "keep", tuple(changes), detail=network.ip_range))
    for extra in state.networks:
        if extra.name != inventory.network_name:
            items.append(PlanItem("network", extra.name, "extra"))

    rules = firewall_rules(inventory)
    fw = state.firewall(inventory.firewall_name)
    if fw is None:
        items.append(PlanItem("firewall", inventory.firewall_name, "create", detail=f"22, 6443 from {', '.join(inventory.allowed_networks)}; ICMP"))
    else:
        changes = []
        if not _rules_equal(fw.rules, rules):
            changes.append("set rules (22, 6443 from " + ", ".join(inventory.allowed_networks) + "; ICMP)")
        if inventory.selector not in fw.applied_selectors:
            changes.append(f"apply to servers labelled {inventory.selector}")
        items.append(PlanItem("firewall", fw.name, "change" if changes else "keep", tuple(changes)))
    for extra in state.firewalls:
        if extra.name != inventory.firewall_name:
            items.append(PlanItem("firewall", extra.name, "extra"))

    groups: dict[str, CloudPlacementGroup] = {}
    wanted_groups = {name for name, _ in inventory.placement_groups}
    for name, role in inventory.placement_groups:
        pg = state.placement_group(name)
        if pg is None:
            items.append(PlanItem("placement_group", name, "create", detail="spread", role=role))
        else:
            groups[name] = pg
            items.append(PlanItem("placement_group", name, "keep", detail=f"spread, {len(pg.server_ids)} servers", role=role))
    for extra in state.placement_groups:
        if extra.name not in wanted_groups:
            items.append(PlanItem("placement_group", extra.name, "extra"))

    wanted = {n.name for n in inventory.nodes}
    for node in inventory.nodes:
        server = state.server(node.name)
        detail = f"{node.server_type} {node.image} {node.location} {node.private_ip}"
        if server is None:
            items.append(PlanItem("server", node.name, "create", detail=detail, role=node.role))
            continue
        changes, warns = server_changes(node, server, network, groups)
        warnings.extend(warns)
        items.append(PlanItem("server", node.name, "change" if changes else "keep", tuple(changes), detail=f"{server.status}, {detail}", role=node.role))
    for extra in state.servers:
        if extra.name not in wanted:
            items.append(PlanItem("server", extra.name, "extra", detail=f"{extra.status}, {extra.server_type}", role=extra.role))
    return BootstrapPlan(cluster=inventory.cluster, items=tuple(items), warnings=tuple(warnings), state=state)

