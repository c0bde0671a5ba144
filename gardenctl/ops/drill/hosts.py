"""The ``hosts:`` section of a cluster context: how to reach each machine over SSH and which systemd units run there.

::

    clusters:
      prod:
        ...
        hosts:
          ssh:                                  # defaults for every node (each node may override any of them)
            user: root
            port: 22
            identity-file: ~/.ssh/gardenctl_ed25519
            known-hosts-file: ~/.ssh/known_hosts
            strict-host-key-checking: yes       # yes (default) | accept-new
            connect-timeout-seconds: 5
            sudo: false                         # prefix remote commands with `sudo -n` (never prompts)
            config-file: null                   # an ssh_config to use; default none (-F /dev/null)
          units:                                # systemd unit names (these are the defaults)
            patroni: patroni.service
            etcd: etcd.service
            haproxy: haproxy.service
            postgresql: null                    # null: PostgreSQL runs under Patroni; signal the postmaster by PID
          postgres-data-dir: /var/lib/postgresql/15/main   # where postmaster.pid is
          nodes:
            node-a:                             # the Patroni member name
              address: 10.0.0.11
              services: [patroni, etcd, haproxy]   # default: [patroni, etcd]
              etcd-name: node-a                 # the etcd member name (default: the node name)
              ssh: {user: admin, sudo: true}    # optional per-node overrides
              units: {...}
              postgres-data-dir: ...

Validated here with errors naming the config file, the line and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gardenctl.backends.ssh import SshTarget

SERVICES = ("patroni", "etcd", "haproxy")
DEFAULT_UNITS = {"patroni": "patroni.service", "etcd": "etcd.service", "haproxy": "haproxy.service", "postgresql": None}
DEFAULT_DATA_DIR = "/var/lib/postgresql/15/main"


@dataclass(frozen=True, slots=True)
class HostNode:
    name: str
    ssh: SshTarget
    services: tuple[str, ...]
    etcd_name: str
    units: dict[str, str | None] = field(default_factory=dict)
    postgres_data_dir: str = DEFAULT_DATA_DIR

    def unit(self, role: str) -> str | None:
        return self.units.get(role)


@dataclass(frozen=True, slots=True)
class Hosts:
    nodes: tuple[HostNode, ...]
    source: str = ""

    def node(self, name: str) -> HostNode | None:
        return next((n for n in self.nodes if n.name == name), None)

    def with_service(self, service: str) -> tuple[HostNode, ...]:
        return tuple(n for n in self.nodes if service in n.services)

    def by_etcd_name(self, etcd_name: str) -> HostNode | None:
        return next((n for n in self.nodes if "etcd" in n.services and n.etcd_name == etcd_name), None)


def parse_hosts(raw: Any, source: str, line: int = 0, path: str = "hosts") -> Hosts:
    from gardenctl.config import Section

    top = Section(raw, path, source, line)
    ssh_defaults = _ssh_settings(top.section("ssh"))
    unit_defaults = _units(top.section("units"), dict(DEFAULT_UNITS))
    data_dir_default = top.get("postgres-data-dir", str, DEFAULT_DATA_DIR)
    nodes_sec = top.section("nodes", required=True)
    if not nodes_sec.data:
        raise nodes_sec.error("needs at least one node", nodes_sec.line)
    nodes = []
    for name in list(nodes_sec.data):
        if not isinstance(name, str) or not name:
            raise nodes_sec.error("node names must be non-empty strings", nodes_sec.key_line(name))
        sec = nodes_sec.section(name)
        address = sec.get("address", str, required=True)
        ssh = {**ssh_defaults, **_ssh_settings(sec.section("ssh"))}
        services = sec.get_str_list("services") or ("patroni", "etcd")
        for svc in services:
            if svc not in SERVICES:
                raise sec.error(f"unknown service {svc!r} (expected: {', '.join(SERVICES)})", sec.key_line("services"), "services")
        units = _units(sec.section("units"), dict(unit_defaults))
        strict = ssh.get("strict-host-key-checking", "yes")
        nodes.append(
            HostNode(
                name=name,
                ssh=SshTarget(
                    host=address,
                    user=ssh.get("user"),
                    port=ssh.get("port", 22),
                    identity_file=ssh.get("identity-file"),
                    known_hosts_file=ssh.get("known-hosts-file"),
                    strict_host_key_checking=strict,
                    connect_timeout_seconds=ssh.get("connect-timeout-seconds", 5),
                    sudo=ssh.get("sudo", False),
                    config_file=ssh.get("config-file"),
                    name=name,
                ),
                services=tuple(services),
                etcd_name=sec.get("etcd-name", str, name),
                units=units,
                postgres_data_dir=sec.get("postgres-data-dir", str, data_dir_default),
            )
        )
        sec.reject_unknown()
    top.reject_unknown()
    etcd_names = [n.etcd_name for n in nodes if "etcd" in n.services]
    if len(set(etcd_names)) != len(etcd_names):
        raise nodes_sec.error("two nodes name the same etcd member (etcd-name)", nodes_sec.line)
    return Hosts(nodes=tuple(nodes), source=source)


def _ssh_settings(sec: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind in (("user", str), ("identity-file", str), ("known-hosts-file", str), ("config-file", str)):
        if sec.has(key):
            out[key] = sec.get(key, kind)
    if sec.has("port"):
        port = sec.get("port", int)
        if not 0 < port < 65536:
            raise sec.error("must be a TCP port (1-65535)", sec.key_line("port"), "port")
        out["port"] = port
    if sec.has("connect-timeout-seconds"):
        value = sec.get("connect-timeout-seconds", int)
        if value <= 0:
            raise sec.error("must be a positive integer", sec.key_line("connect-timeout-seconds"), "connect-timeout-seconds")
        out["connect-timeout-seconds"] = value
    if sec.has("sudo"):
        out["sudo"] = sec.get("sudo", bool)
    if sec.has("strict-host-key-checking"):
        raw = sec.raw("strict-host-key-checking")
        if raw is True or raw == "yes":
            out["strict-host-key-checking"] = "yes"
        elif raw == "accept-new":
            out["strict-host-key-checking"] = "accept-new"
        else:
            raise sec.error(
                "expected yes or accept-new (gardenctl never turns host key checking off)",
                sec.key_line("strict-host-key-checking"),
                "strict-host-key-checking",
            )
    sec.reject_unknown()
    return out


def _units(sec: Any, base: dict[str, str | None]) -> dict[str, str | None]:
    for key in list(sec.data):
        if key not in DEFAULT_UNITS:
            raise sec.error(f"unknown unit role (expected: {', '.join(DEFAULT_UNITS)})", sec.key_line(key), key)
        value = sec.raw(key)
        if value is not None and (not isinstance(value, str) or not value.strip() or " " in value):
            raise sec.error("expected a systemd unit name like patroni.service", sec.key_line(key), key)
        base[key] = value
    for role in ("patroni", "etcd", "haproxy"):
        if not base.get(role):
            raise sec.error(f"the {role} unit cannot be empty", sec.line, role)
    return base


def hosts_of(cluster: Any) -> Hosts | None:
    """The parsed hosts: section of a ClusterConfig, or None when it has none."""
    if cluster.hosts is None:
        return None
    line = getattr(cluster.hosts, "line", 0) or cluster.line
    return parse_hosts(cluster.hosts, cluster.source or "config", line, f"clusters.{cluster.name}.hosts")
