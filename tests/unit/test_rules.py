"""Every health rule with crafted payloads, and every field case that concerns health (F01, F04, F05, F06, F07, F08,
F09) with its exact sample plus variants. Payloads go through the real parsers (tests/unit/fixtures/health.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gardenctl.backends.haproxy import parse_stat_csv
from gardenctl.config import Thresholds
from gardenctl.errors import ConfigError
from gardenctl.model import Probe, Severity
from gardenctl.ops import rules as rules_mod
from gardenctl.ops.rules import RULES, evaluate, evaluate_rules, rule, select_rules
from tests.unit.fixtures.health import (
    ETCD_IDS,
    NOW,
    Scenario,
    load_json,
    load_text,
    pcluster,
    pmember,
    report_of,
    routed_csv,
    stat_csv,
    stat_row,
)

OK, WARNING, CRITICAL, UNKNOWN = Severity.OK, Severity.WARNING, Severity.CRITICAL, Severity.UNKNOWN
NODES = ("node-a", "node-b", "node-c")

STABLE_NAMES = (
    "patroni_reachable",
    "etcd_reachable",
    "haproxy_reachable",
    "hetzner_reachable",
    "k3s_reachable",
    "patroni_scope",
    "patroni_leader",
    "patroni_replication",
    "patroni_lag",
    "patroni_timeline",
    "patroni_failover_candidates",
    "patroni_tags",
    "patroni_members",
    "patroni_maintenance",
    "patroni_pending_restart",
    "patroni_scheduled_switchover",
    "haproxy_rw",
    "haproxy_ro",
    "haproxy_servers",
    "etcd_members",
    "etcd_quorum",
    "etcd_alarms",
    "etcd_db_size",
)


def run(s: Scenario, thresholds=None, **kw):
    return evaluate(report_of(s), thresholds, NOW, **kw)


def of(findings, name):
    return [(f.severity, f.message) for f in findings if f.rule == name]


def problems(findings):
    return sorted((f.rule, f.severity.value, f.message) for f in findings if f.severity is not OK)


def worst(findings):
    return Severity.worst(f.severity for f in findings)


# ------------------------------------------------------------------------------------------------ engine


def test_rule_names_are_stable():
    assert tuple(n for n in RULES if n in STABLE_NAMES) == STABLE_NAMES


def test_healthy_cluster_is_all_ok_with_the_key_facts():
    findings = run(Scenario())
    assert worst(findings) is OK
    assert problems(findings) == []
    assert of(findings, "patroni_leader") == [(OK, "node-a leads (leader, timeline 4)")]
    assert of(findings, "patroni_replication") == [(OK, "2 of 2 replicas streaming")]
    assert of(findings, "haproxy_rw") == [(OK, "read-write (pg_rw) routes to node-a, the leader")]
    assert of(findings, "etcd_quorum") == [(OK, "etcd quorum (3 of 3 voters healthy, quorum 2); tolerates 1 more failure")]
    assert of(findings, "patroni_failover_candidates") == [(OK, "2 eligible failover candidates: node-b, node-c")]
    assert {f.layer for f in findings} == {"patroni", "haproxy", "etcd"}


def test_evaluate_rules_reports_every_applicable_rule():
    results = {r.name: r for r in evaluate_rules(report_of(Scenario()), None, NOW)}
    # a layer the context does not configure has no rule results at all (not an "OK" for what was never asked)
    assert "hetzner_reachable" not in results and "k3s_reachable" not in results
    assert "patroni_reachable" in results and results["patroni_reachable"].findings == ()
    assert all(r.evaluated for r in results.values())
    assert all(r.severity is OK for r in results.values())


@pytest.mark.parametrize(
    "only,skip,expected",
    [
        (["patroni_leader"], [], ("patroni_leader",)),
        (["etcd_*"], [], ("etcd_reachable", "etcd_members", "etcd_quorum", "etcd_alarms", "etcd_db_size")),
        (["etcd_*"], ["etcd_db_size,etcd_reachable"], ("etcd_members", "etcd_quorum", "etcd_alarms")),
        # Optional layers (k3s_*, hetzner_*) register their rules when imported; skip them so the case holds either way.
        ([], ["*_reachable", "patroni_*", "haproxy_*", "k3s_*", "hetzner_*"], ("etcd_members", "etcd_quorum", "etcd_alarms", "etcd_db_size")),
    ],
)
def test_select_rules(only, skip, expected):
    assert select_rules(only, skip) == expected


def test_unknown_rule_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        select_rules(["leader", "patroni_lag"], ["nope_*"])
    assert err.value.message == "unknown rules: leader, nope_*"
    assert err.value.hint is not None and "patroni_leader, patroni_replication" in err.value.hint


def test_only_limits_findings():
    findings = run(Scenario(), only=["haproxy_rw"])
    assert [f.rule for f in findings] == ["haproxy_rw"]


# ------------------------------------------------------------------------------------------------ reachability


def test_unreachable_patroni_is_unknown_and_its_rules_are_not_evaluated():
    s = Scenario(patroni_down="patroni: no member answered GET /cluster: connection refused")
    findings = run(s)
    assert of(findings, "patroni_reachable") == [(UNKNOWN, "Patroni did not answer: patroni: no member answered GET /cluster: connection refused")]
    results = {r.name: r for r in evaluate_rules(report_of(s), None, NOW)}
    assert results["patroni_leader"].evaluated is False
    assert results["patroni_leader"].severity is UNKNOWN
    assert results["patroni_leader"].reason == "patroni did not answer"
    # the rest still judges: routing without the cross-check, etcd fully
    assert of(findings, "haproxy_rw") == [(OK, "read-write (pg_rw) routes to node-a (Patroni did not answer: not cross-checked)")]
    assert of(findings, "etcd_quorum")[0][0] is OK
    assert worst(findings) is UNKNOWN


def test_unreachable_component_whose_consequence_is_known_is_critical():
    s = Scenario(patroni_down="patroni: connection refused", haproxy=routed_csv("node-a", NODES, rw_up=()))
    findings = run(s)
    assert of(findings, "haproxy_rw")[0][0] is CRITICAL
    assert worst(findings) is CRITICAL


@pytest.mark.parametrize("layer,rule_name,label", [("etcd_down", "etcd_reachable", "etcd"), ("haproxy_down", "haproxy_reachable", "HAProxy stats")])
def test_other_unreachable_layers(layer, rule_name, label):
    s = Scenario(**{layer: "boom"})
    findings = run(s)
    assert of(findings, rule_name) == [(UNKNOWN, f"{label} did not answer: boom")]
    assert of(findings, "patroni_leader")[0][0] is OK


# ------------------------------------------------------------------------------------------------ leader


def test_no_leader_is_critical():
    s = Scenario(cluster=pcluster(pmember("node-b", index=1), pmember("node-c", index=2)))
    assert of(run(s), "patroni_leader") == [
        (CRITICAL, "no leader (members: node-b replica/streaming, node-c replica/streaming)")
    ]


def test_no_leader_while_paused_says_why():
    s = Scenario(cluster=pcluster(pmember("node-b", index=1), pause=True))
    assert "maintenance mode is on" in of(run(s), "patroni_leader")[0][1]


def test_no_members_is_critical():
    assert of(run(Scenario(cluster=pcluster())), "patroni_leader") == [(CRITICAL, "no leader: Patroni lists no members")]


def test_two_leaders_are_critical():
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), pmember("node-b", "leader", index=1), pmember("node-c", index=2)))
    assert of(run(s), "patroni_leader") == [(CRITICAL, "2 leaders: node-a, node-b (two primaries)")]


@pytest.mark.parametrize("state", ["starting", "crashed", "stopped", "restarting", "running custom bootstrap script"])
def test_leader_not_running_is_critical(state):
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", state, index=0), pmember("node-b", index=1)))
    assert of(run(s), "patroni_leader") == [
        (CRITICAL, f"leader node-a is {state!r}, not running: writes fail until it recovers or fails over")
    ]


def test_standby_leader_streaming_is_fine():
    s = Scenario(cluster=pcluster(pmember("node-a", "standby_leader", "streaming", index=0), pmember("node-b", index=1)))
    assert of(run(s), "patroni_leader")[0][0] is OK


# ------------------------------------------------------------------------------------------------ F01 replication / lag


def test_f01_exact_sample():
    s = Scenario(cluster=load_json("patroni/f01_unknown_lag.json"))
    findings = run(s)
    assert of(findings, "patroni_replication") == [
        (WARNING, "node-b failed to start (state 'start failed'): not replicating"),
        (WARNING, "node-c is 'stopped', not streaming"),
        (CRITICAL, "no replica is streaming (2 replicas): nothing to fail over to"),
    ]
    assert of(findings, "patroni_failover_candidates") == [
        (
            CRITICAL,
            "no eligible failover candidate (node-b: state is 'start failed', not streaming, lag is unknown, timeline is unknown; "
            "node-c: state is 'stopped', not streaming, lag is unknown, timeline is unknown)",
        )
    ]
    assert of(findings, "patroni_lag") == []  # not streaming: unknown lag is expected, never 0
    assert of(findings, "patroni_timeline") == []
    assert worst(findings) is CRITICAL


def test_one_replica_not_streaming_is_a_warning_only():
    s = Scenario(cluster=load_json("patroni/lab_cluster_replica_stopped.json"))
    s.haproxy = routed_csv("node0", ("node0", "node1", "node2"), overrides={("pg_rw", "node2"): ("DOWN", "L4CON", ""), ("pg_ro", "node2"): ("DOWN", "L4CON", "")})
    findings = run(s)
    assert of(findings, "patroni_replication") == [(WARNING, "node2 is 'stopped', not streaming")]
    assert of(findings, "patroni_failover_candidates") == [(OK, "1 eligible failover candidate: node1")]
    assert worst(findings) is WARNING
    assert ("haproxy_servers", "WARNING", "pg_rw/node2 is DOWN: its Patroni REST API is unreachable (L4CON): the node or Patroni may be down") in problems(findings)


@pytest.mark.parametrize("field", ["lag", "receive_lag", "replay_lag"])
def test_unknown_in_any_lag_field_is_never_zero(field):
    b = pmember("node-b", index=1, lag=0)
    b[field] = "unknown"
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), b, pmember("node-c", index=2)))
    findings = run(s, Thresholds(lag_warning_bytes=10, lag_critical_bytes=20))
    lag = of(findings, "patroni_lag")
    if field == "lag":
        assert lag == [(WARNING, "node-b: lag unknown (Patroni reports no WAL position): not an eligible failover candidate")]
        assert of(findings, "patroni_failover_candidates") == [(OK, "1 eligible failover candidate: node-c")]
    else:
        assert lag == [(OK, "replication lag within thresholds (largest 0 B)")]
        assert of(findings, "patroni_failover_candidates") == [(OK, "2 eligible failover candidates: node-b, node-c")]


def test_all_lag_unknown_on_every_streaming_replica():
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), pmember("node-b", index=1, lag="unknown"), pmember("node-c", index=2, lag="unknown")))
    findings = run(s)
    assert [sev for sev, _ in of(findings, "patroni_lag")] == [WARNING, WARNING]
    assert of(findings, "patroni_failover_candidates")[0][0] is CRITICAL


@pytest.mark.parametrize(
    "lag,replay,expected",
    [
        (0, 0, (OK, "replication lag within thresholds (largest 0 B)")),
        (1048576, 0, (OK, "replication lag within thresholds (largest 1.0 MiB)")),
        (1048577, 0, (WARNING, "node-b: lag 1.0 MiB above the warning threshold 1.0 MiB")),
        (0, 20 * 1048576, (CRITICAL, "node-b: replay lag 20.0 MiB above the critical threshold 16.0 MiB")),
        (17 * 1048576, 0, (CRITICAL, "node-b: lag 17.0 MiB above the critical threshold 16.0 MiB")),
    ],
)
def test_lag_thresholds_default(lag, replay, expected):
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), pmember("node-b", index=1, lag=lag, replay_lag=replay)))
    assert of(run(s), "patroni_lag") == [expected]


def test_lag_thresholds_from_the_context():
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), pmember("node-b", index=1, lag=5000)))
    assert of(run(s, Thresholds(lag_warning_bytes=1000, lag_critical_bytes=4000)), "patroni_lag") == [
        (CRITICAL, "node-b: lag 4.9 KiB above the critical threshold 3.9 KiB")
    ]


def test_unknown_role_is_flagged_not_crashing():
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), pmember("node-b", "witness", "running", index=1)))
    assert of(run(s), "patroni_replication") == [
        (WARNING, "node-b: role 'witness' is not one gardenctl knows (state 'running')"),
        (CRITICAL, "no replica is streaming (1 replica): nothing to fail over to"),
    ]


# ------------------------------------------------------------------------------------------------ timeline


def test_replica_on_older_timeline_warns():
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0, timeline=5), pmember("node-b", index=1, timeline=4), pmember("node-c", index=2, timeline=5)))
    findings = run(s)
    assert of(findings, "patroni_timeline") == [
        (WARNING, "node-b is on timeline 4, the leader node-a on 5: it has not followed the last promotion")
    ]
    assert of(findings, "patroni_failover_candidates") == [(OK, "1 eligible failover candidate: node-c")]


def test_replica_on_newer_timeline_warns():
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0, timeline=5), pmember("node-b", index=1, timeline=6)))
    assert of(run(s), "patroni_timeline") == [(WARNING, "node-b is on timeline 6, newer than the leader's 5: histories diverged?")]


def test_unknown_timelines_are_not_compared():
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0, timeline=None), pmember("node-b", index=1, timeline=3)))
    assert of(run(s), "patroni_timeline") == []


# ------------------------------------------------------------------------------------------------ F04 tags / candidates


def test_f04_exact_sample():
    s = Scenario(cluster=load_json("patroni/f04_tags.json"))
    findings = run(s)
    assert of(findings, "patroni_failover_candidates") == [(OK, "1 eligible failover candidate: node-d")]
    assert of(findings, "patroni_tags") == [
        (WARNING, "node-d: conflicting tags nofailover=False and failover_priority=0 (nofailover wins: eligible)")
    ]


def test_f04_zero_eligible_is_critical_even_if_all_run():
    raw = load_json("patroni/f04_tags.json")
    raw["members"] = raw["members"][:3]
    findings = run(Scenario(cluster=raw))
    assert of(findings, "patroni_replication") == [(OK, "2 of 2 replicas streaming")]
    assert of(findings, "patroni_failover_candidates") == [
        (CRITICAL, "no eligible failover candidate (node-b: failover_priority is 0; node-c: tagged nofailover)")
    ]


@pytest.mark.parametrize(
    "tags,eligible,tag_finding",
    [
        ({"nofailover": "true"}, False, None),
        ({"nofailover": "True"}, False, None),
        ({"nofailover": "false"}, True, None),
        ({"failover_priority": "0"}, False, None),
        ({"failover_priority": "3"}, True, None),
        ({"nofailover": "false", "failover_priority": "0"}, True, "node-b: conflicting tags nofailover='false' and failover_priority='0' (nofailover wins: eligible)"),
        ({"nofailover": "yes", "failover_priority": 2}, False, "node-b: conflicting tags nofailover='yes' and failover_priority=2 (nofailover wins: not eligible)"),
        ({"nofailover": "maybe"}, False, "node-b: unreadable nofailover tag 'maybe': treated as not eligible for failover"),
        ({"failover_priority": "high"}, False, "node-b: unreadable failover_priority tag 'high': treated as not eligible for failover"),
        ({"nofailover": None}, True, None),
    ],
)
def test_f04_tag_semantics_with_strings(tags, eligible, tag_finding):
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), pmember("node-b", index=1, tags=tags)))
    findings = run(s)
    assert (of(findings, "patroni_failover_candidates")[0][0] is OK) is eligible
    assert of(findings, "patroni_tags") == ([(WARNING, tag_finding)] if tag_finding else [])


def test_f02_sync_mode_only_the_sync_standby_is_a_candidate():
    s = Scenario(cluster=load_json("patroni/f02_sync.json"), config={**load_json("patroni/lab_config.json"), "synchronous_mode": True})
    assert of(run(s), "patroni_failover_candidates") == [(OK, "1 eligible failover candidate: node-b")]
    raw = load_json("patroni/f02_sync.json")
    raw["members"][1]["state"] = "stopped"
    s = Scenario(cluster=raw, config={"synchronous_mode": True})
    assert of(run(s), "patroni_failover_candidates")[0][0] is CRITICAL


def test_lag_over_maximum_lag_on_failover_is_not_a_candidate():
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), pmember("node-b", index=1, lag=2_000_000)))
    assert of(run(s, Thresholds(lag_warning_bytes=10**7, lag_critical_bytes=10**8)), "patroni_failover_candidates") == [
        (CRITICAL, "no eligible failover candidate (node-b: lag 2000000 B exceeds 1048576 B)")
    ]


def test_single_member_cluster_has_no_candidate():
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0)))
    assert of(run(s), "patroni_failover_candidates") == [(CRITICAL, "no eligible failover candidate: the cluster has no replica")]


# ------------------------------------------------------------------------------------------------ F05 maintenance


def test_f05_paused_without_history_is_a_warning_with_unknown_age():
    findings = run(Scenario(cluster=load_json("patroni/f05_paused.json")))
    assert of(findings, "patroni_maintenance") == [
        (WARNING, "maintenance mode is on: automatic failover is off (since when is unknown: Patroni does not record it)")
    ]
    assert worst(findings) is WARNING  # never OK


def test_f05_paused_age_turns_critical_after_the_threshold():
    s = Scenario(cluster=load_json("patroni/f05_paused.json"))
    ten = run(s, paused_since=NOW - timedelta(minutes=10, seconds=5))
    assert of(ten, "patroni_maintenance") == [
        (WARNING, "maintenance mode on for at least 10 min (first seen 2026-01-05 11:49:55Z; CRITICAL after 60 min): automatic failover is off")
    ]
    hour = run(s, paused_since=NOW - timedelta(minutes=61))
    assert of(hour, "patroni_maintenance") == [
        (CRITICAL, "maintenance mode on for at least 61 min (first seen 2026-01-05 10:59:00Z): automatic failover is off")
    ]
    custom = run(s, Thresholds(maintenance_critical_minutes=5), paused_since=NOW - timedelta(minutes=6))
    assert of(custom, "patroni_maintenance")[0][0] is CRITICAL


def test_not_paused_means_no_maintenance_finding():
    assert of(run(Scenario(), paused_since=NOW - timedelta(hours=5)), "patroni_maintenance") == []


# ------------------------------------------------------------------------------------------------ restart / scheduled switchover


def test_pending_restart_and_overdue_scheduled_switchover_warn():
    s = Scenario(cluster=load_json("patroni/scheduled_pending.json"))
    findings = run(s)
    assert of(findings, "patroni_pending_restart") == [(WARNING, "node-a needs a restart to apply changed PostgreSQL parameters (pending restart)")]
    assert of(findings, "patroni_scheduled_switchover") == [
        (WARNING, "scheduled switchover (node-a -> node-b) at 2026-01-05 02:00:00Z has not happened (36000s overdue)")
    ]


def test_scheduled_switchover_in_the_future_or_within_grace_is_ok():
    future = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), pmember("node-b", index=1), scheduled={"at": "2026-01-05T13:00:00Z", "from": "node-a"}))
    assert of(run(future), "patroni_scheduled_switchover") == [(OK, "switchover scheduled at 2026-01-05 13:00:00Z (node-a -> any eligible replica)")]
    grace = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), scheduled={"at": "2026-01-05T11:59:57+00:00", "from": "node-a", "to": "node-b"}))
    assert of(run(grace), "patroni_scheduled_switchover")[0][0] is OK  # within 2 x loop_wait
    unreadable = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), scheduled={"at": "tomorrow", "from": "node-a"}))
    assert of(run(unreadable), "patroni_scheduled_switchover") == [(WARNING, "a switchover is scheduled (node-a -> any eligible replica) at a time gardenctl cannot read")]


# ------------------------------------------------------------------------------------------------ members vs configured endpoints


def test_configured_endpoint_without_member_warns():
    s = Scenario()
    eps = ("http://10.0.0.11:8008", "http://10.0.0.12:8008/", "http://10.0.0.13:8008", "http://10.0.0.14:8008")
    assert of(run(s, patroni_endpoints=eps), "patroni_members") == [
        (WARNING, "no Patroni member answers for the configured endpoint http://10.0.0.14:8008: node stopped or removed from the cluster")
    ]
    assert of(run(s, patroni_endpoints=eps[:3]), "patroni_members") == []
    # the replica count alone would read "2 of 2" while a fourth configured node is gone
    assert of(run(s, patroni_endpoints=eps), "patroni_replication") == [
        (OK, "2 of 2 replicas streaming (1 configured node is not in the cluster: see patroni_members)")
    ]


# A member killed with SIGKILL keeps its key, and its last state, in the DCS until ttl: /cluster lists it as
# "streaming" for up to 20 s. Its own REST API (a configured endpoint that did not answer) is the first sign.
DEAD_B = {"http://10.0.0.12:8008": "connection refused"}


def test_a_replica_whose_rest_api_does_not_answer_is_not_streaming_nor_a_candidate():
    findings = run(Scenario(patroni_unanswered=DEAD_B), patroni_endpoints=("http://10.0.0.11:8008", "http://10.0.0.12:8008", "http://10.0.0.13:8008"))
    assert of(findings, "patroni_replication") == [
        (
            WARNING,
            "node-b's REST API does not answer (connection refused): node or Patroni down? "
            "(the DCS keeps its last state 'streaming' until its member key expires after ttl)",
        )
    ]
    assert of(findings, "patroni_failover_candidates") == [(OK, "1 eligible failover candidate: node-c")]
    assert of(findings, "patroni_lag") == [(OK, "replication lag within thresholds (largest 0 B)")]  # node-c only
    assert of(findings, "patroni_members") == []  # the member rules name it; not reported twice
    assert of(findings, "patroni_leader")[0][0] is OK


def test_every_replica_rest_api_silent_is_critical_and_leaves_no_candidate():
    dead = {"http://10.0.0.12:8008": "connection refused", "http://10.0.0.13:8008": "no answer within 2s"}
    findings = run(Scenario(patroni_unanswered=dead))
    assert (CRITICAL, "no replica is streaming (2 replicas): nothing to fail over to") in of(findings, "patroni_replication")
    [(sev, msg)] = of(findings, "patroni_failover_candidates")
    assert sev is CRITICAL
    assert "node-b: its REST API does not answer (connection refused)" in msg and "node-c: its REST API does not answer (no answer within 2s)" in msg


def test_the_leaders_rest_api_silent_is_critical():
    findings = run(Scenario(patroni_unanswered={"http://10.0.0.11:8008/": "timed out"}))
    [(sev, msg)] = of(findings, "patroni_leader")
    assert sev is CRITICAL
    assert msg.startswith("leader node-a's REST API does not answer (timed out): node or Patroni down? The DCS still lists node-a as 'running'")


def test_an_unanswered_endpoint_that_matches_no_member_is_named_by_patroni_members():
    eps = ("http://db1.example:8008", "http://db2.example:8008", "http://db3.example:8008")
    s = Scenario(patroni_unanswered={"http://db2.example:8008": "connection refused"})
    assert of(run(s, patroni_endpoints=eps), "patroni_members") == [
        (WARNING, "the configured Patroni endpoint http://db2.example:8008 does not answer (connection refused): node or Patroni down?")
    ]
    assert of(run(s, patroni_endpoints=eps), "patroni_replication") == [(OK, "2 of 2 replicas streaming")]  # cannot tell which
    gone = Scenario(patroni_unanswered={"http://10.0.0.14:8008": "connection refused"})
    four = ("http://10.0.0.11:8008", "http://10.0.0.12:8008", "http://10.0.0.13:8008", "http://10.0.0.14:8008")
    assert of(run(gone, patroni_endpoints=four), "patroni_members") == [
        (
            WARNING,
            "no Patroni member answers for the configured endpoint http://10.0.0.14:8008: node stopped or removed from the "
            "cluster (the endpoint: connection refused)",
        )
    ]


# What a member says about itself (GET /patroni) against what the DCS keeps. With etcd's quorum lost, /cluster is
# Patroni's cached view: the leader key stays while the leader has demoted itself (found on the lab: check said
# "node2 leads" while node2 answered "role: replica" and HAProxy had no primary).
EPS = ("http://10.0.0.11:8008", "http://10.0.0.12:8008", "http://10.0.0.13:8008")


def says(name, role="replica", state="running", replication="streaming", timeline=4):
    body = {"state": state, "role": role, "timeline": timeline, "patroni": {"version": "4.1.5", "name": name}}
    if replication is not None:
        body["replication_state"] = replication
    return body


def healthy_self(**override):
    answers = {EPS[0]: says("node-a", "primary", replication=None), EPS[1]: says("node-b"), EPS[2]: says("node-c")}
    answers.update(override)
    return answers


def test_members_that_agree_with_the_dcs_change_nothing():
    findings = run(Scenario(patroni_self=healthy_self()), patroni_endpoints=EPS)
    assert problems(findings) == []
    assert of(findings, "patroni_replication") == [(OK, "2 of 2 replicas streaming")]


def test_a_leader_that_says_it_is_a_replica_is_critical_and_haproxy_rw_too():
    s = Scenario(patroni_self=healthy_self(**{EPS[0]: says("node-a", "replica", replication=None)}))
    for node in s.etcd[1:]:
        node.started = False  # etcd has no quorum: the leader could not renew its key and demoted itself
    findings = run(s, patroni_endpoints=EPS)
    [(sev, msg)] = of(findings, "patroni_leader")
    assert (sev, msg) == (CRITICAL, "node-a holds the leader key but it says it is a replica (demoted, read-only): no primary takes writes")
    assert of(findings, "haproxy_rw") == [
        (CRITICAL, "read-write (pg_rw) routes to node-a, the leader in the DCS, but it says it is a replica (demoted, read-only): writes fail")
    ]


def test_a_leader_that_still_says_replica_while_etcd_has_quorum_is_being_promoted():
    """The moment of a failover: the new leader has the key and is not primary yet, its replica is still on the old
    timeline. Seen on the lab for one poll as "demoted ... no eligible failover candidate" - the wrong cause."""
    s = Scenario(
        cluster=pcluster(pmember("node-a", "leader", index=0, timeline=5), pmember("node-b", state="running", index=1, timeline=4), pmember("node-c", index=2, timeline=4)),
        patroni_self={EPS[0]: says("node-a", "replica", replication=None, timeline=4), EPS[1]: says("node-b", replication=None, timeline=4)},
    )
    findings = run(s, patroni_endpoints=EPS)
    assert of(findings, "patroni_leader") == [
        (WARNING, "node-a holds the leader key but still says it is a replica: being promoted (etcd has quorum); writes wait until it runs as primary")
    ]
    assert of(findings, "patroni_failover_candidates") == [(OK, "node-a is being promoted: the candidates are judged again once it runs as primary")]


def test_a_dead_leader_still_up_in_haproxy_is_critical_in_haproxy_rw():
    s = Scenario(patroni_unanswered={EPS[0]: "connection refused"})
    findings = run(s, patroni_endpoints=EPS)
    assert of(findings, "haproxy_rw") == [
        (CRITICAL, "read-write (pg_rw) routes to node-a, the leader in the DCS, but its REST API does not answer (connection refused): writes fail")
    ]


def test_a_replica_that_says_it_is_a_primary_is_critical():
    s = Scenario(patroni_self=healthy_self(**{EPS[2]: says("node-c", "primary", replication=None)}))
    [(sev, msg)] = [f for f in of(run(s, patroni_endpoints=EPS), "patroni_replication") if f[0] is CRITICAL]
    assert msg == "node-c says it is a primary, but the leader key is node-a: two primaries?"


@pytest.mark.parametrize(
    "answer, message",
    [
        (says("node-b", state="starting", replication=None), "node-b says its PostgreSQL is 'starting' (the DCS still lists it streaming)"),
        (says("node-b", replication="in archive recovery"), "node-b says its replication is 'in archive recovery' (the DCS still lists it streaming)"),
    ],
)
def test_a_replica_that_says_it_is_not_streaming_is_not_counted_nor_a_candidate(answer, message):
    findings = run(Scenario(patroni_self=healthy_self(**{EPS[1]: answer})), patroni_endpoints=EPS)
    assert of(findings, "patroni_replication") == [(WARNING, message)]
    assert of(findings, "patroni_failover_candidates") == [(OK, "1 eligible failover candidate: node-c")]
    assert all("node-b" not in msg for _, msg in of(findings, "patroni_lag"))


def test_a_self_report_is_matched_by_the_name_it_gives_not_by_the_address():
    # the context names the members by DNS names; /patroni says which member answered
    eps = ("http://db1.example:8008", "http://db2.example:8008", "http://db3.example:8008")
    s = Scenario(patroni_self={eps[0]: says("node-a", "replica", replication=None), eps[1]: says("node-b"), eps[2]: says("node-c")})
    assert of(run(s, patroni_endpoints=eps), "patroni_leader")[0][1].startswith("node-a holds the leader key but still says it is a replica")  # found by name


def test_a_context_pointing_at_another_cluster_is_critical():
    findings = run(Scenario(), patroni_scope="pg-other")
    assert of(findings, "patroni_scope") == [
        (
            CRITICAL,
            "Patroni answers for scope 'pg-main', but this context is for 'pg-other': its endpoints point at another "
            "cluster, and every finding here is about that one",
        )
    ]
    assert of(run(Scenario(), patroni_scope="pg-main"), "patroni_scope") == []
    assert of(run(Scenario()), "patroni_scope") == []  # a context without scope: nothing to compare


def test_while_the_leader_is_down_running_replicas_are_its_candidates_not_nothing_to_fail_over_to():
    """The leader dead (its API silent): its replicas lose the stream ("running", not "streaming") and Patroni
    promotes one of them when the key expires. Seen on the lab: 17 s of "no eligible failover candidate" before
    Patroni failed over, which could push an operator into a manual failover racing Patroni."""
    s = Scenario(
        cluster=pcluster(pmember("node-a", "leader", index=0), pmember("node-b", state="running", index=1), pmember("node-c", state="running", index=2, lag=5 * 1024 * 1024)),
        patroni_unanswered={EPS[0]: "connection refused"},
    )
    findings = run(s, patroni_endpoints=EPS)
    assert of(findings, "patroni_failover_candidates") == [(OK, "the leader is down; Patroni can promote node-b (running, lag within the limit)")]
    assert of(findings, "patroni_replication") == [(WARNING, "node-b, node-c running but not streaming: the leader is down or being promoted (see patroni_leader)")]
    assert of(findings, "patroni_leader")[0][0] is CRITICAL
    # with a healthy leader the same replica states are what they look like
    healthy = Scenario(cluster=s.cluster)
    assert of(run(healthy, patroni_endpoints=EPS), "patroni_failover_candidates")[0][0] is CRITICAL


def test_candidates_while_etcd_has_no_quorum_warn_that_no_failover_can_happen():
    s = Scenario()
    for node in s.etcd[1:]:
        node.started = False
    [(sev, msg)] = of(run(s), "patroni_failover_candidates")
    assert sev is WARNING and msg == "2 eligible failover candidates (node-b, node-c), but etcd has no quorum: Patroni cannot fail over until it returns"


def test_endpoints_named_differently_fall_back_to_counts():
    eps = ("http://db1.example:8008", "http://db2.example:8008", "http://db3.example:8008", "http://db4.example:8008")
    assert of(run(Scenario(), patroni_endpoints=eps), "patroni_members") == [
        (WARNING, "3 Patroni members but 4 endpoints in the context: a node is stopped or removed")
    ]
    assert of(run(Scenario(), patroni_endpoints=eps[:3]), "patroni_members") == []


# ------------------------------------------------------------------------------------------------ F06 HAProxy read-write


def test_f06_exact_sample_one_up_is_ok_and_the_others_stand_by():
    s = Scenario(haproxy=load_text("haproxy/f06_rw.csv"))
    findings = run(s)
    assert of(findings, "haproxy_rw") == [(OK, "read-write (pg_rw) routes to node-a, the leader")]
    assert of(findings, "haproxy_servers") == []
    assert of(findings, "haproxy_ro") == []  # the sample has no read-only backend


def test_f06_up_server_not_the_leader_is_critical():
    s = Scenario(haproxy=routed_csv("node-a", NODES, rw_up=("node-b",)))
    assert of(run(s), "haproxy_rw") == [
        (CRITICAL, "read-write (pg_rw) routes to node-b, but the Patroni leader is node-a")
    ]


def test_f06_zero_up_is_critical():
    s = Scenario(haproxy=routed_csv("node-a", NODES, rw_up=()))
    assert of(run(s), "haproxy_rw") == [
        (CRITICAL, "read-write (pg_rw): no server UP: writes fail (node-a DOWN, node-b DOWN, node-c DOWN)")
    ]


def test_f06_two_up_is_critical():
    s = Scenario(haproxy=routed_csv("node-a", NODES, rw_up=("node-a", "node-c")))
    assert of(run(s), "haproxy_rw") == [
        (CRITICAL, "read-write (pg_rw): 2 servers UP (node-a, node-c): two primaries behind the balancer")
    ]


@pytest.mark.parametrize("check", ["L4CON", "L4TOUT"])
def test_f06_rest_api_unreachable_is_a_warning_even_in_read_write(check):
    s = Scenario(haproxy=routed_csv("node-a", NODES, overrides={("pg_rw", "node-b"): ("DOWN", check, "")}))
    findings = run(s)
    assert of(findings, "haproxy_servers") == [
        (WARNING, f"pg_rw/node-b is DOWN: its Patroni REST API is unreachable ({check}): the node or Patroni may be down")
    ]
    assert of(findings, "haproxy_rw")[0][0] is OK
    assert worst(findings) is WARNING


@pytest.mark.parametrize(("backend", "status", "check"), [("pg_rw", "DOWN", "* L7STS"), ("pg_rw", "UP", "* L7OK"), ("pg_ro", "DOWN", "* L7STS")])
def test_f06_a_check_in_progress_shows_code_0_and_changes_nothing(backend, status, check):
    # Seen on the lab: while a check runs, HAProxy prefixes the last result with "* " and reports check_code 0.
    server = "node-a" if status == "UP" and backend == "pg_rw" else ("node-b" if backend == "pg_rw" else "node-a")
    s = Scenario(haproxy=routed_csv("node-a", NODES, overrides={(backend, server): (status, check, 0)}))
    findings = run(s)
    assert worst(findings) is OK, [f for f in findings if f.severity is not OK]
    parsed = parse_stat_csv(s.haproxy, "pg_rw", "pg_ro")
    row = next(x for x in parsed.servers if (x.backend, x.name) == (backend, server))
    assert row.check_in_progress and row.check_code is None


def test_f06_a_finished_l7sts_other_than_503_is_a_warning():
    s = Scenario(haproxy=routed_csv("node-a", NODES, overrides={("pg_rw", "node-b"): ("DOWN", "L7STS", 500)}))
    assert of(run(s), "haproxy_servers") == [(WARNING, "pg_rw/node-b is DOWN (check L7STS 500)")]


def test_server_matched_to_the_leader_by_address_when_names_differ():
    csv = stat_csv(stat_row("pg_rw", "pg1", "UP", "L7OK", 200, addr="10.0.0.11:5432"), stat_row("pg_rw", "pg2", "DOWN", "L7STS", 503, addr="10.0.0.12:5432"))
    assert of(run(Scenario(haproxy=csv)), "haproxy_rw") == [(OK, "read-write (pg_rw) routes to pg1, the leader")]


def test_missing_read_write_backend_is_unknown():
    s = Scenario(haproxy=stat_csv(stat_row("other", "x", "UP", "L7OK", 200), backends=("other",)))
    assert of(run(s), "haproxy_rw") == [(UNKNOWN, "HAProxy has no read-write backend 'pg_rw' (backends: other)")]


def test_read_only_without_server_up_warns():
    s = Scenario(haproxy=routed_csv("node-a", NODES, overrides={("pg_ro", "node-b"): ("DOWN", "L7STS", 503), ("pg_ro", "node-c"): ("DOWN", "L7STS", 503)}))
    assert of(run(s), "haproxy_ro") == [(WARNING, "read-only (pg_ro): no server UP: read-only clients cannot connect")]


# ------------------------------------------------------------------------------------------------ F07 HAProxy status words


def test_f07_sample_statuses():
    s = Scenario(haproxy=load_text("haproxy/f07_statuses.csv"))
    s.cluster = pcluster(*(pmember(f"node-{c}", "leader" if c == "a" else "replica", index=i) for i, c in enumerate("abcdefg")))
    findings = run(s)
    assert of(findings, "haproxy_servers") == [
        (WARNING, "pg_rw/node-a is UP but failing its checks (going down, 2/3; last check L7OK 200)"),
        (WARNING, "pg_rw/node-c is NOLB: it takes no new connections"),
        (WARNING, "pg_rw/node-d is in MAINT (administrative, via pg_rw/node-d): set by an operator, not by a health check"),
        (WARNING, "pg_rw/node-e is in DRAIN (administrative): set by an operator, not by a health check"),
        (WARNING, "pg_rw/node-f has no health check: its health is unknown"),
        (WARNING, "pg_rw/node-g is in MAINT (administrative): set by an operator, not by a health check"),
    ]
    # a server without health check takes writes: where they go is unknown
    assert of(findings, "haproxy_rw") == [(UNKNOWN, "read-write (pg_rw): node-f without a health check: where writes go is unknown")]


@pytest.mark.parametrize("status", ["MAINT", "DRAIN", "MAINT (via pg_rw/node-c)"])
def test_f07_administrative_states_are_never_critical_by_themselves(status):
    s = Scenario(haproxy=routed_csv("node-a", NODES, overrides={("pg_rw", "node-c"): (status, "L7STS", 503)}))
    findings = run(s)
    assert worst(findings) is WARNING
    assert of(findings, "haproxy_rw")[0][0] is OK


def test_f07_coming_up_is_fine_and_going_down_warns():
    s = Scenario(haproxy=routed_csv("node-a", NODES, overrides={("pg_rw", "node-a"): ("UP 1/2", "L7STS", 503), ("pg_ro", "node-b"): ("DOWN 1/2", "L7OK", 200)}))
    findings = run(s)
    assert of(findings, "haproxy_servers") == [(WARNING, "pg_rw/node-a is UP but failing its checks (going down, 1/2; last check L7STS 503)")]
    assert of(findings, "haproxy_rw")[0][0] is OK  # still in rotation


def test_f07_backup_servers_down_never_make_a_backend_critical():
    rows = [
        stat_row("pg_rw", "node-a", "UP", "L7OK", 200, addr="10.0.0.11:5432"),
        stat_row("pg_rw", "node-b", "DOWN", "L7STS", 503, addr="10.0.0.12:5432"),
        stat_row("pg_rw", "spare", "DOWN", "L4CON", "", backup=True),
        stat_row("pg_rw", "spare2", "MAINT", "", "", backup=True),
    ]
    findings = run(Scenario(haproxy=stat_csv(*rows, backends=("pg_rw",))))
    assert worst(findings) is WARNING
    assert [sev for sev, _ in of(findings, "haproxy_servers")] == [WARNING, WARNING]


def test_backup_takes_writes_only_when_no_active_server_is_up():
    rows = [
        stat_row("pg_rw", "node-b", "DOWN", "L7STS", 503, addr="10.0.0.12:5432"),
        stat_row("pg_rw", "node-a", "UP", "L7OK", 200, addr="10.0.0.11:5432", backup=True),
    ]
    assert of(run(Scenario(haproxy=stat_csv(*rows, backends=("pg_rw",)))), "haproxy_rw") == [(OK, "read-write (pg_rw) routes to node-a, the leader")]


def test_unrecognised_status_word_warns():
    s = Scenario(haproxy=routed_csv("node-a", NODES, overrides={("pg_ro", "node-c"): ("STOPPED", "", "")}))
    assert of(run(s), "haproxy_servers") == [(WARNING, "pg_ro/node-c: status 'STOPPED' not recognised")]


def test_down_with_an_unexpected_check_answer_warns():
    s = Scenario(haproxy=routed_csv("node-a", NODES, overrides={("pg_rw", "node-c"): ("DOWN", "L7STS", 401)}))
    assert of(run(s), "haproxy_servers") == [(WARNING, "pg_rw/node-c is DOWN (check L7STS 401)")]


# ------------------------------------------------------------------------------------------------ etcd: F08 alarms, F09, quorum, db size


def test_f08_nospace_alarm_with_every_member_healthy_is_critical():
    s = Scenario(alarms=[(ETCD_IDS[1], "NOSPACE")])
    findings = run(s)
    assert of(findings, "etcd_members") == [(OK, "3 of 3 etcd members healthy")]
    [alarm] = [f for f in findings if f.rule == "etcd_alarms"]
    assert alarm.severity is CRITICAL
    assert alarm.message == (
        "etcd alarm NOSPACE on member 123456789abcdef0 (etcd-b): the database reached its quota; "
        "etcd rejects every write, so Patroni cannot renew its leader key"
    )
    assert alarm.hint is not None
    order = [alarm.hint.index(word) for word in ("compact", "defrag", "disarm")]
    assert order == sorted(order)
    assert "does not run" in alarm.hint


def test_f08_alarm_seen_in_status_errors_even_when_the_alarm_list_is_unreadable():
    s = Scenario(alarms=[(ETCD_IDS[0], "NOSPACE")], alarms_error="no answer within 2s (listing alarms needs quorum)")
    report = report_of(s)
    assert report.etcd.value.alarms == ()
    alarms = of(evaluate(report, None, NOW), "etcd_alarms")
    assert len(alarms) == 1 and alarms[0][0] is CRITICAL and "aaaaaaaaaaaaaaaa (etcd-a)" in alarms[0][1]


def test_f08_captured_lab_payloads():
    from gardenctl.backends.etcd import join_cluster, parse_alarms, parse_members, parse_status

    members = parse_members(load_json("etcd/lab_member_list.json"))
    statuses = [parse_status(load_json("etcd/lab_status_with_nospace_error.json"), "http://127.0.0.1:16501")]
    cluster = join_cluster(members, statuses, {}, parse_alarms(load_json("etcd/lab_alarm_nospace.json")), 2 * 1024**3)
    findings = evaluate({"etcd": cluster}, None, NOW, only=["etcd_alarms"])
    assert [(f.severity, f.subject) for f in findings] == [(CRITICAL, "852dfe0951b74d42")]
    assert "852dfe0951b74d42 (etcd0)" in findings[0].message


def test_corrupt_alarm_is_critical_and_other_alarms_warn():
    s = Scenario(alarms=[(ETCD_IDS[2], "CORRUPT"), (ETCD_IDS[0], "FUTURE_KIND"), (424242, "NOSPACE")])
    alarms = of(run(s), "etcd_alarms")
    assert [sev for sev, _ in alarms] == [CRITICAL, WARNING, CRITICAL]
    assert "data inconsistency" in alarms[0][1]
    assert "67932 (not a current member)" in alarms[2][1]


def test_unreadable_alarm_list_is_unknown_not_no_alarms():
    s = Scenario(alarms_error="etcd: context deadline exceeded")
    assert of(run(s), "etcd_alarms") == [
        (UNKNOWN, "etcd alarms could not be read (etcd: context deadline exceeded): a NOSPACE or CORRUPT alarm cannot be ruled out")
    ]


def test_f09_unstarted_member_and_no_tolerance_left():
    s = Scenario()
    s.etcd[2].started = False
    s.etcd[2].name = None
    findings = run(s)
    assert of(findings, "etcd_members") == [(WARNING, "etcd member 5555555555555555 (unstarted (10.0.0.23)) was added but never started")]
    assert of(findings, "etcd_quorum") == [(WARNING, "etcd tolerates no further failure (2 of 3 voters healthy, quorum 2)")]
    assert worst(findings) is WARNING


def test_f09_exact_member_list_through_the_rules():
    from gardenctl.backends.etcd import join_cluster, parse_members, parse_status

    members = parse_members(load_json("etcd/f09_member_list.json"))
    leader = members[0].id
    statuses = [parse_status({"header": {"member_id": str(m.id)}, "leader": str(leader), "dbSize": "4096"}, m.client_urls[0]) for m in members[:2]]
    cluster = join_cluster(members, statuses, {}, (), 2 * 1024**3)
    findings = evaluate({"etcd": cluster}, None, NOW)
    assert problems(findings) == [
        ("etcd_members", "WARNING", "etcd member 5555555555555555 (unstarted (10.0.0.23)) was added but never started"),
        ("etcd_quorum", "WARNING", "etcd tolerates no further failure (2 of 3 voters healthy, quorum 2)"),
    ]


def test_two_etcd_members_down_is_quorum_lost():
    s = Scenario()
    s.etcd[1].answers = False
    s.etcd[2].answers = False
    s.etcd[0].has_leader = False
    findings = run(s)
    assert of(findings, "etcd_quorum") == [
        (
            CRITICAL,
            "etcd quorum lost (0 of 3 voters healthy, quorum 2): no write succeeds; the Patroni leader cannot renew its key "
            "and demotes after ttl unless failsafe_mode is on",
        )
    ]
    assert of(findings, "etcd_members") == [
        (WARNING, "etcd member etcd-a (aaaaaaaaaaaaaaaa) is unhealthy: no leader"),
        (WARNING, "etcd member etcd-b (123456789abcdef0) is unhealthy: connection refused"),
        (WARNING, "etcd member etcd-c (5555555555555555) is unhealthy: connection refused"),
    ]


def test_learner_is_not_a_voter():
    s = Scenario()
    s.etcd[2].learner = True
    s.etcd[2].answers = False
    findings = run(s)
    assert of(findings, "etcd_quorum") == [(WARNING, "etcd tolerates no further failure (2 of 2 voters healthy, quorum 2)")]
    assert of(findings, "etcd_members") == [(WARNING, "etcd learner etcd-c (5555555555555555) is unhealthy: connection refused")]


@pytest.mark.parametrize("percent,warns", [(79, False), (80, False), (81, True), (100, True)])
def test_etcd_db_size_against_the_quota(percent, warns):
    s = Scenario(quota_bytes=1000)
    for node in s.etcd:
        node.db_size = 100
    s.etcd[0].db_size = percent * 10
    found = of(run(s), "etcd_db_size")
    if warns:
        assert found == [(WARNING, f"etcd member etcd-a (aaaaaaaaaaaaaaaa): database {percent * 10} B is {percent}% of the 1000 B quota")]
    else:
        assert found == []


def test_etcd_db_warning_percent_from_the_context():
    s = Scenario(quota_bytes=1000)
    for node in s.etcd:
        node.db_size = 100
    s.etcd[1].db_size = 600
    assert of(run(s, Thresholds(etcd_db_warning_percent=50)), "etcd_db_size")[0][0] is WARNING


# ------------------------------------------------------------------------------------------------ optional layers


def test_rules_of_an_optional_layer_apply_only_when_the_layer_is_collected():
    @rule("k3s_test_nodes_ready", layer="k3s", needs=("k3s",), description="test rule")
    def _nodes(inp):
        ready = inp.value("k3s")["ready"]
        return [rules_mod.Finding("", OK if ready else CRITICAL, f"{ready} nodes ready")]

    try:
        names = [r.name for r in evaluate_rules(report_of(Scenario()), None, NOW)]
        assert "k3s_test_nodes_ready" not in names
        report = report_of(Scenario())
        from dataclasses import replace

        with_k3s = replace(report, k3s=Probe({"ready": 0}))
        assert of(evaluate(with_k3s, None, NOW), "k3s_test_nodes_ready") == [(CRITICAL, "0 nodes ready")]
        down = replace(report, k3s=Probe(None, "connection refused"))
        results = {r.name: r for r in evaluate_rules(down, None, NOW)}
        assert results["k3s_test_nodes_ready"].evaluated is False
        assert of(evaluate(down, None, NOW), "k3s_reachable") == [(UNKNOWN, "K3s API server did not answer: connection refused")]
    finally:
        RULES.pop("k3s_test_nodes_ready", None)


def test_bad_rule_names_are_refused():
    with pytest.raises(ValueError):
        rule("Bad-Name", layer="x", needs=(), description="")
