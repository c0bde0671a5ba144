"""Render the configuration of the Patroni stack (patroni.yml, haproxy.cfg, etcd flags) from one description.

Both the local lab and `gardenctl bootstrap` describe their cluster as a `StackSpec` and render it here, so the
lab tests the very files that go to Hetzner. Nothing here touches the network or the disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Timing:
    """Patroni's HA timing. Patroni 4.1 raises a ttl below 20 to 20; loop_wait + 2 x retry_timeout must fit in ttl."""

    ttl_seconds: int = 20
    loop_wait_seconds: int = 2
    retry_timeout_seconds: int = 5
    # HAProxy health checks. Slower checks leave the old and new primary both in rotation for seconds; with
    # `inter 1s` a switchover's write gap was 0.5 s longer than Patroni's own leader change in half of the runs,
    # with these it stayed within 0.3 s (docs/benchmarks/drills.md). `fastinter` applies while a server changes
    # state, `downinter` to DOWN servers (how fast a new primary is found), `rise 1` puts it in at the first 200.
    check_inter_ms: int = 500
    check_fastinter_ms: int = 250
    check_downinter_ms: int = 500
    check_fall: int = 2
    check_rise: int = 1

    def problems(self) -> list[str]:
        out = []
        if self.ttl_seconds < 20:
            out.append("ttl below 20 is raised to 20 by Patroni 4.1")
        if self.loop_wait_seconds + 2 * self.retry_timeout_seconds > self.ttl_seconds:
            out.append("loop_wait + 2 x retry_timeout must not exceed ttl")
        return out


@dataclass(frozen=True, slots=True)
class StackNode:
    name: str
    host: str  # the address other nodes and HAProxy use (the private address on Hetzner)
    pg_port: int = 5432
    rest_port: int = 8008
    etcd_client_port: int = 2379
    etcd_peer_port: int = 2380
    etcd_name: str | None = None
    data_dir: str = "/var/lib/postgresql/15/main"
    config_dir: str | None = None
    unix_socket_dir: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def etcd_member(self) -> str:
        return self.etcd_name or self.name

    @property
    def etcd_client_url(self) -> str:
        return f"http://{self.host}:{self.etcd_client_port}"

    @property
    def etcd_peer_url(self) -> str:
        return f"http://{self.host}:{self.etcd_peer_port}"


@dataclass(frozen=True, slots=True)
class Credentials:
    superuser: str = "postgres"
    superuser_password: str = ""
    replication_user: str = "replicator"
    replication_password: str = ""
    rewind_user: str = "rewind_user"
    rewind_password: str = ""
    rest_user: str = "patroni"
    rest_password: str = ""


@dataclass(frozen=True, slots=True)
class StackSpec:
    scope: str
    nodes: tuple[StackNode, ...]
    credentials: Credentials
    timing: Timing = field(default_factory=Timing)
    bin_dir: str = "/usr/lib/postgresql/15/bin"
    namespace: str = "/service/"
    synchronous_mode: bool = False
    failsafe_mode: bool = False
    maximum_lag_on_failover_bytes: int = 1024 * 1024
    client_networks: tuple[str, ...] = ("127.0.0.1/32",)
    replication_networks: tuple[str, ...] = ("127.0.0.1/32",)
    # Where the services listen. The lab listens on the node's own loopback address; on Hetzner on the private one.
    listen_all: bool = False
    haproxy_bind: str = "127.0.0.1"
    haproxy_rw_port: int = 5000
    haproxy_ro_port: int = 5001
    haproxy_stats_port: int | None = 7000
    haproxy_stats_socket: str = "/run/haproxy/admin.sock"
    haproxy_maxconn: int = 200
    pg_parameters: dict[str, Any] = field(default_factory=dict)
    etcd_cluster_token: str = "gardenos"

    def node(self, name: str) -> StackNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def etcd_hosts(self) -> str:
        return ",".join(f"{n.host}:{n.etcd_client_port}" for n in self.nodes)

    @property
    def etcd_initial_cluster(self) -> str:
        return ",".join(f"{n.etcd_member}={n.etcd_peer_url}" for n in self.nodes)


