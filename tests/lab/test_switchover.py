"""`gardenctl switchover` on the real lab, through the CLI: convergence verified independently (Patroni, a new
connection through HAProxy's read-write port, the old leader streaming), refusals that send nothing, the journal.
Every test leaves the lab healthy (the `lab` fixture checks before and after)."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from gardenctl import journal
from gardenctl.backends.postgres import Endpoint, can_write, where_am_i
from gardenctl.errors import ExitCode
from gardenctl.wait import wait_until

pytestmark = pytest.mark.lab

MOMENTS = ["request sent", "Patroni answered", "new leader seen in Patroni", "HAProxy routes to the new leader", "writable through HAProxy", "old leader streaming"]


def topology(lab):
    client = lab.patroni()
    try:
        return client.get_cluster()
    finally:
        client.close()


def rw_endpoint(lab) -> Endpoint:
    c = lab.cluster
    host, port = c.haproxy.rw_address.rsplit(":", 1)
    return Endpoint(host, int(port), password=c.postgres.password.resolve("postgres"))


def assert_converged_on(lab, name: str, old_leader: str) -> None:
    """Independent of gardenctl's own verification: look again, as a client would."""
    cluster = topology(lab)
    assert cluster.leader is not None and cluster.leader.name == name
    landing = where_am_i(rw_endpoint(lab))
    assert landing.server_port == cluster.member(name).port and not landing.in_recovery
    assert can_write(rw_endpoint(lab))
    old = cluster.member(old_leader)
    assert old is not None and old.is_streaming and old.timeline == cluster.leader.timeline


def print_moments(doc) -> None:
    print(f"\n{doc['action']} {doc['leader_before']} -> {doc['leader_after']}: " + ", ".join(f"{m['label']} {m['seconds']:.2f}s" for m in doc["moments"]))


def test_switchover_to_a_named_candidate_converges(lab):
    before = topology(lab)
    leader = before.leader.name
    candidate = sorted(m.name for m in before.replicas)[0]
    result = lab.cli("switchover", "--candidate", candidate, "--yes", "--reason", "lab test: named", "-o", "json")
    assert result.exit_code == 0, result
    doc = json.loads(result.stdout)
    print_moments(doc)
    assert doc["kind"] == "SwitchoverResult" and doc["converged"] is True
    assert (doc["leader_before"], doc["leader_after"]) == (leader, candidate)
    assert doc["timeline_after"] == doc["timeline_before"] + 1
    assert [m["label"] for m in doc["moments"]] == MOMENTS
    assert doc["patroni_status"] == 200 and doc["warnings"] == []
    assert_converged_on(lab, candidate, leader)
    entry = journal.read(lab.state_dir)[-1]
    assert (entry.command, entry.outcome, entry.reason, entry.changed) == ("switchover", "succeeded", "lab test: named", True)
    assert entry.details["leader_after"] == candidate and len(entry.moments) == 6


def test_switchover_to_the_default_candidate_converges_and_shows_the_table(lab):
    before = topology(lab)
    leader = before.leader.name
    result = lab.cli("switchover", "--yes")
    assert result.exit_code == 0, result
    out = result.stdout
    assert "Preflight passed." in out
    assert "(candidate chosen by default: the best eligible replica (highest failover_priority, then lowest lag))" in out.replace("\n", " ")
    assert "Switchover converged:" in out and "Moments (seconds from the request)" in out and "Topology now:" in out
    after = topology(lab)
    assert after.leader.name != leader and after.leader.name in {m.name for m in before.replicas}
    assert_converged_on(lab, after.leader.name, leader)


def test_paused_cluster_refuses_unnamed_and_scheduled_switchovers(lab):
    client = lab.patroni()
    try:
        client.set_paused(True)
        wait_until(lambda: client.get_cluster(with_config=False).paused, timeout=20, interval=0.3, what="pause visible")
        leader = client.get_cluster().leader.name

        unnamed = lab.cli("switchover", "--yes")
        assert unnamed.exit_code == ExitCode.REFUSED, unnamed
        assert "Patroni accepts only a switchover to a named candidate" in unnamed.stderr

        candidate = sorted(m.name for m in client.get_cluster().replicas)[0]
        at = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
        scheduled = lab.cli("switchover", "--at", at, "--candidate", candidate, "--yes")
        assert scheduled.exit_code == ExitCode.REFUSED, scheduled
        assert "refuses a scheduled switchover while paused" in scheduled.stderr

        # a named candidate is what Patroni accepts while paused: the preflight lets it through
        named = lab.cli("switchover", "--candidate", candidate, "--dry-run")
        assert named.exit_code == 0, named
        assert "on (paused): allowed because a candidate is named" in named.stdout

        cluster = client.get_cluster()
        assert cluster.leader.name == leader and cluster.scheduled_switchover is None  # nothing was sent
    finally:
        client.set_paused(False)
        client.close()


