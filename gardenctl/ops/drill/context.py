"""The adapters one drill needs, built from a cluster context (through ``gardenctl.ops.clients``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from gardenctl.errors import PreconditionFailed


@dataclass
class DrillAdapters:
    """Everything a drill talks to. Tests build one from fakes; `adapters_for` builds the real one."""

    context: str
    patroni: Any  # PatroniClient-like: get_cluster, get_config, get_member_status, switchover, patch_config
    watcher_patroni: Any  # a second client for the watcher threads
    patroni_endpoints: tuple[str, ...]
    etcd: Any  # EtcdClient-like: get_cluster
    haproxy: Any  # HAProxyClient-like: get_state
    rw: Any  # backends.postgres.Endpoint through HAProxy read-write
    ro: Any | None  # ... read-only (None: no read probe)
    member_endpoint: Callable[[str, int], Any]  # host, port -> Endpoint straight to one member
    target: Any  # FaultTarget
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for fn in self.closers:
            try:
                fn()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


def fault_target_for(cluster: Any) -> Any:
    """SSH + systemd when the context has a ``hosts:`` section, the lab's PIDs when it is a lab context."""
    if cluster.hosts is not None:
        from gardenctl.ops.drill.faults import SshFaultTarget
        from gardenctl.ops.drill.hosts import hosts_of

        return SshFaultTarget(hosts_of(cluster))
    if cluster.lab_dir:
        from gardenctl.lab import Lab
        from gardenctl.ops.drill.faults import LabFaultTarget

        return LabFaultTarget(Lab(Path(cluster.lab_dir)))
    raise PreconditionFailed(
        f"context {cluster.name}: gardenctl cannot break anything here: it has neither lab-dir nor a hosts: section",
        hint="add a hosts: section (ssh address, user, identity file, systemd units per node; see 'The hosts: section' in docs/drills.md)",
    )


def adapters_for(cluster: Any, *, target: Any = None) -> DrillAdapters:
    from gardenctl.ops.clients import etcd_client, haproxy_client, patroni_client, postgres_endpoint

    rw = postgres_endpoint(cluster, "rw")
    ro = postgres_endpoint(cluster, "ro") if cluster.haproxy.ro_address else None
    patroni = patroni_client(cluster)
    watcher = patroni_client(cluster)
    etcd = etcd_client(cluster)
    haproxy = haproxy_client(cluster)

    def member_endpoint(host: str, port: int) -> Any:
        return replace(rw, host=host, port=port)

    target = target if target is not None else fault_target_for(cluster)
    closers = [patroni.close, watcher.close, etcd.close]
    if hasattr(target, "close"):
        closers.append(target.close)
    return DrillAdapters(
        context=cluster.name,
        patroni=patroni,
        watcher_patroni=watcher,
        patroni_endpoints=tuple(cluster.patroni.endpoints),
        etcd=etcd,
        haproxy=haproxy,
        rw=rw,
        ro=ro,
        member_endpoint=member_endpoint,
        target=target,
        closers=closers,
    )