def patroni_config(spec: StackSpec, node: StackNode) -> dict[str, Any]:
    """patroni.yml for one node, as a dict (dump it with yaml.safe_dump)."""
    creds = spec.credentials
    listen_host = "0.0.0.0" if spec.listen_all else node.host
    parameters: dict[str, Any] = {
        "wal_level": "replica",
        "hot_standby": "on",
        "wal_log_hints": "on",
        "max_wal_senders": 10,
        "max_replication_slots": 10,
        "wal_keep_size": "128MB",
        "max_connections": 100,
    }
    parameters.update(spec.pg_parameters)
    # No trust anywhere: Patroni connects over the local socket with its superuser password, people with theirs.
    hba = ["local all all scram-sha-256"]
    for net in spec.replication_networks:
        hba.append(f"host replication {creds.replication_user} {net} scram-sha-256")
    for net in spec.client_networks:
        hba.append(f"host all all {net} scram-sha-256")
    local_parameters: dict[str, Any] = {}
    if node.unix_socket_dir:
        local_parameters["unix_socket_directories"] = node.unix_socket_dir
    config: dict[str, Any] = {
        "scope": spec.scope,
        "namespace": spec.namespace,
        "name": node.name,
        "restapi": {
            "listen": f"{listen_host}:{node.rest_port}",
            "connect_address": f"{node.host}:{node.rest_port}",
            "authentication": {"username": creds.rest_user, "password": creds.rest_password},
        },
        "etcd3": {"hosts": spec.etcd_hosts},
        "bootstrap": {
            "dcs": {
                "ttl": spec.timing.ttl_seconds,
                "loop_wait": spec.timing.loop_wait_seconds,
                "retry_timeout": spec.timing.retry_timeout_seconds,
                "maximum_lag_on_failover": spec.maximum_lag_on_failover_bytes,
                "synchronous_mode": spec.synchronous_mode,
                "failsafe_mode": spec.failsafe_mode,
                "postgresql": {"use_pg_rewind": True, "use_slots": True, "parameters": parameters},
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
        },
        "postgresql": {
            "listen": f"{listen_host}:{node.pg_port}",
            "connect_address": f"{node.host}:{node.pg_port}",
            "data_dir": node.data_dir,
            "bin_dir": spec.bin_dir,
            "pgpass": f"{node.config_dir or node.data_dir + '/..'}/pgpass",
            "authentication": {
                "superuser": {"username": creds.superuser, "password": creds.superuser_password},
                "replication": {"username": creds.replication_user, "password": creds.replication_password},
                "rewind": {"username": creds.rewind_user, "password": creds.rewind_password},
            },
            "parameters": local_parameters,
            "pg_hba": hba,
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False, **node.tags},
    }
    return config


def haproxy_config(spec: StackSpec) -> str:
    """haproxy.cfg with a read-write listener (``GET /primary``) and a read-only one (``GET /replica``)."""
    t = spec.timing
    default_server = (
        f"    default-server inter {t.check_inter_ms}ms fastinter {t.check_fastinter_ms}ms downinter {t.check_downinter_ms}ms "
        f"fall {t.check_fall} rise {t.check_rise} on-marked-down shutdown-sessions"
    )
    lines = [
        "# Rendered by gardenctl. The read-write listener checks Patroni's GET /primary on each node's REST port, so",
        "# exactly one server is UP; the others are DOWN (L7STS 503) on purpose.",
        "global",
        f"    maxconn {spec.haproxy_maxconn}",
        f"    stats socket {spec.haproxy_stats_socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    retries 2",
        "    option redispatch 1",
        "    timeout connect 2s",
        "    timeout client 30m",
        "    timeout server 30m",
        "    timeout check 2s",
        "",
    ]
    if spec.haproxy_stats_port:
        lines += [
            "listen stats",
            "    mode http",
            f"    bind {spec.haproxy_bind}:{spec.haproxy_stats_port}",
            "    stats enable",
            "    stats uri /stats",
            "    stats refresh 5s",
            "",
        ]
    for name, port, path in (("pg_rw", spec.haproxy_rw_port, "/primary"), ("pg_ro", spec.haproxy_ro_port, "/replica")):
        lines += [
            f"listen {name}",
            f"    bind {spec.haproxy_bind}:{port}",
            "    balance roundrobin" if name == "pg_ro" else "    balance first",
            f"    option httpchk GET {path}",
            "    http-check expect status 200",
            default_server,
        ]
        if name == "pg_rw":
            # HAProxy < 3.1 has no `init-state down`: after a start or restart every server counts as UP until its
            # first check fails, and `balance first` would send writes to a replica. Writes go through only while
            # exactly one server is UP: never to a replica at start-up, never to two servers during a switchover.
            lines.insert(len(lines) - 1, "    tcp-request connection reject if { nbsrv(pg_rw) gt 1 }")
        for node in spec.nodes:
            lines.append(f"    server {node.name} {node.host}:{node.pg_port} maxconn 100 check port {node.rest_port}")
        lines.append("")
    return "\n".join(lines)


def etcd_args(spec: StackSpec, node: StackNode, data_dir: str, *, listen_host: str | None = None) -> list[str]:
    """Command-line flags for one etcd member (etcd 3.4+)."""
    listen = listen_host or node.host
    client_listen = f"http://{listen}:{node.etcd_client_port}"
    if listen != "127.0.0.1" and node.host != "127.0.0.1":
        client_listen += f",http://127.0.0.1:{node.etcd_client_port}"
    return [
        "--name", node.etcd_member,
        "--data-dir", data_dir,
        "--listen-client-urls", client_listen,
        "--advertise-client-urls", node.etcd_client_url,
        "--listen-peer-urls", f"http://{listen}:{node.etcd_peer_port}",
        "--initial-advertise-peer-urls", node.etcd_peer_url,
        "--initial-cluster", spec.etcd_initial_cluster,
        "--initial-cluster-token", spec.etcd_cluster_token,
        "--initial-cluster-state", "new",
        "--heartbeat-interval", "100",
        "--election-timeout", "1000",
        "--logger", "zap",
        "--log-outputs", "stderr",
    ]
