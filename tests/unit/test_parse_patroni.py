"""Patroni payloads -> model: ``GET /cluster`` and ``GET /config`` as Patroni 4.1 writes them (lab captures and the
field-case samples). Unknown stays unknown: ``"unknown"`` lag is None, a missing timeline is None, never 0."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gardenctl.backends.patroni import parse_cluster, parse_config, parse_member
from tests.unit.fixtures.health import load_json, pmember

LAG_FIELDS = ("lag", "receive_lag", "replay_lag")


def test_lab_cluster_parses_every_member():
    cluster = parse_cluster(load_json("patroni/lab_cluster_healthy.json"), "http://127.0.0.1:16520", parse_config(load_json("patroni/lab_config.json")))
    assert cluster.scope == "gardenos-lab"
    assert [m.name for m in cluster.members] == ["node0", "node1", "node2"]
    assert cluster.leader is not None and cluster.leader.name == "node0"
    assert cluster.leader.lag_bytes is None  # the leader has no lag: not 0
    assert [m.lag_bytes for m in cluster.replicas] == [0, 0]
    assert [m.receive_lag_bytes for m in cluster.replicas] == [0, 0]
    assert all(m.is_streaming for m in cluster.replicas)
    assert cluster.paused is False
    assert cluster.config is not None
    assert (cluster.config.ttl_seconds, cluster.config.loop_wait_seconds, cluster.config.maximum_lag_on_failover_bytes) == (20, 2, 1048576)
    assert cluster.leader.address == "127.0.0.1:16530"


def test_f01_exact_sample_lag_unknown_and_timeline_missing():
    cluster = parse_cluster(load_json("patroni/f01_unknown_lag.json"))
    a, b, c = cluster.members
    assert a.timeline == 7
    assert (b.state, b.timeline, b.lag_bytes) == ("start failed", None, None)
    assert (c.state, c.timeline) == ("stopped", None)
    assert (c.lag_bytes, c.receive_lag_bytes, c.replay_lag_bytes, c.lsn) == (None, None, None, None)
    assert not b.is_streaming and not c.is_streaming


@pytest.mark.parametrize("field", LAG_FIELDS)
@pytest.mark.parametrize("value", ["unknown", None, "", "n/a", 1.5, True, {"x": 1}])
def test_every_lag_field_unknown_is_none_never_zero(field, value):
    raw = pmember("node-b", lag=0)
    raw[field] = value
    member = parse_member(raw)
    parsed = {"lag": member.lag_bytes, "receive_lag": member.receive_lag_bytes, "replay_lag": member.replay_lag_bytes}
    assert parsed[field] is None
    assert all(v == 0 for k, v in parsed.items() if k != field)


@pytest.mark.parametrize("value,expected", [(0, 0), ("0", 0), (16777216, 16777216), ("16777216", 16777216), (2.0, 2)])
def test_lag_numbers_and_numeric_strings(value, expected):
    assert parse_member(pmember("node-b", lag=value)).lag_bytes == expected


def test_missing_timeline_and_port_as_string():
    raw = pmember("node-b", timeline=None)
    raw["port"] = "5433"
    m = parse_member(raw)
    assert m.timeline is None
    assert m.port == 5433


def test_state_with_spaces_and_unknown_role_are_kept_raw():
    m = parse_member({"name": "node-x", "role": "demoted_leader", "state": "running custom bootstrap script"})
    assert m.role == "demoted_leader" and not m.role_known
    assert m.state == "running custom bootstrap script"
    assert m.lag_bytes is None and m.timeline is None and m.host is None
    assert m.address == "-"


def test_member_without_name_or_state_does_not_crash():
    m = parse_member({})
    assert (m.name, m.role, m.state) == ("?", "unknown", "unknown")


def test_f05_pause_present_only_while_paused():
    assert parse_cluster(load_json("patroni/f05_paused.json")).paused is True
    assert parse_cluster(load_json("patroni/lab_cluster_healthy.json")).paused is False
    assert parse_cluster({"members": [], "pause": "true"}).paused is True
    assert parse_cluster({"members": [], "pause": False}).paused is False


def test_scheduled_switchover_pending_restart_and_string_tags():
    cluster = parse_cluster(load_json("patroni/scheduled_pending.json"))
    sched = cluster.scheduled_switchover
    assert sched is not None
    assert sched.at == datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc)
    assert (sched.from_member, sched.to_member) == ("node-a", "node-b")
    a, b = cluster.members
    assert a.pending_restart is True and b.pending_restart is False
    assert a.scheduled_restart == "2026-01-05T03:00:00+00:00"
    assert b.tags == {"nofailover": "false", "failover_priority": "2", "noloadbalance": True}
    assert b.eligibility.eligible is True and b.eligibility.conflicting_tags is False
    assert (b.lag_bytes, b.receive_lag_bytes, b.replay_lag_bytes) == (0, 0, 2048)


def test_f02_sync_standby_role():
    cluster = parse_cluster(load_json("patroni/f02_sync.json"))
    assert [m.name for m in cluster.sync_standbys] == ["node-b"]
    assert cluster.synchronous_mode is True  # no /config: inferred from the roles


@pytest.mark.parametrize("raw,expected", [({"synchronous_mode": "quorum"}, True), ({"synchronous_mode": "on"}, True), ({"synchronous_mode": False}, False), ({}, False)])
def test_config_synchronous_mode_variants(raw, expected):
    assert parse_config(raw).synchronous_mode is expected


def test_config_not_a_mapping_is_empty():
    cfg = parse_config(["nope"])
    assert cfg.ttl_seconds is None and cfg.raw == {}
