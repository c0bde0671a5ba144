"""The drill's arithmetic on synthetic probe records: gaps, lost and unacknowledged rows, split brain."""

from __future__ import annotations

from gardenctl.ops.drill.measure import (
    Attempt,
    LeaderChange,
    RoleSample,
    availability,
    default_outage_gap,
    durability,
    leader_change,
    leader_sequence,
    max_concurrent_primaries,
    misrouted,
    split_brain,
    writer_spans,
)

A = "10.0.0.11:5432"
B = "10.0.0.12:5432"


def ok(i: int, start: float, server: str = A, timeline: int | None = 3, took: float = 0.01) -> Attempt:
    return Attempt(i, start, round(start + took, 6), True, server=server, timeline=timeline)


def err(i: int, start: float, took: float = 0.01, error: str = "connection refused") -> Attempt:
    return Attempt(i, start, round(start + took, 6), False, error=error)


def steady(first_id: int, t0: float, t1: float, server: str = A, timeline: int | None = 3, every: float = 0.05) -> list[Attempt]:
    out, t, i = [], t0, first_id
    while t < t1 - 1e-9:
        out.append(ok(i, round(t, 6), server, timeline))
        t += every
        i += 1
    return out


def test_default_outage_gap_is_three_intervals_but_at_least_a_quarter_second():
    assert default_outage_gap(20) == 0.25
    assert default_outage_gap(5) == 0.6
    assert default_outage_gap(0) == 0.25


def test_longest_gap_is_between_consecutive_acknowledgements():
    attempts = steady(1, 0.0, 2.0) + [err(100 + k, 2.0 + k * 0.05) for k in range(40)] + steady(200, 4.0, 5.0)
    av = availability(attempts, probe_end=5.0, outage_gap_seconds=0.25)
    assert av.attempts == len(attempts)
    assert av.failed == 40
    assert av.succeeded == 60
    assert round(av.longest_gap_seconds, 3) == 2.05  # last ack 1.96 -> first ack again 4.01
    assert len(av.outages) == 1
    assert round(av.outage_seconds, 3) == 2.05
    assert av.recovered


def test_total_adds_every_outage_and_ignores_jitter():
    attempts = steady(1, 0.0, 1.0) + steady(100, 1.5, 2.0) + steady(200, 3.0, 3.5) + [ok(300, 3.6)]
    av = availability(attempts, probe_end=3.62, outage_gap_seconds=0.25)
    gaps = sorted(round(g.seconds, 3) for g in av.outages)
    assert gaps == [0.55, 1.05]
    assert round(av.outage_seconds, 3) == 1.6
    assert round(av.longest_gap_seconds, 3) == 1.05


def test_writes_that_never_come_back_leave_an_open_ended_gap():
    attempts = steady(1, 0.0, 1.0) + [err(50, 1.0 + k * 0.1) for k in range(20)]
    av = availability(attempts, probe_end=4.0, outage_gap_seconds=0.25)
    assert av.longest_gap is not None and av.longest_gap.open_ended
    assert round(av.longest_gap_seconds, 3) == 3.04
    assert not av.recovered


def test_no_success_at_all_is_one_gap_over_the_whole_probe():
    attempts = [err(i, 0.5 + i * 0.05) for i in range(10)]
    av = availability(attempts, probe_end=3.0, outage_gap_seconds=0.25)
    assert av.succeeded == 0
    assert round(av.longest_gap_seconds, 3) == 2.5  # from the first attempt to the end
    assert av.first_success is None


def test_no_attempts_no_gap():
    av = availability([], probe_end=3.0, outage_gap_seconds=0.25)
    assert av.longest_gap is None and av.outages == () and av.recovered


def test_durability_lost_and_unacknowledged_sets():
    attempts = [ok(1, 0.0), ok(2, 0.05), ok(3, 0.1), err(4, 0.15), err(5, 0.2), ok(6, 0.25)]
    present = {1, 3, 5, 6, 99}
    d = durability(attempts, present)
    assert d.acknowledged == 4
    assert d.present == 5
    assert d.lost == (2,)
    assert d.unacknowledged_present == (5,)
    assert d.never_attempted_present == (99,)


def test_clean_switchover_is_not_split_brain():
    attempts = steady(1, 0.0, 2.0, A, 3) + [err(100, 2.0, took=1.0)] + steady(200, 3.0, 5.0, B, 4)
    assert split_brain(attempts) == ()
    spans = writer_spans(attempts)
    assert [(s.server, s.timeline, s.writes) for s in spans] == [(A, 3, 40), (B, 4, 40)]


def test_switching_back_on_a_newer_timeline_is_not_split_brain():
    attempts = steady(1, 0.0, 1.0, A, 3) + steady(100, 2.0, 3.0, B, 4) + steady(200, 4.0, 5.0, A, 5)
    assert split_brain(attempts) == ()


