"""Apply a BootstrapPlan to Hetzner Cloud, install K3s over SSH, and destroy a cluster.

Order (each step depends on the one before): SSH keys -> network (+ subnet) -> firewall (applied by label selector,
so every server of the cluster gets it, including ones created later) -> placement groups -> servers. Servers are
independent of each other and are created in parallel (a small thread pool). Each server is created powered off,
attached to the private network with its inventory address, then powered on, so cloud-init's first boot already
sees the private address its configs name.

Idempotent by construction: the plan is computed from what exists (by labels), and only ``create`` / ``change``
items send requests; a complete cluster sends none. An interrupted apply is resumed by the next one.

Nothing here prints: every step is reported through ``progress(ApplyEvent)``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from gardenctl.cloud import ROLE_LABEL, CloudNetwork, CloudPlacementGroup, CloudServer, CloudSSHKey
from gardenctl.errors import GardenError, OperationFailed, PreconditionFailed
from gardenctl.inventory import Inventory, NodeSpec
from gardenctl.model import Moment
from gardenctl.ops.bootstrap.plan import BootstrapPlan, CurrentState, firewall_rules, make_plan, read_state
from gardenctl.ops.bootstrap.render import stack_spec, user_data
from gardenctl.ops.bootstrap.secrets import BootstrapSecrets

MAX_PARALLEL_SERVERS = 5


@dataclass(frozen=True, slots=True)
class ApplyEvent:
    """One step of apply/destroy. ``state`` is start | done | failed; ``index``/``total`` count the phase's steps."""

    phase: str
    resource: str
    state: str
    index: int = 0
    total: int = 0
    message: str = ""

    def __str__(self) -> str:
        return f"{self.phase}: {self.resource} {self.message or self.state}"


Progress = Callable[[ApplyEvent], None]


def _quiet(_event: ApplyEvent) -> None:
    return None


class Cloud(Protocol):
    """The part of `gardenctl.backends.hetzner.HetznerCloud` apply/destroy use."""

    def ensure_ssh_key(self, name: str, public_key: str, labels: dict[str, str]) -> tuple[CloudSSHKey, bool]: ...
    def create_network(self, name: str, ip_range: str, subnet: str, zone: str, labels: dict[str, str]) -> tuple[CloudNetwork, bool]: ...
    def add_subnet(self, network_id: int, subnet: str, zone: str) -> None: ...
    def create_firewall(self, name: str, rules: Any, labels: dict[str, str], apply_selector: str) -> tuple[Any, bool]: ...
    def set_firewall_rules(self, firewall_id: int, rules: Any) -> None: ...
    def apply_firewall_to_selector(self, firewall_id: int, selector: str) -> None: ...
    def create_placement_group(self, name: str, labels: dict[str, str]) -> tuple[CloudPlacementGroup, bool]: ...
    def create_server(self, spec: Any) -> tuple[CloudServer, bool]: ...
    def attach_to_network(self, server_id: int, network_id: int, ip: str, what: str) -> None: ...
    def power_on(self, server_id: int, what: str) -> None: ...
    def update_labels(self, kind: str, resource_id: int, labels: dict[str, str]) -> None: ...
    def delete_server(self, server_id: int, what: str) -> None: ...
    def delete_firewall(self, firewall: Any) -> None: ...
    def delete_network(self, network_id: int, what: str) -> None: ...
    def delete_placement_group(self, pg_id: int, what: str) -> None: ...
    def delete_ssh_key(self, key_id: int, what: str) -> None: ...
    def list_servers(self, selector: str) -> list[CloudServer]: ...


@dataclass(frozen=True, slots=True)
class NodeRow:
    name: str
    role: str
    status: str
    server_type: str
    location: str | None
    private_ip: str | None
    public_ipv4: str | None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    __kind__ = "BootstrapApply"

    cluster: str
    created: tuple[str, ...]
    changed: tuple[str, ...]
    kept: tuple[str, ...]
    nodes: tuple[NodeRow, ...]
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    moments: tuple[Moment, ...] = ()
    k3s: tuple[Any, ...] = ()
    kubeconfig: Any = None
    bridge_applied: bool = False


