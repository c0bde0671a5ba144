"""The drill's preflight, health verdict and history/report output, with hand-written fakes of Patroni, etcd and
HAProxy (the run itself needs real PostgreSQL and is covered by tests/lab/test_drill.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from gardenctl.backends.haproxy import parse_stat_csv
from gardenctl.backends.patroni import parse_cluster, parse_config
from gardenctl.errors import BackendUnreachable
from gardenctl.model import EtcdCluster, EtcdMember
from gardenctl.ops.drill import history
from gardenctl.ops.drill.playbook import builtin_playbook_dirs, resolve_playbook
from gardenctl.ops.drill.report import report_markdown
from gardenctl.ops.drill.result import DrillEvent, DrillReport, DrillRun, Figure
from gardenctl.ops.drill.runner import DrillOptions, health_problems, plan_drill
from tests.unit.test_drill_faults import FakeTarget

DIRS = tuple((d, "builtin") for d in builtin_playbook_dirs())
CONFIG = {"ttl": 20, "loop_wait": 2, "retry_timeout": 5, "synchronous_mode": False}


def members(replica_state: str = "streaming", replica_lag: object = 0) -> list[dict]:
    return [
        {"name": "node0", "role": "leader", "state": "running", "timeline": 3, "host": "127.0.0.1", "port": 5430},
        {"name": "node1", "role": "replica", "state": replica_state, "timeline": 3, "lag": replica_lag, "host": "127.0.0.1", "port": 5431},
        {"name": "node2", "role": "replica", "state": "streaming", "timeline": 3, "lag": 0, "host": "127.0.0.1", "port": 5432},
    ]


@dataclass
class FakePatroni:
    raw: dict
    config: dict = field(default_factory=lambda: dict(CONFIG))
    own: dict = field(default_factory=dict)  # api_url -> what that member's GET /patroni says

    def get_cluster(self, *, with_config: bool = True, every_endpoint: bool = False):
        return parse_cluster(self.raw, "fake", parse_config(self.config) if with_config else None)

    def get_member_status(self, api_url: str) -> dict:
        answer = self.own.get(api_url)
        if answer is None:
            raise BackendUnreachable(f"patroni: {api_url}: connection refused")
        return answer


@dataclass
class FakeEtcd:
    down: tuple[str, ...] = ()

    def get_cluster(self, quota_bytes=None):  # noqa: ANN001, ANN201
        return EtcdCluster(
            members=tuple(EtcdMember(id=i + 1, name=f"etcd{i}", healthy=f"etcd{i}" not in self.down, is_leader=i == 0) for i in range(3))
        )


@dataclass
class FakeHAProxy:
    up: str = "node0"
    error: bool = False

    def get_state(self):  # noqa: ANN201
        if self.error:
            raise BackendUnreachable("haproxy: stats socket /run/haproxy.sock does not exist (is HAProxy running?)")
        rows = "\n".join(f"pg_rw,node{i},{'UP' if f'node{i}' == self.up else 'DOWN'},1,1,0,L7OK,200" for i in range(3))
        return parse_stat_csv(f"# pxname,svname,status,weight,act,bck,check_status,check_code\n{rows}\n", "pg_rw", "pg_ro")


@dataclass
class FakeAdapters:
    patroni: FakePatroni
    etcd: FakeEtcd = field(default_factory=FakeEtcd)
    haproxy: FakeHAProxy = field(default_factory=FakeHAProxy)
    target: FakeTarget = field(default_factory=FakeTarget.three_nodes)
    context: str = "fake"


def adapters(**raw_extra) -> FakeAdapters:  # noqa: ANN003
    return FakeAdapters(FakePatroni({"members": members(), "scope": "demo", **raw_extra}))


def checks(plan) -> dict[str, tuple[bool, bool]]:  # noqa: ANN001
    return {c.name: (c.ok, c.overridable) for c in plan.checks}


def test_healthy_cluster_passes_the_preflight():
    plan = plan_drill(resolve_playbook("kill-leader", None, DIRS), adapters())
    assert plan.ok
    assert all(ok for ok, _ in checks(plan).values())
    assert plan.leader == "node0" and plan.ttl_seconds == 20 and not plan.synchronous_mode
    assert plan.steps[0] == "SIGKILL patroni+postgres on leader"
    assert "max-seconds-to-new-leader: 25 (ttl + 5)" in plan.thresholds
    assert "max-acked-writes-lost: reported only (async mode)" in plan.thresholds


def test_paused_cluster_is_refused_even_with_force():
    """F05: drills refuse to start on a paused cluster, and say why."""
    fake = adapters(pause=True)
    for force in (False, True):
        plan = plan_drill(resolve_playbook("switchover", None, DIRS), fake, DrillOptions(force=force))
        assert not plan.ok
        paused = next(c for c in plan.checks if c.name == "not paused")
        assert not paused.ok and not paused.overridable
        assert paused.detail.startswith("maintenance mode is on: Patroni does not fail over while paused")
        assert [c.name for c in plan.blocking] == ["not paused"]


def test_unhealthy_cluster_is_refused_unless_forced():
    fake = FakeAdapters(FakePatroni({"members": members("starting", "unknown")}), etcd=FakeEtcd(down=("etcd2",)), haproxy=FakeHAProxy(up="node1"))
    plan = plan_drill(resolve_playbook("kill-replica", None, DIRS), fake)
    assert checks(plan)["replicas streaming"] == (False, True)
    assert checks(plan)["etcd healthy"] == (False, True)
    assert checks(plan)["haproxy routes to the leader"] == (False, True)
    assert sorted(c.name for c in plan.blocking) == ["etcd healthy", "haproxy routes to the leader", "replicas streaming"]
    assert next(c for c in plan.checks if c.name == "replicas streaming").detail == "not streaming: node1 (starting, lag unknown)"
    forced = plan_drill(resolve_playbook("kill-replica", None, DIRS), fake, DrillOptions(force=True))
    assert forced.ok and len(forced.overridden) == 3


def test_a_playbook_that_does_not_fit_is_refused():
    fake = adapters()
    fake.target = FakeTarget.three_nodes()
    del fake.target.running[("etcd", "etcd1")], fake.target.running[("etcd", "etcd2")]
    plan = plan_drill(resolve_playbook("etcd-quorum-loss", None, DIRS), fake, DrillOptions(force=True))
    fit = next(c for c in plan.checks if c.name == "playbook fits the cluster")
    assert not fit.ok and not fit.overridable
    assert fit.detail == "the fault target does not know etcd1, etcd2 (it knows: etcd0)"


def test_unreachable_haproxy_and_failsafe_flag_show_in_the_plan():
    fake = adapters()
    fake.haproxy = FakeHAProxy(error=True)
    plan = plan_drill(resolve_playbook("etcd-quorum-loss", None, DIRS), fake, DrillOptions(failsafe=True))
    assert checks(plan)["haproxy routes to the leader"] == (False, True)
    assert plan.patroni_config == {"failsafe_mode": True}


def test_health_problems_name_every_gap_to_full_health():
    fake = FakeAdapters(FakePatroni({"members": members()[:2]}), etcd=FakeEtcd(down=("etcd1",)), haproxy=FakeHAProxy(up="node2"))
    problems, cluster = health_problems(fake, ("node0", "node1", "node2"))
    assert cluster is not None
    assert problems == [
        "member(s) not registered in Patroni: node2",
        "etcd member(s) not healthy: etcd1",
        "HAProxy read-write routes to node2, not to the leader node0",
    ]
    assert health_problems(adapters(), ("node0", "node1", "node2"))[0] == []


def test_a_restarted_member_is_judged_by_its_own_rest_api_not_its_stale_key():
    """A killed replica's member key still says "streaming" for up to ttl after it is started again."""
    raw = members()
    for i, m in enumerate(raw):
        m["api_url"] = f"http://127.0.0.1:800{i}/patroni"
    fake = FakeAdapters(FakePatroni({"members": raw}))
    fake.patroni.own = {
        "http://127.0.0.1:8000/patroni": {"state": "running", "role": "primary", "timeline": 3},
        "http://127.0.0.1:8001/patroni": {"state": "starting", "role": "replica"},
        "http://127.0.0.1:8002/patroni": {"state": "running", "role": "replica", "replication_state": "in archive recovery", "timeline": 3},
    }
    problems, _ = health_problems(fake, ("node0", "node1", "node2"))
    assert problems == ["node1 says it is starting", "node2 says its replication is in archive recovery, not streaming"]
    fake.patroni.own["http://127.0.0.1:8001/patroni"] = {"state": "running", "role": "replica", "replication_state": "streaming", "timeline": 3}
    fake.patroni.own["http://127.0.0.1:8002/patroni"]["replication_state"] = "streaming"
    assert health_problems(fake, ("node0", "node1", "node2"))[0] == []
    del fake.patroni.own["http://127.0.0.1:8002/patroni"]
    assert health_problems(fake, ())[0] == ["node2: its REST API does not answer (patroni: http://127.0.0.1:8002/patroni: connection refused)"]