def test_overlapping_uncertainty_is_not_evidence():
    # One slow commit on A was in flight while B already answered: its commit may have happened before B's.
    attempts = steady(1, 0.0, 1.0, A, 3) + [ok(50, 0.95, A, 3, took=0.5)] + steady(100, 1.2, 2.0, B, 4)
    assert split_brain(attempts) == ()


def test_two_servers_accepting_writes_in_the_same_interval_is_split_brain():
    old = steady(1, 0.0, 4.0, A, 3)
    new = [ok(1000 + k, 2.0 + k * 0.1, B, 4) for k in range(10)]  # B acknowledged while A kept acknowledging
    evidence = split_brain(old + new)
    assert len(evidence) >= 1
    assert evidence[0].startswith(f"{A} (timeline 3) accepted writes from 0.01s to 3.95s while {B} (timeline 4) also acknowledged 10 write(s)")


def test_older_timeline_acknowledged_after_a_newer_one_is_split_brain():
    attempts = steady(1, 0.0, 1.0, A, 3) + [ok(100, 1.5, B, 4)] + [ok(101, 2.0, A, 3)]
    evidence = split_brain(attempts)
    assert any("write 101 was acknowledged by 10.0.0.11:5432 on timeline 3" in e and "timeline 4" in e for e in evidence)


def rs(member: str, t: float, primary: bool, took: float = 0.01) -> RoleSample:
    return RoleSample(member, t, t + took, primary)


def test_one_primary_at_a_time_through_a_switchover():
    samples = [rs("a", t / 4, True) for t in range(0, 8)] + [rs("a", 2.25, False), rs("a", 2.5, False)]
    samples += [rs("b", t / 4, False) for t in range(0, 9)] + [rs("b", 2.3, True), rs("b", 2.55, True)]
    assert max_concurrent_primaries(samples) == (1, ("a",))


def test_polling_jitter_alone_does_not_make_two_primaries():
    # a was last seen primary at 1.0 (request) .. 1.01 (answer); b first seen primary at 1.005 .. 1.3: both claims
    # were true at some instant of their own polls, which may not be the same instant.
    samples = [rs("a", 0.5, True), rs("a", 1.0, True), rs("a", 1.3, False), rs("b", 1.005, True, took=0.3), rs("b", 1.5, True)]
    assert max_concurrent_primaries(samples)[0] == 1


def test_two_members_claiming_primary_over_the_same_span():
    samples = [rs("a", t / 4, True) for t in range(0, 12)] + [rs("b", 1.0, True), rs("b", 1.25, True), rs("b", 1.5, True)]
    assert max_concurrent_primaries(samples) == (2, ("a", "b"))


def test_no_primary_seen():
    assert max_concurrent_primaries([rs("a", 0.0, False)]) == (0, ())


def test_leader_sequence_ignores_gaps_and_repeats():
    assert leader_sequence(["a", "a", None, "a", None, "b", "b", None, "b"]) == ("a", "b")
    assert leader_sequence([None, None]) == ()
    assert leader_sequence(["a", "b", "a"]) == ("a", "b", "a")


def test_leader_change_from_each_members_own_answers():
    samples = [rs("a", t / 10, True) for t in range(0, 21)] + [rs("a", 2.2, False), rs("a", 2.4, False)]
    samples += [rs("b", t / 10, False) for t in range(0, 30)] + [rs("b", 3.05, True), rs("b", 3.2, True)]
    change = leader_change(samples, "a", "b", after=1.0)
    assert change.old_last_primary == 2.01
    assert round(change.new_first_primary, 3) == 3.06
    assert round(change.seconds, 3) == 1.05


def test_leader_change_unknown_without_a_new_primary_or_a_change():
    samples = [rs("a", 0.0, True), rs("a", 1.0, True)]
    assert leader_change(samples, "a", "a", after=0.0).seconds is None
    assert leader_change(samples, "a", "b", after=0.0).seconds is None
    # the old leader was never seen as primary (killed before the first poll): the start is unknown
    assert leader_change([rs("b", 5.0, True)], "a", "b", after=0.0) == LeaderChange(None, 5.01)


def test_writes_refused_read_only_after_the_fault_count_as_misrouted():
    ro = "cannot execute INSERT in a read-only transaction"
    attempts = [
        err(1, 0.5, error=ro),  # before the fault: not this drill's doing
        ok(2, 1.0),
        err(3, 2.0, error="connection refused"),
        err(4, 3.1, error=ro),
        err(5, 3.15, error=ro),
        ok(6, 3.2, server=B),
    ]
    got = misrouted(attempts, since=1.0)
    assert [a.id for a in got] == [4, 5]
    assert misrouted(attempts, since=4.0) == []