def _rows(inventory: Inventory, servers: list[CloudServer] | tuple[CloudServer, ...], network_id: int | None) -> tuple[NodeRow, ...]:
    by_name = {s.name: s for s in servers}
    rows = []
    for node in inventory.nodes:
        s = by_name.get(node.name)
        rows.append(
            NodeRow(
                name=node.name,
                role=node.role,
                status=s.status if s else "missing",
                server_type=s.server_type if s else node.server_type,
                location=s.location if s else node.location,
                private_ip=(s.private_ip(network_id) if s and network_id else None),
                public_ipv4=s.public_ipv4 if s else None,
            )
        )
    return tuple(rows)


def apply_infrastructure(
    cloud: Cloud,
    inventory: Inventory,
    secrets: BootstrapSecrets,
    plan: BootstrapPlan,
    *,
    progress: Progress = _quiet,
    parallel: int = MAX_PARALLEL_SERVERS,
    clock: Callable[[], float] = time.monotonic,
) -> ApplyResult:
    """Create and fix what ``plan`` says, in dependency order; verify by reading the state again.

    Raises the backend's errors (F10 policy in the adapter); OperationFailed when the verification finds a server
    missing, not running or without its private address.
    """
    start = clock()
    moments: list[Moment] = []
    state = plan.state or CurrentState()
    labels = inventory.labels
    created: list[str] = []
    changed: list[str] = []
    kept = [f"{i.kind} {i.name}" for i in plan.items if i.action == "keep"]

    def mark(label: str) -> None:
        moments.append(Moment(label, clock() - start))

    # 1. SSH keys
    key_ids: list[int] = []
    key_items = plan.of("ssh_key")
    for i, (name, public_key) in enumerate(zip(inventory.ssh_key_names, inventory.ssh_public_keys)):
        existing = state.ssh_key_for(name, public_key)
        if existing is not None:
            key_ids.append(existing.id)
            continue
        progress(ApplyEvent("ssh keys", name, "start", i + 1, len(key_items)))
        key, was_created = cloud.ensure_ssh_key(name, public_key, labels)
        key_ids.append(key.id)
        (created if was_created else kept).append(f"ssh_key {name}")
        progress(ApplyEvent("ssh keys", name, "done", i + 1, len(key_items)))
    mark("ssh keys")

    # 2. network
    network = state.network(inventory.network_name)
    if network is None:
        progress(ApplyEvent("network", inventory.network_name, "start", 1, 1))
        network, was_created = cloud.create_network(inventory.network_name, inventory.ip_range, inventory.subnet, inventory.network_zone, labels)
        (created if was_created else changed).append(f"network {network.name}")
        progress(ApplyEvent("network", inventory.network_name, "done", 1, 1))
    if not any(s.ip_range == inventory.subnet for s in network.subnets):
        progress(ApplyEvent("network", network.name, "start", 1, 1, f"add subnet {inventory.subnet}"))
        cloud.add_subnet(network.id, inventory.subnet, inventory.network_zone)
        changed.append(f"network {network.name}: subnet {inventory.subnet}")
    mark("network")

    # 3. firewall (applied through the cluster's label selector)
    rules = firewall_rules(inventory)
    fw = state.firewall(inventory.firewall_name)
    fw_item = next((i for i in plan.of("firewall") if i.name == inventory.firewall_name), None)
    if fw is None:
        progress(ApplyEvent("firewall", inventory.firewall_name, "start", 1, 1))
        fw, was_created = cloud.create_firewall(inventory.firewall_name, rules, labels, inventory.selector)
        (created if was_created else changed).append(f"firewall {fw.name}")
        progress(ApplyEvent("firewall", inventory.firewall_name, "done", 1, 1))
    elif fw_item is not None and fw_item.action == "change":
        progress(ApplyEvent("firewall", fw.name, "start", 1, 1, "update"))
        if any(c.startswith("set rules") for c in fw_item.changes):
            cloud.set_firewall_rules(fw.id, rules)
        if inventory.selector not in fw.applied_selectors:
            cloud.apply_firewall_to_selector(fw.id, inventory.selector)
        changed.append(f"firewall {fw.name}")
    mark("firewall")

    # 4. placement groups (independent of each other)
    groups: dict[str, CloudPlacementGroup] = {}
    missing_groups = []
    for name, role in inventory.placement_groups:
        pg = state.placement_group(name)
        if pg is None:
            missing_groups.append((name, role))
        else:
            groups[name] = pg
    for i, (name, role) in enumerate(missing_groups):
        progress(ApplyEvent("placement groups", name, "start", i + 1, len(missing_groups)))
        pg, was_created = cloud.create_placement_group(name, {**labels, ROLE_LABEL: role})
        groups[name] = pg
        (created if was_created else changed).append(f"placement_group {name}")
        progress(ApplyEvent("placement groups", name, "done", i + 1, len(missing_groups)))
    mark("placement groups")

    # 5. servers, in parallel
    spec = stack_spec(inventory, secrets)
    todo: list[tuple[NodeSpec, CloudServer | None, tuple[str, ...]]] = []
    for node in inventory.nodes:
        item = next(i for i in plan.of("server") if i.name == node.name)
        if item.action in ("create", "change"):
            todo.append((node, state.server(node.name), item.changes))
    total = len(todo)
    done_count = [0]

    stop = threading.Event()

    def one(job: tuple[NodeSpec, CloudServer | None, tuple[str, ...]]) -> tuple[str, str]:
        node = job[0]
        if stop.is_set():
            return node.name, "skipped"
        try:
            return one_server(job)
        except GardenError:
            # Stop: servers not started yet are not attempted (the next apply resumes); running ones finish.
            stop.set()
            raise

    def one_server(job: tuple[NodeSpec, CloudServer | None, tuple[str, ...]]) -> tuple[str, str]:
        from gardenctl.backends.hetzner import ServerCreate

        node, server, changes = job
        progress(ApplyEvent("servers", node.name, "start", done_count[0] + 1, total, "creating" if server is None else "; ".join(changes)))
        kind = "changed"
        if server is None:
            server, was_created = cloud.create_server(
                ServerCreate(
                    name=node.name,
                    server_type=node.server_type,
                    image=node.image,
                    location=node.location,
                    labels={**labels, **node.labels},
                    ssh_key_ids=tuple(key_ids),
                    user_data=user_data(inventory, node, spec),
                    placement_group_id=groups[node.placement_group].id if node.placement_group in groups else None,
                    network_id=network.id,
                    private_ip=node.private_ip,
                )
            )
            kind = "created" if was_created else "changed"
        elif server.labels.get(ROLE_LABEL) != node.role:
            cloud.update_labels("server", server.id, {**server.labels, **labels, **node.labels})
        if server.private_ip(network.id) is None:
            cloud.attach_to_network(server.id, network.id, node.private_ip, node.name)
        if server.status != "running":
            cloud.power_on(server.id, node.name)
        done_count[0] += 1
        progress(ApplyEvent("servers", node.name, "done", done_count[0], total))
        return node.name, kind

    if todo:
        errors: list[GardenError] = []
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(todo))), thread_name_prefix="bootstrap") as pool:
            futures = [pool.submit(one, job) for job in todo]
            for fut in futures:
                try:
                    name, kind = fut.result()
                except GardenError as exc:
                    errors.append(exc)
                    continue
                if kind != "skipped":
                    (created if kind == "created" else changed).append(f"server {name}")
        if errors:
            first = errors[0]
            if len(errors) > 1:
                first.details = [*first.details, *(f"also: {e.message}" for e in errors[1:])]
            raise first
    mark("servers")

    # 6. verify
    servers = cloud.list_servers(inventory.selector)
    by_name = {s.name: s for s in servers}
    problems = []
    for node in inventory.nodes:
        s = by_name.get(node.name)
        if s is None:
            problems.append(f"{node.name} is missing")
        elif s.status != "running":
            problems.append(f"{node.name} is {s.status}")
        elif s.private_ip(network.id) != node.private_ip:
            problems.append(f"{node.name} has private address {s.private_ip(network.id)}, expected {node.private_ip}")
    if problems:
        raise OperationFailed("apply did not converge: " + "; ".join(problems), hint="re-run `gardenctl bootstrap apply`; it resumes where it stopped")
    mark("verified")
    return ApplyResult(
        cluster=inventory.cluster,
        created=tuple(created),
        changed=tuple(changed),
        kept=tuple(kept),
        nodes=_rows(inventory, servers, network.id),
        warnings=plan.warnings,
        seconds=clock() - start,
        moments=tuple(moments),
    )