# ------------------------------------------------------------------------------------------------ history, report


def a_run(passed: bool = True, iteration: int = 1) -> DrillRun:
    figures = (
        Figure("write_unavailable_seconds", "write-unavailable window (longest gap)", 2.5, "s", 5.0, True),
        Figure("acked_writes_lost", "acknowledged writes lost", 0.0 if passed else 3.0, "rows", 0.0, passed),
        Figure("seconds_to_new_leader", "time to a new leader in Patroni", 1.9, "s", None, None),
    )
    return DrillRun(
        playbook="switchover",
        context="lab",
        run_id=f"switchover-x-{iteration}",
        iteration=iteration,
        started_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        duration_seconds=12.5,
        synchronous_mode=False,
        failsafe_mode=False,
        ttl_seconds=20,
        fault_target="a fake stack",
        leader_before="node0",
        leader_after="node1",
        figures=figures,
        events=(DrillEvent(2.0, "switchover requested"), DrillEvent(4.1, "new leader running in Patroni: node1")),
        notes=("leader: node0 -> node1",),
        lost_ids=() if passed else (7, 8, 9),
    )


def test_history_round_trip_and_filters(tmp_path: Path):
    history.append(tmp_path, a_run(True, 1))
    history.append(tmp_path, a_run(False, 2))
    path = history.history_path(tmp_path)
    with open(path, "a") as fh:
        fh.write("{not json\n")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    result = history.read(tmp_path)
    assert [(r.playbook, r.passed, r.failed) for r in result.runs] == [("switchover", True, ()), ("switchover", False, ("acked_writes_lost",))]
    assert result.runs[1].figures == {"write_unavailable_seconds": 2.5, "acked_writes_lost": 3.0, "seconds_to_new_leader": 1.9}
    assert result.runs[0].started_at == "2030-01-02T03:04:05Z"
    assert result.unreadable_lines == 1
    assert history.read(tmp_path, limit=1).runs[0].run_id == "switchover-x-2"
    assert history.read(tmp_path, context="other").runs == ()
    first = json.loads(path.read_text().splitlines()[0])
    assert first["version"] == 1 and first["passed"] is True and first["failed_figures"] == []


def test_markdown_report_has_the_figures_against_thresholds():
    report = DrillReport(playbook="switchover", summary="Planned switchover", context="lab", runs=(a_run(True, 1), a_run(False, 2)))
    text = report_markdown(report, "gardenctl drill run switchover --repeat 2")
    assert text.startswith("# Drill switchover on lab: FAIL\n\nPlanned switchover\n\n1 of 2 run(s) passed.\n\nCommand: `gardenctl drill run switchover --repeat 2`\n")
    assert "| acknowledged writes lost | 3 rows | <= 0 rows | FAIL |" in text
    assert "| write-unavailable window (longest gap) | 2.50 s | <= 5.00 s | PASS |" in text
    assert "| time to a new leader in Patroni | 1.90 s | - | - |" in text
    assert "-    4.10  new leader running in Patroni: node1" in text