def test_unknown_candidate_is_refused_and_journaled(lab):
    leader = topology(lab).leader.name
    result = lab.cli("switchover", "--candidate", "node9", "--yes", "--reason", "typo")
    assert result.exit_code == ExitCode.REFUSED, result
    assert "candidate: 'node9' is not a member of the cluster (members: node0, node1, node2)" in result.stderr
    assert topology(lab).leader.name == leader
    entry = journal.read(lab.state_dir)[-1]
    assert (entry.outcome, entry.changed, entry.details["failed_checks"]) == ("refused", False, ["candidate"])


def test_scheduled_switchover_is_verified_then_blocks_another(lab):
    client = lab.patroni()
    at = (datetime.now(timezone.utc) + timedelta(hours=2)).replace(microsecond=0)
    try:
        result = lab.cli("switchover", "--at", at.isoformat(), "--yes")
        assert result.exit_code == 0, result
        assert f"scheduled for {at:%Y-%m-%d %H:%M:%S} UTC" in result.stdout
        sched = client.get_cluster().scheduled_switchover
        assert sched is not None and sched.at == at
        again = lab.cli("switchover", "--dry-run", "--force")
        assert again.exit_code == ExitCode.REFUSED, again
        assert "scheduled switchover: one is already scheduled for" in again.stderr
        assert journal.read(lab.state_dir)[-1].outcome == "scheduled"
    finally:
        client.cancel_scheduled_switchover()
        client.close()


def test_unreachable_member_is_shown_and_refused_as_candidate(lab):
    """The member's Patroni is suspended: it still looks fine in the DCS (its key has not expired), but its REST API
    does not answer - Patroni would refuse it ("not reachable"), so gardenctl refuses it before sending anything."""
    before = topology(lab)
    leader = before.leader.name
    frozen, other = sorted(m.name for m in before.replicas)
    lab.lab.signal(frozen, signal.SIGSTOP)
    try:
        result = lab.cli("switchover", "--candidate", frozen, "--yes", "--force")
        assert result.exit_code == ExitCode.REFUSED, result
        assert f"candidate reachable: its REST API does not answer" in result.stderr
        row = next(line for line in result.stdout.splitlines() if line.startswith(frozen))
        assert "down" in row
        dry = lab.cli("switchover", "--dry-run", "-o", "json")
        assert dry.exit_code == 0, dry
        assert json.loads(dry.stdout)["candidate"] == other  # the default skips the unreachable member
        assert topology(lab).leader.name == leader
    finally:
        lab.lab.signal(frozen, signal.SIGCONT)


def _set_tags(lab, node: str, tags: dict) -> None:
    path = Path(lab.lab.require_state().processes[node].cwd) / "patroni.yml"
    st = path.stat()
    data = yaml.safe_load(path.read_text())
    data["tags"] = tags
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, 0o600)
    lab.lab.signal(node, signal.SIGHUP)  # Patroni re-reads its file, tags included


def test_replica_tagged_nofailover_is_refused(lab):
    before = topology(lab)
    node = sorted(m.name for m in before.replicas)[0]
    plain = {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False}
    client = lab.patroni()
    try:
        _set_tags(lab, node, {**plain, "nofailover": True})
        wait_until(lambda: client.get_cluster(with_config=False).member(node).tags.get("nofailover") is True, timeout=30, interval=0.5, what="nofailover tag visible")
        result = lab.cli("switchover", "--candidate", node, "--yes", "--force")
        assert result.exit_code == ExitCode.REFUSED, result
        assert "candidate tags: not eligible: tagged nofailover" in result.stderr
        assert topology(lab).leader.name == before.leader.name
    finally:
        _set_tags(lab, node, plain)
        wait_until(lambda: not client.get_cluster(with_config=False).member(node).tags.get("nofailover"), timeout=30, interval=0.5, what="nofailover tag gone")
        client.close()


def test_paused_cluster_accepts_a_switchover_to_a_named_candidate(lab):
    """F05, the other half: while paused Patroni still performs a switchover to a named candidate."""
    client = lab.patroni()
    try:
        client.set_paused(True)
        wait_until(lambda: client.get_cluster(with_config=False).paused, timeout=20, interval=0.3, what="pause visible")
        before = client.get_cluster()
        leader = before.leader.name
        candidate = sorted(m.name for m in before.replicas)[-1]
        result = lab.cli("switchover", "--candidate", candidate, "--yes", "-o", "json")
        assert result.exit_code == 0, result
        doc = json.loads(result.stdout)
        assert doc["plan"]["paused"] is True and doc["leader_after"] == candidate
        assert_converged_on(lab, candidate, leader)
        assert client.get_cluster(with_config=False).paused  # still in maintenance mode afterwards
    finally:
        client.set_paused(False)
        client.close()