# ------------------------------------------------------------------------------------------------ destroy


@dataclass(frozen=True, slots=True)
class DestroyPlan:
    __kind__ = "BootstrapDestroyPlan"

    cluster: str
    servers: tuple[CloudServer, ...]
    firewalls: tuple[Any, ...]
    placement_groups: tuple[CloudPlacementGroup, ...]
    networks: tuple[CloudNetwork, ...]
    ssh_keys: tuple[CloudSSHKey, ...]
    protected: bool = False

    @property
    def empty(self) -> bool:
        return not (self.servers or self.firewalls or self.placement_groups or self.networks or self.ssh_keys)

    @property
    def names(self) -> list[str]:
        return (
            [f"server {s.name}" for s in self.servers]
            + [f"firewall {f.name}" for f in self.firewalls]
            + [f"placement_group {p.name}" for p in self.placement_groups]
            + [f"network {n.name}" for n in self.networks]
            + [f"ssh_key {k.name}" for k in self.ssh_keys]
        )


@dataclass(frozen=True, slots=True)
class DestroyResult:
    __kind__ = "BootstrapDestroy"

    cluster: str
    deleted: tuple[str, ...]
    seconds: float = 0.0


def plan_destroy(cloud: Any, inventory: Inventory) -> DestroyPlan:
    """Only what carries ``gardenos/cluster=<name>``: SSH keys that were already in the project are not listed."""
    state = read_state(cloud, inventory)
    return DestroyPlan(
        cluster=inventory.cluster,
        servers=state.servers,
        firewalls=state.firewalls,
        placement_groups=state.placement_groups,
        networks=state.networks,
        ssh_keys=tuple(k for k in state.ssh_keys if k.labels.get("gardenos/cluster") == inventory.cluster),
        protected=inventory.protected,
    )


