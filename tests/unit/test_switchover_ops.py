"""ops/switchover.py against the in-memory fakes: every preflight check passing and failing, the field cases F01-F05,
Patroni's answers (200, 202, 412, 400, 503 "status unknown", 503 "failed"), convergence and timeouts. Zero delay."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gardenctl.errors import BackendError, BackendUnreachable, ExitCode, OperationFailed, OperationTimeout, PreconditionFailed
from gardenctl.ops.switchover import (
    M_ANSWERED,
    M_LEADER,
    M_OLD_STREAMING,
    M_ROUTED,
    M_SENT,
    M_WRITABLE,
    SwitchoverAdapters,
    execute,
    landing_matches,
    parse_when,
    plan_failover,
    plan_switchover,
)
from gardenctl.backends.postgres import Landing
from gardenctl.model import PatroniMember
from tests.unit import fakes_patroni as fp
from tests.unit.fakes_patroni import ActionAnswer, FakeClock, FakeEtcd, FakePatroni, FakeRw

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def adapters(fake: FakePatroni, *, etcd: FakeEtcd | None = None, rw: FakeRw | None | str = "follow") -> SwitchoverAdapters:
    probe = FakeRw(fake) if rw == "follow" else rw
    return SwitchoverAdapters(patroni=fake, etcd=etcd or FakeEtcd(), rw=probe, rw_problem=None if probe else "context lab: haproxy.rw-address is not set")  # type: ignore[arg-type]


def checks_by_name(plan) -> dict:
    return {c.name: c for c in plan.preflight.checks}


def run(fake: FakePatroni, plan, a: SwitchoverAdapters | None = None, **kw):
    clock = FakeClock()
    lines: list[str] = []
    result = execute(a or adapters(fake), plan, clock=clock, progress=lines.append, **kw)
    return result, lines


# ------------------------------------------------------------------------------------------------ preflight: passing


def test_every_check_passes_on_a_healthy_cluster_with_a_named_candidate():
    fake = fp.healthy_cluster()
    plan = plan_switchover(adapters(fake), candidate="node-b")
    checks = checks_by_name(plan)
    assert set(checks) == {
        "leader",
        "maintenance mode",
        "scheduled switchover",
        "etcd quorum",
        "candidate",
        "candidate reachable",
        "candidate streaming",
        "candidate timeline",
        "candidate lag",
        "candidate tags",
        "read-write routing",
    }
    assert all(c.ok for c in checks.values()), [c for c in checks.values() if not c.ok]
    assert plan.ok and plan.leader == "node-a" and plan.candidate == "node-b" and plan.candidate_source == "named with --candidate"
    assert plan.timeline == 4
    assert plan.timeout_seconds == 24.0  # ttl 20 + 2 x loop_wait 2
    assert checks["leader"].detail == "node-a is running as primary on timeline 4 and its REST API answers"
    assert checks["candidate lag"].detail == "0 B (limit 1048576 B, maximum_lag_on_failover)"
    assert checks["etcd quorum"].detail.startswith("3 of 3 voters healthy (quorum 2")
    assert checks["read-write routing"].detail == "127.0.0.1:5000 reaches node-a, the leader (writable primary)"
    assert [p.api_reachable for p in plan.probes] == [True, True, True]
    assert fake.posts == []  # planning never changes anything


def test_default_candidate_is_the_best_eligible_replica():
    fake = fp.cluster_with_lagging_replica()
    plan = plan_switchover(adapters(fake))
    assert plan.ok
    assert plan.candidate == "node-c"
    assert plan.candidate_source.startswith("chosen by default: the best eligible replica")


def test_default_candidate_prefers_higher_failover_priority():
    fake = FakePatroni(fp.three_nodes(node_b={"tags": {"failover_priority": 1}}, node_c={"tags": {"failover_priority": 5}}))
    assert plan_switchover(adapters(fake)).candidate == "node-c"


# ------------------------------------------------------------------------------------------------ preflight: leader


def test_no_leader_refuses_a_switchover_and_points_to_failover():
    plan = plan_switchover(adapters(fp.leaderless_cluster(), rw=None), candidate="node-b")
    check = checks_by_name(plan)["leader"]
    assert not check.ok and not check.overridable
    assert "gardenctl failover --candidate NAME" in check.detail
    assert not plan.ok


def test_two_leaders_refuse_even_with_force():
    plan = plan_switchover(adapters(fp.two_leaders_cluster()), candidate="node-c", force=True)
    check = checks_by_name(plan)["leader"]
    assert not check.ok and not check.overridable and "2 members claim to lead (node-a, node-b)" in check.detail
    assert not plan.ok


def test_leader_rest_api_down_refuses_but_force_may_override():
    fake = fp.healthy_cluster()
    fake.unreachable.add("node-a")
    plan = plan_switchover(adapters(fake), candidate="node-b")
    check = checks_by_name(plan)["leader"]
    assert not check.ok and check.overridable
    assert "REST API does not answer" in check.detail and "use failover" in check.detail
    assert not plan.ok
    forced = plan_switchover(adapters(fake), candidate="node-b", force=True)
    # HAProxy checks /primary on the same REST API, so the read-write port has no server either
    assert forced.ok and [c.name for c in forced.preflight.overridden] == ["leader", "read-write routing"]


# ------------------------------------------------------------------------------------------------ preflight: candidate


def test_unknown_candidate_is_refused_naming_the_members():
    plan = plan_switchover(adapters(fp.healthy_cluster()), candidate="node-x", force=True)
    check = checks_by_name(plan)["candidate"]
    assert not check.ok and not check.overridable
    assert check.detail == "'node-x' is not a member of the cluster (members: node-a, node-b, node-c)"
    assert not plan.ok


def test_candidate_that_already_leads_is_refused():
    plan = plan_switchover(adapters(fp.healthy_cluster()), candidate="node-a")
    assert checks_by_name(plan)["candidate"].detail == "node-a is already the leader; pick a replica"
    assert not plan.ok


def test_unreachable_candidate_is_refused_even_with_force():
    fake = fp.healthy_cluster()
    fake.unreachable.add("node-c")
    plan = plan_switchover(adapters(fake), candidate="node-c", force=True)
    check = checks_by_name(plan)["candidate reachable"]
    assert not check.ok and not check.overridable and "connection refused" in check.detail
    assert not plan.ok
    assert plan.probe("node-c").api_reachable is False
    # ... and the default candidate skips it
    assert plan_switchover(adapters(fake)).candidate == "node-b"


def test_candidate_not_streaming_is_overridable_unless_stopped():
    fake = FakePatroni(fp.three_nodes(node_b={"state": "running"}, node_c={"state": "stopped", "lag": "unknown"}))
    running = checks_by_name(plan_switchover(adapters(fake), candidate="node-b"))["candidate streaming"]
    assert not running.ok and running.overridable and running.detail.startswith("replica, state running")
    stopped = checks_by_name(plan_switchover(adapters(fake), candidate="node-c"))["candidate streaming"]
    assert not stopped.ok and not stopped.overridable


def test_lagging_candidate_is_refused_and_max_lag_or_force_allows_it():
    fake = fp.cluster_with_lagging_replica()
    plan = plan_switchover(adapters(fake), candidate="node-b")
    check = checks_by_name(plan)["candidate lag"]
    assert not check.ok and check.overridable
    assert check.detail.startswith("52428800 B behind, above the limit of 1048576 B (maximum_lag_on_failover)")
    assert not plan.ok
    assert plan_switchover(adapters(fake), candidate="node-b", max_lag_bytes=64 * 1024 * 1024).ok
    assert checks_by_name(plan_switchover(adapters(fake), candidate="node-b", max_lag_bytes=100))["candidate lag"].detail.endswith("(--max-lag); promoting it loses those bytes of committed WAL")
    assert plan_switchover(adapters(fake), candidate="node-b", force=True).ok


def test_unknown_lag_is_never_eligible_f01():
    fake = fp.cluster_with_unknown_lag()
    plan = plan_switchover(adapters(fake), candidate="node-b", force=True)
    lag = checks_by_name(plan)["candidate lag"]
    assert not lag.ok and not lag.overridable and lag.detail.startswith("lag is unknown")
    assert not plan.ok
    assert plan_switchover(adapters(fake)).candidate == "node-c"


def test_candidate_on_an_older_timeline_is_overridable():
    fake = fp.cluster_with_old_timeline_replica()
    check = checks_by_name(plan_switchover(adapters(fake), candidate="node-b"))["candidate timeline"]
    assert not check.ok and check.overridable and check.detail == "on timeline 3, the leader on 4"
    assert plan_switchover(adapters(fake), candidate="node-b", force=True).ok


@pytest.mark.parametrize(
    "name,eligible,fragment",
    [
        ("node-b", False, "failover_priority is 0"),
        ("node-c", False, "tagged nofailover"),
        ("node-d", True, "nofailover and failover_priority disagree"),
    ],
)
def test_tags_decide_eligibility_f04(name, eligible, fragment):
    plan = plan_switchover(adapters(fp.tagged_cluster()), candidate=name, force=True)
    check = checks_by_name(plan)["candidate tags"]
    assert check.ok is eligible and not check.overridable
    assert fragment in check.detail
    assert plan.ok is eligible


def test_default_candidate_skips_ineligible_tags_f04():
    plan = plan_switchover(adapters(fp.tagged_cluster()))
    assert plan.candidate == "node-d"


def test_no_eligible_replica_at_all_refuses_with_reasons():
    fake = FakePatroni(fp.three_nodes(node_b={"tags": {"nofailover": True}}, node_c={"lag": "unknown"}))
    plan = plan_switchover(adapters(fake), force=True)
    check = checks_by_name(plan)["candidate"]
    assert not check.ok and not plan.ok and plan.candidate is None
    assert "node-b: tagged nofailover" in check.detail and "node-c: lag is unknown" in check.detail


# ------------------------------------------------------------------------------------------------ F02 synchronous mode


def test_sync_mode_refuses_an_async_candidate_naming_the_sync_standby_f02():
    fake = fp.sync_cluster()
    plan = plan_switchover(adapters(fake), candidate="node-c", force=True)
    check = checks_by_name(plan)["synchronous standby"]
    assert not check.ok and not check.overridable
    assert "node-c is not a synchronous standby; the sync standby is node-b" in check.detail
    assert not plan.ok
    with pytest.raises(PreconditionFailed) as exc:
        execute(adapters(fake), plan, clock=FakeClock())
    assert exc.value.exit_code == ExitCode.REFUSED
    assert any("node-b" in d for d in exc.value.details)
    assert fake.posts == []  # refused before any request


def test_sync_mode_default_candidate_is_the_sync_standby_f02():
    fake = fp.sync_cluster()
    plan = plan_switchover(adapters(fake))
    assert plan.ok and plan.candidate == "node-b"
    assert plan.candidate_source == "chosen by default: the synchronous standby"
    assert checks_by_name(plan)["synchronous standby"].ok
    result, _ = run(fake, plan)
    assert result.exit_code == 0
    assert fake.posts[0].body == {"leader": "node-a", "candidate": "node-b"}


def test_sync_mode_without_a_sync_standby_refuses_f02():
    fake = fp.sync_cluster_without_standby()
    plan = plan_switchover(adapters(fake), force=True)
    assert not plan.ok
    assert "no member is a synchronous standby" in checks_by_name(plan)["candidate"].detail
    named = plan_switchover(adapters(fake), candidate="node-b", force=True)
    assert "can not find sync_standby" in checks_by_name(named)["synchronous standby"].detail
    assert not named.ok


# ------------------------------------------------------------------------------------------------ F05 paused, scheduled


def test_paused_cluster_refuses_an_unnamed_switchover_f05():
    plan = plan_switchover(adapters(fp.paused_cluster()), force=True)
    check = checks_by_name(plan)["maintenance mode"]
    assert not check.ok and not check.overridable
    assert "Patroni accepts only a switchover to a named candidate" in check.detail
    assert not plan.ok


def test_paused_cluster_refuses_a_scheduled_switchover_f05():
    plan = plan_switchover(adapters(fp.paused_cluster()), candidate="node-b", at=NOW + timedelta(hours=1), now=NOW, force=True)
    check = checks_by_name(plan)["maintenance mode"]
    assert not check.ok and not check.overridable and "refuses a scheduled switchover while paused" in check.detail
    assert not plan.ok


def test_paused_cluster_allows_a_named_candidate_f05():
    plan = plan_switchover(adapters(fp.paused_cluster()), candidate="node-b")
    assert plan.ok and plan.paused
    assert checks_by_name(plan)["maintenance mode"].detail.startswith("on (paused): allowed because a candidate is named")


def test_an_already_scheduled_switchover_refuses_even_with_force():
    plan = plan_switchover(adapters(fp.cluster_with_scheduled_switchover()), candidate="node-c", force=True)
    check = checks_by_name(plan)["scheduled switchover"]
    assert not check.ok and not check.overridable
    assert "2030-01-01 03:00:00 UTC (from node-a to node-b)" in check.detail
    assert not plan.ok


# ------------------------------------------------------------------------------------------------ etcd and routing


@pytest.mark.parametrize(
    "etcd,overridable,fragment",
    [
        (FakeEtcd(healthy=1), False, "1 of 3 voters healthy, quorum is 2"),
        (FakeEtcd(alarms=("NOSPACE",)), False, "alarm NOSPACE"),
        (FakeEtcd(reachable=False), True, "etcd does not answer from here"),
    ],
)
def test_etcd_quorum_check(etcd, overridable, fragment):
    plan = plan_switchover(adapters(fp.healthy_cluster(), etcd=etcd), candidate="node-b")
    check = checks_by_name(plan)["etcd quorum"]
    assert not check.ok and check.overridable is overridable and fragment in check.detail
    assert not plan.ok


def test_etcd_with_one_member_down_still_passes():
    check = checks_by_name(plan_switchover(adapters(fp.healthy_cluster(), etcd=FakeEtcd(healthy=2)), candidate="node-b"))["etcd quorum"]
    assert check.ok and "2 of 3 voters healthy (quorum 2, 0 more failures tolerated)" == check.detail


def test_without_a_read_write_address_convergence_cannot_be_verified():
    plan = plan_switchover(adapters(fp.healthy_cluster(), rw=None), candidate="node-b", force=True)
    check = checks_by_name(plan)["read-write routing"]
    assert not check.ok and not check.overridable and "haproxy.rw-address is not set" in check.detail
    assert not plan.ok


def test_read_write_port_reaching_a_replica_is_flagged_and_overridable():
    fake = fp.healthy_cluster()
    rw = FakeRw(fake)
    rw._routed_to = "node-c"
    plan = plan_switchover(adapters(fake, rw=rw), candidate="node-b")
    check = checks_by_name(plan)["read-write routing"]
    assert not check.ok and check.overridable
    assert check.detail == "127.0.0.1:5000 reaches node-c (a replica), not the leader node-a"


def test_landing_matches_address_and_port():
    m = PatroniMember(name="n", role="leader", state="running", host="127.0.0.1", port=16631)
    assert landing_matches(m, Landing("127.0.0.1", 16631, False))
    assert not landing_matches(m, Landing("127.0.0.1", 16630, False))
    assert not landing_matches(m, Landing("10.0.0.9", 16631, False))
    assert not landing_matches(PatroniMember(name="x", role="replica", state="streaming"), Landing("127.0.0.1", 5432, True))


# ------------------------------------------------------------------------------------------------ --at


def test_parse_when_accepts_iso_with_zone_and_returns_utc():
    assert parse_when("2030-01-01T14:30:00+02:00", NOW) == datetime(2030, 1, 1, 12, 30, tzinfo=timezone.utc)
    assert parse_when("2030-01-01T13:00:00Z", NOW) == datetime(2030, 1, 1, 13, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("2030-01-01T13:00:00", "has no time zone"),
        ("2029-12-31T23:00:00+00:00", "is in the past"),
        ("tomorrow", "is not an ISO 8601 time"),
    ],
)
def test_parse_when_refuses_naive_past_and_junk(text, fragment):
    with pytest.raises(ValueError) as exc:
        parse_when(text, NOW)
    assert fragment in str(exc.value)


def test_scheduled_switchover_is_verified_as_scheduled():
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(202, "Switchover scheduled")]
    at = NOW + timedelta(hours=2)
    plan = plan_switchover(adapters(fake), at=at, now=NOW)
    assert plan.ok and plan.candidate is None and plan.candidate_source == "Patroni chooses at the scheduled time"
    assert "read-write routing" not in checks_by_name(plan)
    result, _ = run(fake, plan)
    assert result.exit_code == 0 and result.outcome == "scheduled"
    assert result.message == "switchover from node-a to a replica Patroni chooses then scheduled for 2030-01-01 14:00:00 UTC"
    assert fake.posts[0].body == {"leader": "node-a", "scheduled_at": "2030-01-01T14:00:00+00:00"}
    assert [m.label for m in result.moments] == [M_SENT, M_ANSWERED, "Patroni shows it scheduled"]
    assert fake.leader_name == "node-a"


# ------------------------------------------------------------------------------------------------ execution


def test_switchover_converges_with_moments_in_order():
    fake = fp.healthy_cluster()
    plan = plan_switchover(adapters(fake), candidate="node-b")
    result, lines = run(fake, plan)
    assert result.exit_code == 0 and result.converged and result.outcome == "succeeded"
    assert [m.label for m in result.moments] == [M_SENT, M_ANSWERED, M_LEADER, M_ROUTED, M_WRITABLE, M_OLD_STREAMING]
    secs = [m.seconds for m in result.moments]
    assert secs == sorted(secs)
    assert (result.leader_before, result.leader_after, result.timeline_before, result.timeline_after) == ("node-a", "node-b", 4, 5)
    final = {m.name: (m.role, m.state, m.timeline) for m in result.final_members}
    assert final == {"node-a": ("replica", "streaming", 5), "node-b": ("leader", "running", 5), "node-c": ("replica", "streaming", 5)}
    assert len(fake.posts) == 1 and fake.posts[0].path == "/switchover"
    assert fake.posts[0].prefer[0] == "http://10.0.0.11:8008"  # the leader's own API first
    assert result.warnings == ()
    assert any("new leader seen in Patroni: node-b leads on timeline 5" in line for line in lines)
    assert result.journal_details()["leader_after"] == "node-b"


def test_503_status_unknown_then_leader_change_after_polls_converges_f03():
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(503, "Switchover status unknown")]
    fake.leader_change_after_polls = 5
    plan = plan_switchover(adapters(fake), candidate="node-c")
    calls_before = fake.cluster_calls
    result, lines = run(fake, plan)
    assert result.exit_code == 0 and result.leader_after == "node-c"
    assert len(fake.posts) == 1  # never a second switchover
    assert fake.cluster_calls - calls_before >= 5
    assert any("still in progress" in line for line in lines)
    assert result.patroni_status == 503


def test_503_status_unknown_and_nothing_happens_times_out_exit_9_f03():
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(503, "Switchover status unknown")]
    fake.leader_change_after_polls = None
    plan = plan_switchover(adapters(fake), candidate="node-b", timeout_seconds=10)
    clock = FakeClock()
    result = execute(adapters(fake), plan, clock=clock)
    assert result.outcome == "timed_out" and result.exit_code == ExitCode.TIMEOUT
    assert isinstance(result.error, OperationTimeout)
    assert "timed out after 10s waiting for node-b to lead in Patroni" in result.error.message
    assert "last seen: node-a leader/running tl4" in result.error.message
    assert "do not send another" in (result.error.hint or "")
    assert len(fake.posts) == 1
    assert 10 <= clock.t - 1000.0 < 11  # the timeout, measured on the injected clock


def test_old_leader_rest_api_down_during_polling_is_fine_f03():
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(503, "Switchover status unknown")]
    fake.leader_change_after_polls = 3
    plan = plan_switchover(adapters(fake), candidate="node-b")
    fake.unreachable.add("node-a")  # the fake's get_cluster answers through any member
    result, _ = run(fake, plan)
    assert result.leader_after == "node-b"
    # node-a's API stays down, so it never streams again: that is a timeout on the last step, not a success
    assert result.exit_code == ExitCode.TIMEOUT
    assert "waiting for the old leader node-a to stream as a replica" in result.error.message


def test_412_shows_patroni_body_and_is_not_retried_f02():
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(412, "candidate name does not match with sync_standby")]
    plan = plan_switchover(adapters(fake), candidate="node-b")
    result, _ = run(fake, plan)
    assert result.exit_code == ExitCode.REFUSED and result.outcome == "refused"
    assert result.error.message == "Patroni refused the switchover (HTTP 412): candidate name does not match with sync_standby"
    assert len(fake.posts) == 1 and fake.cluster_calls == 1  # no retry, no polling
    assert [m.label for m in result.moments] == [M_SENT, M_ANSWERED]


@pytest.mark.parametrize("status,text", [(400, "Switchover could be performed only from a specific leader"), (422, "Cannot schedule switchover in the past")])
def test_400_and_422_are_backend_errors_with_the_body(status, text):
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(status, text)]
    result, _ = run(fake, plan_switchover(adapters(fake), candidate="node-b"))
    assert result.exit_code == ExitCode.BACKEND and isinstance(result.error, BackendError)
    assert text in result.error.message and len(fake.posts) == 1


def test_503_switchover_failed_is_an_operation_failure():
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(503, "Switchover failed")]
    fake.leader_change_after_polls = None
    result, _ = run(fake, plan_switchover(adapters(fake), candidate="node-b"))
    assert result.exit_code == ExitCode.FAILED and isinstance(result.error, OperationFailed)
    assert result.error.message == "Patroni answered HTTP 503: Switchover failed; the leader is unchanged"


def test_patroni_switching_to_another_member_is_a_failure():
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(200, 'Switched over to "node-c" instead of "node-b"')]
    fake.promote_instead = "node-c"
    result, _ = run(fake, plan_switchover(adapters(fake), candidate="node-b"))
    assert result.exit_code == ExitCode.FAILED
    assert result.error.message == 'Patroni answered: Switched over to "node-c" instead of "node-b"'


def test_another_leader_at_the_timeout_is_reported_as_failed_not_timeout():
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(503, "Switchover status unknown")]
    fake.promote_instead = "node-c"
    plan = plan_switchover(adapters(fake), candidate="node-b", timeout_seconds=5)
    result, _ = run(fake, plan)
    assert result.exit_code == ExitCode.FAILED and result.leader_after == "node-c"
    assert result.error.message.startswith("node-c leads instead of node-b")


def test_haproxy_never_routing_times_out_with_what_it_saw():
    fake = fp.healthy_cluster()
    rw = FakeRw(fake, never_routes=True)
    a = adapters(fake, rw=rw)
    plan = plan_switchover(a, candidate="node-b", timeout_seconds=6)
    result, _ = run(fake, plan, a)
    assert result.exit_code == ExitCode.TIMEOUT
    assert result.leader_after == "node-b"
    assert "waiting for HAProxy to route read-write to the new leader" in result.error.message
    assert "read-write 127.0.0.1:5000 lands on node-a (in recovery)" in result.error.message
    assert [m.label for m in result.moments] == [M_SENT, M_ANSWERED, M_LEADER]


def test_routing_without_writes_times_out():
    fake = fp.healthy_cluster()
    a = adapters(fake, rw=FakeRw(fake, writable=False))
    result, _ = run(fake, plan_switchover(a, candidate="node-b", timeout_seconds=3), a)
    assert result.exit_code == ExitCode.TIMEOUT and "a write through HAProxy to succeed" in result.error.message


def test_post_reaching_no_member_changes_nothing_exit_5():
    fake = fp.healthy_cluster()
    fake.answers = [BackendUnreachable("patroni: no member accepted POST /switchover: connection refused")]
    result, _ = run(fake, plan_switchover(adapters(fake), candidate="node-b"))
    assert result.exit_code == ExitCode.UNREACHABLE and not result.request_sent
    assert result.outcome == "error"


def test_execute_refuses_a_plan_that_did_not_pass():
    fake = fp.cluster_with_lagging_replica()
    plan = plan_switchover(adapters(fake), candidate="node-b")
    with pytest.raises(PreconditionFailed) as exc:
        execute(adapters(fake), plan, clock=FakeClock())
    assert exc.value.message == "switchover refused by the preflight (1 failed check: candidate lag); nothing was changed"
    assert "--force" in (exc.value.hint or "")
    assert fake.posts == []


def test_forced_checks_are_named_in_the_warnings():
    fake = fp.cluster_with_lagging_replica()
    plan = plan_switchover(adapters(fake), candidate="node-b", force=True)
    result, _ = run(fake, plan)
    assert result.exit_code == 0
    assert result.warnings[0].startswith("--force overrode: candidate lag: 52428800 B behind")
    assert result.journal_details()["forced_checks"] == ["candidate lag"]


# ------------------------------------------------------------------------------------------------ failover


def test_failover_with_a_dead_leader_converges_and_reports_the_old_leader_missing():
    fake = fp.cluster_with_dead_leader()
    fake.answers = [ActionAnswer(503, "Failover status unknown")]
    fake.leader_change_after_polls = 4
    a = adapters(fake)
    plan = plan_failover(a, candidate="node-b")
    checks = checks_by_name(plan)
    assert plan.ok, plan.preflight.blocking
    assert "candidate running" in checks and checks["candidate running"].ok
    assert "not healthy" in checks["leader"].detail and not plan.leader_reachable
    assert "expected while the leader is down" in checks["read-write routing"].detail
    result, _ = run(fake, plan, a)
    assert result.exit_code == 0 and result.leader_after == "node-b"
    assert [m.label for m in result.moments] == [M_SENT, M_ANSWERED, M_LEADER, M_ROUTED, M_WRITABLE]
    assert result.warnings and result.warnings[0].startswith("old leader node-a is not running (state stopped)")
    assert fake.posts[0].path == "/failover" and fake.posts[0].body == {"candidate": "node-b"}
    assert fake.posts[0].prefer[0] == "http://10.0.0.12:8008"  # the candidate's API first: the leader's is down


def test_failover_requires_a_named_candidate():
    with pytest.raises(PreconditionFailed):
        plan_failover(adapters(fp.healthy_cluster()), candidate="")


def test_failover_to_the_leader_is_refused():
    plan = plan_failover(adapters(fp.healthy_cluster()), candidate="node-a")
    assert checks_by_name(plan)["candidate"].detail == "node-a is already the leader; nothing to fail over"
    assert not plan.ok


def test_failover_with_a_healthy_leader_waits_for_the_old_leader():
    fake = fp.healthy_cluster()
    a = adapters(fake)
    plan = plan_failover(a, candidate="node-c")
    assert plan.leader_reachable and "a switchover is the gentler tool" in checks_by_name(plan)["leader"].detail
    result, _ = run(fake, plan, a)
    assert result.exit_code == 0 and result.moments[-1].label == M_OLD_STREAMING


def test_failover_in_sync_mode_needs_the_sync_standby():
    plan = plan_failover(adapters(fp.sync_cluster()), candidate="node-c", force=True)
    assert not plan.ok and not checks_by_name(plan)["synchronous standby"].ok


# ------------------------------------------------------------------------------------------------ the POST itself (F03)


def _listener(behaviour: str):
    """A loopback TCP server: 'hangup' reads the request and closes without answering; 'answer' answers 200."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                seen.append(conn.recv(65536))
                if behaviour == "answer":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 36\r\n\r\nSuccessfully switched over to \"node\"")

    threading.Thread(target=serve, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.getsockname()[1]}", seen


def test_a_post_sent_but_unanswered_is_status_unknown_and_never_sent_elsewhere():
    from gardenctl.backends.patroni import PatroniClient

    hangup, hangup_url, hangup_seen = _listener("hangup")
    other, other_url, other_seen = _listener("answer")
    try:
        client = PatroniClient([hangup_url, other_url])
        answer = client.switchover("node-a", "node-b")
        client.close()
    finally:
        hangup.close()
        other.close()
    assert answer.status == 503 and answer.in_progress
    assert answer.text.startswith(f"status unknown: no answer from {hangup_url} after the request was sent")
    assert len(hangup_seen) == 1 and b"POST /switchover" in hangup_seen[0]
    assert other_seen == []  # a second switchover must not be sent while the first may be running


def test_a_post_that_cannot_connect_moves_on_to_the_next_member():
    import socket

    from gardenctl.backends.patroni import PatroniClient

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there: connection refused, nothing was sent
    other, other_url, other_seen = _listener("answer")
    try:
        client = PatroniClient([closed_url, other_url])
        answer = client.switchover("node-a", "node-b")
        client.close()
    finally:
        other.close()
    assert (answer.status, answer.text) == (200, 'Successfully switched over to "node"')
    assert len(other_seen) == 1
