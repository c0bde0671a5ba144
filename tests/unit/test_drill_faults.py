"""The fault interface: the ledger and recovery against a hand-written fake target; the SSH target's exact systemctl
commands (through a recording fake client); target selection from cluster state; the hosts: section's validation."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import pytest

from gardenctl.backends.patroni import parse_cluster
from gardenctl.backends.ssh import RemoteResult
from gardenctl.config import load_yaml_with_lines
from gardenctl.errors import ConfigError, GardenError, OperationFailed
from gardenctl.model import EtcdCluster, EtcdMember
from gardenctl.ops.drill.faults import FaultRecord, Ledger, SshFaultTarget, recover, role_kind
from gardenctl.ops.drill.hosts import parse_hosts
from gardenctl.ops.drill.playbook import Step
from gardenctl.ops.drill.runner import resolve_target


@dataclass
class FakeTarget:
    """An in-memory stack: which role runs on which node; every action is logged."""

    kind: str = "fake"
    running: dict[tuple[str, str], bool] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    broken_starts: set[str] = field(default_factory=set)

    @staticmethod
    def three_nodes() -> "FakeTarget":
        t = FakeTarget()
        for i in range(3):
            t.running[("patroni", f"node{i}")] = True
            t.running[("postgres", f"node{i}")] = True
            t.running[("etcd", f"etcd{i}")] = True
        t.running[("haproxy", "lb")] = True
        return t

    def describe(self) -> str:
        return "a fake stack"

    def nodes(self, role: str) -> tuple[str, ...]:
        kind = role_kind(role)
        return tuple(sorted({n for (r, n) in self.running if role_kind(r) == kind}))

    def apply(self, action: str, roles: tuple[str, ...], node: str) -> FaultRecord:
        if node not in self.nodes(roles[0]):
            raise GardenError(f"no {roles[0]} on {node}")
        if action == "start" and node in self.broken_starts:
            raise GardenError(f"{node} refuses to start")
        hit = list(roles)
        if action == "start" and roles == ("patroni",):
            hit = ["patroni", "postgres"]  # Patroni starts PostgreSQL
        for role in hit:
            self.running[(role, node)] = action == "start"
        self.log.append(f"{action} {'+'.join(roles)} {node}")
        return FaultRecord(action, roles, node, f"{action} {'+'.join(roles)} on {node}")

    def is_running(self, role: str, node: str) -> bool | None:
        return self.running.get((role, node))

    def problems(self) -> list[str]:
        return []


def test_ledger_restarts_what_was_broken_etcd_first_then_patroni_then_haproxy():
    target = FakeTarget.three_nodes()
    ledger = Ledger()
    for action, roles, node in [("stop", ("haproxy",), "lb"), ("kill", ("patroni", "postgres"), "node1"), ("kill", ("etcd",), "etcd2"), ("kill", ("etcd",), "etcd0")]:
        ledger.note(target.apply(action, roles, node))
    assert ledger.restore_order() == [("etcd", "etcd2"), ("etcd", "etcd0"), ("patroni", "node1"), ("haproxy", "lb")]
    seen: list[str] = []
    assert recover(target, ledger, seen.append) == []
    assert target.log[-4:] == ["start etcd etcd2", "start etcd etcd0", "start patroni node1", "start haproxy lb"]
    assert all(target.running.values())
    assert ledger.down == []
    assert seen == ["recover: start etcd on etcd2", "recover: start etcd on etcd0", "recover: start patroni on node1", "recover: start haproxy on lb"]


def test_a_start_step_takes_the_node_off_the_ledger_and_a_failed_start_is_reported():
    target = FakeTarget.three_nodes()
    ledger = Ledger()
    ledger.note(target.apply("kill", ("postgres",), "node0"))
    ledger.note(target.apply("kill", ("etcd",), "etcd1"))
    ledger.note(target.apply("start", ("patroni",), "node0"))
    assert ledger.down == [("etcd", "etcd1")]
    target.broken_starts.add("etcd1")
    assert recover(target, ledger) == ["could not start etcd on etcd1: etcd1 refuses to start"]
    assert ledger.down == [("etcd", "etcd1")]  # still down: a later recovery tries again


def test_killing_twice_is_recorded_once():
    target = FakeTarget.three_nodes()
    ledger = Ledger()
    ledger.note(target.apply("kill", ("patroni",), "node2"))
    ledger.note(target.apply("kill", ("postgres",), "node2"))
    assert ledger.down == [("patroni", "node2")]


# ------------------------------------------------------------------------------------------------ target selection

CLUSTER = parse_cluster(
    {
        "members": [
            {"name": "node0", "role": "leader", "state": "running", "timeline": 3, "host": "10.0.0.11", "port": 5432},
            {"name": "node1", "role": "replica", "state": "streaming", "timeline": 3, "lag": 0, "host": "10.0.0.12", "port": 5432},
            {"name": "node2", "role": "sync_standby", "state": "streaming", "timeline": 3, "lag": 0, "host": "10.0.0.13", "port": 5432},
        ]
    }
)
ETCD = EtcdCluster(
    members=(
        EtcdMember(id=1, name="etcd0", healthy=True, is_leader=False),
        EtcdMember(id=2, name="etcd1", healthy=True, is_leader=True),
        EtcdMember(id=3, name="etcd2", healthy=True, is_leader=False),
    )
)


def step(roles: tuple[str, ...], target: str, count: int = 1) -> Step:
    return Step(kind="fault", line=1, action="kill", roles=roles, target=target, count=count)


@pytest.mark.parametrize(
    "roles, sel, count, expected",
    [
        (("patroni", "postgres"), "leader", 1, ["node0"]),
        (("patroni", "postgres"), "replica", 1, ["node2"]),  # the sync standby first
        (("patroni",), "async-replica", 1, ["node1"]),
        (("patroni",), "sync-standby", 1, ["node2"]),
        (("patroni",), "node1", 1, ["node1"]),
        (("etcd",), "etcd-leader", 1, ["etcd1"]),
        (("etcd",), "etcd-follower", 2, ["etcd0", "etcd2"]),
        (("etcd",), "etcd-member", 1, ["etcd0"]),
        (("haproxy",), "haproxy", 1, ["lb"]),
    ],
)
def test_targets_resolve_from_the_live_cluster(roles, sel, count, expected):
    assert resolve_target(step(roles, sel, count), CLUSTER, ETCD, FakeTarget.three_nodes()) == expected


def test_not_enough_targets_is_an_error_naming_the_step():
    with pytest.raises(OperationFailed) as info:
        resolve_target(step(("etcd",), "etcd-follower", 3), CLUSTER, ETCD, FakeTarget.three_nodes())
    assert info.value.message == "step `SIGKILL etcd on 3 x etcd-follower`: needs 3 etcd-follower, only 2 available now"


def test_a_member_the_fault_target_does_not_know_is_refused():
    target = FakeTarget.three_nodes()
    del target.running[("patroni", "node0")], target.running[("postgres", "node0")]
    with pytest.raises(OperationFailed) as info:
        resolve_target(step(("patroni", "postgres"), "leader"), CLUSTER, ETCD, target)
    assert info.value.message == "the fault target does not know node0 (it knows: node1, node2)"


# ------------------------------------------------------------------------------------------------ hosts + SSH commands

HOSTS = """\
hosts:
  ssh:
    user: ops
    identity-file: /keys/id_ed25519
    known-hosts-file: /keys/known_hosts
    sudo: true
  nodes:
    node0:
      address: 10.0.0.11
      services: [patroni, etcd, haproxy]
      etcd-name: etcd-a
    node1:
      address: 10.0.0.12
      ssh: {port: 2222, sudo: false, user: root}
      units: {patroni: patroni@main.service}
      postgres-data-dir: /data/pg
    node2:
      address: 10.0.0.13
      units: {postgresql: postgresql@15-main.service}