def destroy(cloud: Cloud, plan: DestroyPlan, *, progress: Progress = _quiet, parallel: int = MAX_PARALLEL_SERVERS, clock: Callable[[], float] = time.monotonic) -> DestroyResult:
    """Delete in reverse dependency order: servers (in parallel), firewall, placement groups, network, SSH keys."""
    if plan.protected:
        raise PreconditionFailed(
            f"cluster {plan.cluster} is protected (hetzner.protected: true in the inventory); nothing was deleted",
            hint="set protected: false in the config file first if you really mean to destroy it",
        )
    start = clock()
    deleted: list[str] = []
    total = len(plan.servers)

    def drop(server: CloudServer) -> str:
        progress(ApplyEvent("servers", server.name, "start", 0, total, "deleting"))
        cloud.delete_server(server.id, server.name)
        progress(ApplyEvent("servers", server.name, "done", 0, total, "deleted"))
        return server.name

    if plan.servers:
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, total)), thread_name_prefix="destroy") as pool:
            for name in pool.map(drop, plan.servers):
                deleted.append(f"server {name}")
    for fw in plan.firewalls:
        progress(ApplyEvent("firewall", fw.name, "start", 1, 1, "deleting"))
        cloud.delete_firewall(fw)
        deleted.append(f"firewall {fw.name}")
    for pg in plan.placement_groups:
        progress(ApplyEvent("placement groups", pg.name, "start", 1, 1, "deleting"))
        cloud.delete_placement_group(pg.id, pg.name)
        deleted.append(f"placement_group {pg.name}")
    for net in plan.networks:
        progress(ApplyEvent("network", net.name, "start", 1, 1, "deleting"))
        cloud.delete_network(net.id, net.name)
        deleted.append(f"network {net.name}")
    for key in plan.ssh_keys:
        progress(ApplyEvent("ssh keys", key.name, "start", 1, 1, "deleting"))
        cloud.delete_ssh_key(key.id, key.name)
        deleted.append(f"ssh_key {key.name}")
    return DestroyResult(cluster=plan.cluster, deleted=tuple(deleted), seconds=clock() - start)


def plan(cloud: Any, inventory: Inventory) -> BootstrapPlan:
    """Read the current state by labels and diff it against the inventory. Sends only GET requests."""
    return make_plan(inventory, read_state(cloud, inventory))


__all__ = ["ApplyEvent", "ApplyResult", "DestroyPlan", "DestroyResult", "NodeRow", "apply_infrastructure", "destroy", "plan", "plan_destroy"]
