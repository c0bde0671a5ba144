"""etcd v3 JSON gateway payloads -> model: 64-bit ids exact (F09), unstarted members, alarms in the alarm list and in
each member's status ``errors`` (F08), health from the status' leader, quorum maths."""

from __future__ import annotations

import json

from gardenctl.backends.etcd import join_cluster, parse_alarms, parse_members, parse_status
from tests.unit.fixtures.health import load_json, load_text

LAB_IDS = {"etcd0": 9596605696975523138, "etcd1": 16138471138168851824, "etcd2": 7259686895414710211}


def test_f09_exact_sample_ids_are_exact_ints_and_hex():
    raw = json.loads(load_text("etcd/f09_member_list.json"))  # JSON numbers above 2^53
    members = parse_members(raw)
    assert [m.id for m in members] == [12297829382473034410, 1311768467463790320, 6148914691236517205]
    assert all(isinstance(m.id, int) for m in members)
    assert [m.id_hex for m in members] == ["aaaaaaaaaaaaaaaa", "123456789abcdef0", "5555555555555555"]


def test_f09_unstarted_member_named_after_its_peer_host():
    members = parse_members(load_json("etcd/f09_member_list.json"))
    third = members[2]
    assert third.name is None and third.client_urls == ()
    assert third.started is False
    assert third.display_name == "unstarted (10.0.0.23)"


def test_f09_quorum_maths_two_of_three_tolerates_nothing():
    members = parse_members(load_json("etcd/f09_member_list.json"))
    a, b, c = members
    statuses = [
        parse_status({"header": {"member_id": str(a.id)}, "leader": str(a.id), "dbSize": "20480"}, "http://10.0.0.21:2379"),
        parse_status({"header": {"member_id": str(b.id)}, "leader": str(a.id), "dbSize": "20480"}, "http://10.0.0.22:2379"),
    ]
    cluster = join_cluster(members, statuses, {}, (), 2 * 1024**3)
    assert [m.healthy for m in cluster.members] == [True, True, False]
    assert cluster.members[2].error == "never started (no name, no client URL)"
    assert (len(cluster.voters), cluster.quorum, len(cluster.healthy_voters)) == (3, 2, 2)
    assert cluster.has_quorum and cluster.failures_tolerated == 0
    assert cluster.leader is not None and cluster.leader.name == "node-a"


def test_learners_are_listed_but_not_voters():
    raw = {"members": [
        {"ID": "1", "name": "a", "peerURLs": ["http://h1:2380"], "clientURLs": ["http://h1:2379"]},
        {"ID": "2", "name": "b", "peerURLs": ["http://h2:2380"], "clientURLs": ["http://h2:2379"], "isLearner": True},
    ]}
    members = parse_members(raw)
    cluster = join_cluster(members, [], {}, (), None)
    assert [m.is_learner for m in cluster.members] == [False, True]
    assert len(cluster.voters) == 1 and cluster.quorum == 1


def test_lab_member_list_and_status():
    members = parse_members(load_json("etcd/lab_member_list.json"))
    assert {m.name: m.id for m in members} == LAB_IDS
    st = parse_status(load_json("etcd/lab_status.json"), "http://127.0.0.1:16500")
    assert st.member_id == LAB_IDS["etcd0"]
    assert st.leader_id == LAB_IDS["etcd1"]
    assert (st.raft_term, st.raft_index, st.db_size_bytes, st.version) == (25, 136, 49152, "3.4.23")
    cluster = join_cluster(members, [st], {"http://127.0.0.1:16501": "connection refused", "http://127.0.0.1:16502": "connection refused"}, (), None)
    by_name = {m.name: m for m in cluster.members}
    assert by_name["etcd0"].healthy is True and by_name["etcd0"].is_leader is False
    assert by_name["etcd1"].healthy is False and by_name["etcd1"].error == "connection refused"
    assert not cluster.has_quorum


def test_status_without_leader_is_unhealthy():
    members = parse_members(load_json("etcd/lab_member_list.json"))
    st = parse_status(load_json("etcd/lab_status_no_leader.json"), "http://127.0.0.1:16500")
    assert st.leader_id is None
    assert st.errors == ("etcdserver: no leader",)
    cluster = join_cluster(members, [st], {}, (), None)
    etcd0 = next(m for m in cluster.members if m.name == "etcd0")
    assert etcd0.healthy is False and etcd0.error == "no leader"


def test_f08_nospace_alarm_in_alarm_list_and_status_errors():
    alarms = parse_alarms(load_json("etcd/lab_alarm_nospace.json"))
    assert [(a.member_id, a.alarm, a.member_id_hex) for a in alarms] == [(LAB_IDS["etcd0"], "NOSPACE", "852dfe0951b74d42")]
    st = parse_status(load_json("etcd/lab_status_with_nospace_error.json"), "http://127.0.0.1:16501")
    assert st.errors == (f"memberID:{LAB_IDS['etcd0']} alarm:NOSPACE ",)
    assert st.leader_id == LAB_IDS["etcd1"]  # the cluster answers "healthy" while every write is refused


def test_alarm_enum_numbers_and_none():
    raw = {"alarms": [{"memberID": "5", "alarm": 1}, {"memberID": "6", "alarm": 2}, {"memberID": "7", "alarm": "NONE"}, {"memberID": "x"}]}
    assert [(a.member_id, a.alarm) for a in parse_alarms(raw)] == [(5, "NOSPACE"), (6, "CORRUPT")]
    assert parse_alarms({}) == ()
    assert parse_alarms(load_json("etcd/lab_alarm_no_quorum.json")) == ()  # an error body: no alarms parsed...


def test_garbage_payloads_do_not_crash():
    assert parse_members(None) == ()
    assert parse_members({"members": ["x", {"ID": "nope"}]}) == ()
    st = parse_status("garbage", "http://x")
    assert st.member_id is None and st.leader_id is None and st.errors == ()