"""


def hosts(text: str = HOSTS):
    data = load_yaml_with_lines(text, "config.yaml")
    return parse_hosts(data["hosts"], "config.yaml", data.key_lines["hosts"], "clusters.prod.hosts")


def test_hosts_section_defaults_and_overrides():
    h = hosts()
    n0, n1, n2 = h.nodes
    assert (n0.ssh.user, n0.ssh.port, n0.ssh.sudo, n0.ssh.identity_file) == ("ops", 22, True, "/keys/id_ed25519")
    assert (n1.ssh.user, n1.ssh.port, n1.ssh.sudo) == ("root", 2222, False)
    assert n0.services == ("patroni", "etcd", "haproxy") and n1.services == ("patroni", "etcd")
    assert (n0.etcd_name, n1.etcd_name) == ("etcd-a", "node1")
    assert n1.unit("patroni") == "patroni@main.service" and n1.unit("etcd") == "etcd.service"
    assert n2.unit("postgresql") == "postgresql@15-main.service"
    assert n1.postgres_data_dir == "/data/pg" and n0.postgres_data_dir == "/var/lib/postgresql/15/main"
    assert n0.ssh.strict_host_key_checking == "yes"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("hosts:\n  nodes:\n    node0: {}\n", "config.yaml:3: clusters.prod.hosts.nodes.node0.address: is required but missing"),
        ("hosts:\n  ssh:\n    port: 0\n  nodes:\n    a: {address: x}\n", "config.yaml:3: clusters.prod.hosts.ssh.port: must be a TCP port (1-65535)"),
        (
            "hosts:\n  ssh:\n    strict-host-key-checking: no\n  nodes:\n    a: {address: x}\n",
            "config.yaml:3: clusters.prod.hosts.ssh.strict-host-key-checking: expected yes or accept-new (gardenctl never turns host key checking off)",
        ),
        ("hosts:\n  nodes:\n    a: {address: x, services: [patroni, k3s]}\n", "config.yaml:3: clusters.prod.hosts.nodes.a.services: unknown service 'k3s' (expected: patroni, etcd, haproxy)"),
        ("hosts:\n  units: {pgbouncer: x.service}\n  nodes:\n    a: {address: x}\n", "config.yaml:2: clusters.prod.hosts.units.pgbouncer: unknown unit role (expected: patroni, etcd, haproxy, postgresql)"),
        ("hosts:\n  nodes:\n    a: {address: x, passwd: y}\n", "config.yaml:3: clusters.prod.hosts.nodes.a.passwd: unknown key (check the spelling; see README 'Configuration')"),
        ("hosts:\n  nodes: {}\n", "config.yaml:2: clusters.prod.hosts.nodes: needs at least one node"),
        ("hosts:\n  ssh: {user: x}\n", "config.yaml:1: clusters.prod.hosts.nodes: is required but missing"),
    ],
)
def test_bad_hosts_sections_name_line_and_key(text, expected):
    with pytest.raises(ConfigError) as info:
        hosts(text)
    assert info.value.message == expected


@pytest.mark.parametrize(
    "action, roles, node, expected",
    [
        ("kill", ("patroni", "postgres"), "node0", ("node0", "systemctl kill --kill-who=all --signal=SIGKILL patroni.service && systemctl stop patroni.service")),
        ("kill", ("patroni",), "node1", ("node1", "systemctl kill --kill-who=main --signal=SIGKILL patroni@main.service && systemctl stop patroni@main.service")),
        ("stop", ("patroni",), "node0", ("node0", "systemctl stop patroni.service")),
        ("start", ("patroni",), "node0", ("node0", "systemctl start patroni.service")),
        ("kill", ("postgres",), "node1", ("node1", 'kill -s KILL "$(head -n 1 /data/pg/postmaster.pid)"')),
        ("stop", ("postgres",), "node1", ("node1", 'kill -s INT "$(head -n 1 /data/pg/postmaster.pid)"')),
        ("start", ("postgres",), "node1", ("node1", "systemctl start patroni@main.service")),
        ("kill", ("postgres",), "node2", ("node2", "systemctl kill --kill-who=all --signal=SIGKILL postgresql@15-main.service && systemctl stop postgresql@15-main.service")),
        (
            "kill",
            ("patroni", "postgres"),
            "node2",
            ("node2", "systemctl kill --kill-who=all --signal=SIGKILL patroni.service postgresql@15-main.service && systemctl stop patroni.service postgresql@15-main.service"),
        ),
        ("kill", ("etcd",), "etcd-a", ("node0", "systemctl kill --kill-who=all --signal=SIGKILL etcd.service && systemctl stop etcd.service")),
        ("start", ("etcd",), "node1", ("node1", "systemctl start etcd.service")),
        ("stop", ("haproxy",), "node0", ("node0", "systemctl stop haproxy.service")),
    ],
)
def test_ssh_target_commands(action, roles, node, expected):
    assert SshFaultTarget(hosts()).command(action, roles, node) == expected


def test_ssh_target_knows_its_nodes_per_role():
    t = SshFaultTarget(hosts())
    assert t.nodes("patroni") == ("node0", "node1", "node2")
    assert t.nodes("etcd") == ("etcd-a", "node1", "node2")
    assert t.nodes("haproxy") == ("node0",)
    with pytest.raises(GardenError) as info:
        t.command("stop", ("haproxy",), "node1")
    assert info.value.message == "no node 'node1' with service haproxy in the hosts: section"


class RecordingClient:
    """Stands in for SshClient: records what would run where; exit status from a table."""

    def __init__(self, target, calls: list, statuses: dict) -> None:  # noqa: ANN001
        self.target = target
        self.calls = calls
        self.statuses = statuses

    def run(self, command, *, check: bool = True, **_kw):  # noqa: ANN001, ANN201
        text = command if isinstance(command, str) else " ".join(command)
        self.calls.append((self.target.name, text, self.target.sudo))
        status = self.statuses.get(text, 0)
        return RemoteResult(text, status, b"", b"")

    def check_connection(self) -> None:
        self.calls.append((self.target.name, "true", False))


def test_ssh_target_runs_through_one_client_per_host_with_the_hosts_sudo_setting():
    calls: list = []
    statuses = {"systemctl is-active --quiet etcd.service": 3}
    t = SshFaultTarget(hosts(), client_factory=lambda target: RecordingClient(target, calls, statuses))
    record = t.apply("kill", ("patroni", "postgres"), "node0")
    assert record.detail == "node0: systemctl kill --kill-who=all --signal=SIGKILL patroni.service && systemctl stop patroni.service"
    t.apply("start", ("patroni",), "node1")
    assert t.is_running("etcd", "node2") is False
    assert t.is_running("patroni", "node2") is True
    assert t.problems() == []
    assert calls == [
        ("node0", "systemctl kill --kill-who=all --signal=SIGKILL patroni.service && systemctl stop patroni.service", True),
        ("node1", "systemctl start patroni@main.service", False),
        ("node2", "systemctl is-active --quiet etcd.service", True),
        ("node2", "systemctl is-active --quiet patroni.service", True),
        ("node0", "true", False),
        ("node1", "true", False),
        ("node2", "true", False),
    ]


def test_hosts_section_from_a_whole_config_file_keeps_its_lines(tmp_path):
    from gardenctl.config import load_config, select_cluster
    from gardenctl.ops.drill.hosts import hosts_of

    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            clusters:
              prod:
                patroni: {endpoints: ["http://10.0.0.11:8008"]}
                etcd: {endpoints: ["http://10.0.0.11:2379"]}
                haproxy: {stats-url: "http://10.0.0.11:7000/stats"}
                hosts:
                  nodes:
                    node0:
                      address: 10.0.0.11
                      sudo: true
            """
        )
    )
    cluster = select_cluster(load_config(path), "prod")
    with pytest.raises(ConfigError) as info:
        hosts_of(cluster)
    assert info.value.message == f"{path}:10: clusters.prod.hosts.nodes.node0.sudo: unknown key (check the spelling; see README 'Configuration')"
