"""`gardenctl failover` on the real lab: the leader's Patroni AND PostgreSQL are SIGKILLed, then a named replica is
promoted and verified; the old node is restarted and rejoins. The `lab` fixture leaves the lab healthy."""

from __future__ import annotations

import json
import signal

import pytest

from gardenctl import journal
from gardenctl.errors import ExitCode
from tests.lab.test_switchover import print_moments, rw_endpoint, topology

pytestmark = pytest.mark.lab


def test_failover_after_the_leader_is_killed_converges(lab):
    from gardenctl.backends.postgres import can_write, where_am_i

    before = topology(lab)
    leader = before.leader.name
    candidate = sorted(m.name for m in before.replicas)[-1]
    hit = lab.lab.signal(leader, signal.SIGKILL, postgres_too=True)
    assert len(hit) == 2  # Patroni and the postmaster
    try:
        result = lab.cli("failover", "--candidate", candidate, "--yes", "--reason", "lab test: leader killed", "-o", "json")
        assert result.exit_code == 0, result
        doc = json.loads(result.stdout)
        print_moments(doc)
        assert doc["converged"] is True and doc["leader_after"] == candidate
        assert [m["label"] for m in doc["moments"]] == ["request sent", "Patroni answered", "new leader seen in Patroni", "HAProxy routes to the new leader", "writable through HAProxy"]
        # the dead old leader is not waited for, but never hidden
        assert any(w.startswith(f"old leader {leader} is not running") for w in doc["warnings"]), doc["warnings"]
        plan_checks = {c["name"]: c for c in doc["plan"]["preflight"]["checks"]}
        assert plan_checks["candidate running"]["ok"] and "not healthy" in plan_checks["leader"]["detail"]
        after = topology(lab)
        assert after.leader.name == candidate and after.leader.timeline == doc["timeline_before"] + 1
        landing = where_am_i(rw_endpoint(lab))
        assert landing.server_port == after.member(candidate).port and not landing.in_recovery
        assert can_write(rw_endpoint(lab))
        entry = journal.read(lab.state_dir)[-1]
        assert (entry.command, entry.outcome, entry.changed) == ("failover", "succeeded", True)
    finally:
        lab.lab.start(leader)
    lab.ensure_healthy(timeout=120)
    rejoined = topology(lab).member(leader)
    assert rejoined is not None and rejoined.is_streaming


def test_failover_dry_run_on_a_healthy_cluster_names_the_gentler_tool(lab):
    before = topology(lab)
    candidate = sorted(m.name for m in before.replicas)[0]
    result = lab.cli("failover", "--candidate", candidate, "--dry-run")
    assert result.exit_code == 0, result
    assert "a switchover is the gentler tool" in result.stdout.replace("\n", " ") or "gentler tool" in result.stdout
    assert topology(lab).leader.name == before.leader.name


def test_failover_to_the_leader_is_refused(lab):
    leader = topology(lab).leader.name
    result = lab.cli("failover", "--candidate", leader, "--yes")
    assert result.exit_code == ExitCode.REFUSED, result
    assert f"candidate: {leader} is already the leader; nothing to fail over" in result.stderr
