"""The recorded phase in etcd: claim / record / release by compare-and-set, conflicts, damaged values."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from gardenctl.errors import ExitCode, PreconditionFailed
from gardenctl.ops.migrate.state import HISTORY_LIMIT, PhaseConflict, PhaseStore, parse_state, phase_key
from tests.unit.fakes_kv import FakeKV

T0 = datetime(2025, 1, 31, 10, 0, tzinfo=timezone.utc)


def store(kv: FakeKV | None = None, cluster: str = "prod") -> PhaseStore:
    return PhaseStore(kv or FakeKV(), cluster)


def test_nothing_recorded_reads_as_phase_zero():
    s = store().read()
    assert (s.phase, s.mod_revision, s.recorded, s.claim, s.history) == (0, 0, False, None, ())
    assert s.key == "/gardenos/prod/phase" == phase_key("prod")


def test_claim_then_record_writes_phase_history_and_clears_claim():
    kv = FakeKV()
    st = store(kv)
    seen = st.read()
    claimed = st.claim(seen, to_phase=1, action="apply", by="alice@host", now=T0)
    assert claimed.claim is not None and claimed.claim.to_phase == 1 and claimed.claim.by == "alice@host"
    assert claimed.phase == 0 and claimed.mod_revision == kv.revision
    done = st.record(claimed, to_phase=1, action="apply", by="alice@host", now=T0)
    assert (done.phase, done.claim, done.updated_by, done.updated_at) == (1, None, "alice@host", "2025-01-31T10:00:00Z")
    assert [(t.from_phase, t.to_phase, t.action, t.by) for t in done.history] == [(0, 1, "apply", "alice@host")]
    assert done.history[0].id == claimed.claim.id
    stored = json.loads(kv.get("/gardenos/prod/phase").value)
    assert stored["phase"] == 1 and stored["version"] == 1 and stored["claim"] is None


def test_second_operator_planning_from_the_same_revision_loses_the_claim():
    kv = FakeKV()
    a, b = store(kv), store(kv)
    seen_a, seen_b = a.read(), b.read()
    a.claim(seen_a, to_phase=1, action="apply", by="alice", now=T0)
    writes = len(kv.writes)
    with pytest.raises(PhaseConflict) as err:
        b.claim(seen_b, to_phase=1, action="apply", by="bob", now=T0)
    assert err.value.exit_code == ExitCode.REFUSED
    assert "changed since it was read" in err.value.message and "in progress: apply to phase 1 by alice" in err.value.message
    assert "nothing was changed" in err.value.message
    assert len(kv.writes) == writes  # the loser wrote nothing


def test_a_held_claim_refuses_a_fresh_plan_unless_break_lock():
    kv = FakeKV()
    st = store(kv)
    st.claim(st.read(), to_phase=1, action="apply", by="alice", now=T0)
    fresh = st.read()
    with pytest.raises(PhaseConflict, match="in progress: apply to phase 1 by alice") as err:
        st.claim(fresh, to_phase=1, action="apply", by="bob")
    assert "--break-lock" in (err.value.hint or "")
    taken = st.claim(fresh, to_phase=1, action="apply", by="bob", break_lock=True)
    assert taken.claim.by == "bob"


def test_record_after_someone_broke_the_lock_is_refused():
    kv = FakeKV()
    st = store(kv)
    mine = st.claim(st.read(), to_phase=2, action="apply", by="alice")
    st.claim(st.read(), to_phase=2, action="apply", by="bob", break_lock=True)
    with pytest.raises(PhaseConflict, match="recording the new phase"):
        st.record(mine, to_phase=2, action="apply", by="alice")
    assert st.read().phase == 0


def test_race_between_read_and_cas_is_detected():
    kv = FakeKV()
    st = store(kv)
    seen = st.read()
    kv.before_cas = lambda: kv.put("/gardenos/prod/phase", json.dumps({"phase": 3}))
    with pytest.raises(PhaseConflict, match=r"now phase 3"):
        st.claim(seen, to_phase=1, action="apply", by="alice")


def test_release_keeps_phase_and_notes_the_failure():
    kv = FakeKV()
    st = store(kv)
    claimed = st.record(st.claim(st.read(), to_phase=1, action="apply", by="a"), to_phase=1, action="apply", by="a")
    claimed = st.claim(claimed, to_phase=2, action="apply", by="a")
    after = st.release(claimed, failure={"to": 2, "action": "apply", "error": "timed out"}, now=T0)
    assert (after.phase, after.claim) == (1, None)
    assert after.last_failure == {"to": 2, "action": "apply", "error": "timed out", "at": "2025-01-31T10:00:00Z"}
    assert len(after.history) == 1
    # a later success clears the failure
    again = st.record(st.claim(after, to_phase=2, action="apply", by="a"), to_phase=2, action="apply", by="a")
    assert again.last_failure is None and again.phase == 2


def test_history_is_bounded():
    kv = FakeKV()
    st = store(kv)
    s = st.read()
    for i in range(HISTORY_LIMIT + 5):
        s = st.record(st.claim(s, to_phase=1 + i % 2, action="apply", by="a"), to_phase=1 + i % 2, action="apply", by="a")
    assert len(s.history) == HISTORY_LIMIT
    assert s.history[-1].to_phase == 1 + (HISTORY_LIMIT + 4) % 2


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'{"phase": "two"}', b'{"phase": -1}', b'{"phase": true}', b"\xff\xfe"])
def test_damaged_value_is_flagged_and_never_overwritten(raw):
    kv = FakeKV()
    kv.put("/gardenos/prod/phase", raw)
    st = store(kv)
    s = st.read()
    assert s.unreadable and s.phase == 0 and s.mod_revision > 0
    with pytest.raises(PreconditionFailed, match="unreadable") as err:
        st.claim(s, to_phase=1, action="apply", by="a")
    assert "etcdctl get /gardenos/prod/phase" in (err.value.hint or "")
    assert kv.get("/gardenos/prod/phase").value == raw


def test_parse_is_tolerant_of_unknown_keys_and_bad_history_items():
    raw = json.dumps(
        {"phase": 2, "future_field": {"x": 1}, "history": [{"from": 1, "to": 2, "action": "apply", "at": "t", "by": "b"}, "junk", {"from": "x"}], "claim": "junk"}
    ).encode()
    s = parse_state("prod", "/k", raw, 7)
    assert s.phase == 2 and s.claim is None and len(s.history) == 1 and s.extra == {"future_field": {"x": 1}}
    assert s.to_json()["future_field"] == {"x": 1}  # kept when written back
