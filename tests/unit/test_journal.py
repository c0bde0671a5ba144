"""The operation journal: append-only JSON lines, mode 0600, safe concurrent appends, tolerant reading."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import stat
from datetime import datetime, timezone

import pytest

from gardenctl import journal
from gardenctl.errors import Aborted, BackendError, BackendUnreachable, GardenError, OperationFailed, OperationTimeout, PreconditionFailed
from gardenctl.model import Moment

AT = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def entry(**kw) -> journal.JournalEntry:
    base = journal.new_entry("switchover", who="op@host", context="prod", command_line="gardenctl switchover --yes", reason="kernel update", at=AT)
    return dataclasses.replace(base, **kw)


def test_record_then_read_round_trips_every_field(tmp_path):
    e = entry(
        outcome=journal.SUCCEEDED,
        message="node-b leads on timeline 5",
        changed=True,
        duration_seconds=6.2345,
        moments=(Moment("request sent", 0.0), Moment("new leader seen in Patroni", 3.1)),
        details={"leader_before": "node-a", "leader_after": "node-b", "timeline_after": 5},
    )
    path = journal.record(tmp_path / "state", e)
    assert path == tmp_path / "state" / "journal.jsonl"
    [back] = journal.read(tmp_path / "state")
    assert back == dataclasses.replace(e, duration_seconds=6.234)  # rounded to milliseconds
    assert back.ok
    line = json.loads(path.read_text())
    assert line["at"] == "2030-01-01T12:00:00Z"
    assert line["who"] == "op@host" and line["reason"] == "kernel update"
    assert line["moments"] == [{"label": "request sent", "seconds": 0.0}, {"label": "new leader seen in Patroni", "seconds": 3.1}]


def test_file_is_private_and_dir_is_created(tmp_path):
    state = tmp_path / "deep" / "state"
    journal.record(state, entry())
    assert stat.S_IMODE(os.stat(state / "journal.jsonl").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700


def test_a_too_open_existing_file_is_tightened(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text("")
    os.chmod(path, 0o644)
    journal.record(tmp_path, entry())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_append_only_keeps_order_and_limit_returns_the_newest(tmp_path):
    for i in range(5):
        journal.record(tmp_path, entry(message=f"op {i}"))
    assert [e.message for e in journal.read(tmp_path)] == [f"op {i}" for i in range(5)]
    assert [e.message for e in journal.read(tmp_path, limit=2)] == ["op 3", "op 4"]
    assert journal.read(tmp_path, limit=0) == []


def test_context_filter(tmp_path):
    journal.record(tmp_path, entry(context="prod", message="p"))
    journal.record(tmp_path, entry(context="lab", message="l"))
    assert [e.message for e in journal.read(tmp_path, context="lab")] == ["l"]


def test_missing_journal_is_empty(tmp_path):
    assert journal.read(tmp_path / "nothing") == []


def test_damaged_lines_are_shown_not_fatal(tmp_path):
    journal.record(tmp_path, entry(message="before"))
    with open(tmp_path / "journal.jsonl", "a") as fh:
        fh.write('{"command": "switch\n[1, 2]\n')
    journal.record(tmp_path, entry(message="after", at=None))
    entries = journal.read(tmp_path)
    assert [e.outcome for e in entries] == [journal.FAILED, journal.UNREADABLE, journal.UNREADABLE, journal.FAILED]
    assert entries[1].message.endswith(':2: not a journal entry: {"command": "switch')
    assert entries[3].message == "after" and entries[3].at is None


def test_unknown_keys_and_values_are_tolerated(tmp_path):
    (tmp_path / "journal.jsonl").write_text(json.dumps({"command": "drill", "outcome": "partially", "at": "yesterday", "moments": [{"label": "x", "seconds": "soon"}], "new_field": 1}) + "\n")
    [e] = journal.read(tmp_path)
    assert (e.command, e.outcome, e.at, e.moments, e.who) == ("drill", "partially", None, (), "?")


def _append_many(state: str, worker: int, count: int) -> None:
    for i in range(count):
        journal.record(state, entry(message=f"w{worker}-{i}", details={"pad": "x" * 3000}))


def test_concurrent_appends_never_interleave(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w, 40)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    entries = journal.read(tmp_path)
    assert len(entries) == 240
    assert all(e.outcome != journal.UNREADABLE for e in entries)
    assert sorted(e.message for e in entries) == sorted(f"w{w}-{i}" for w in range(6) for i in range(40))
    for w in range(6):  # each writer's own entries stay in order
        mine = [e.message for e in entries if e.message.startswith(f"w{w}-")]
        assert mine == [f"w{w}-{i}" for i in range(40)]


def test_unwritable_state_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(GardenError) as exc:
        journal.record(blocker / "state", entry())
    assert "cannot write the operation journal" in exc.value.message
    assert "GARDENCTL_STATE_DIR" in (exc.value.hint or "")


@pytest.mark.parametrize(
    "exc,outcome",
    [
        (OperationTimeout("t"), journal.TIMED_OUT),
        (PreconditionFailed("p"), journal.REFUSED),
        (Aborted("a"), journal.ABORTED),
        (KeyboardInterrupt(), journal.ABORTED),
        (BackendUnreachable("u"), journal.ERROR),
        (BackendError("e"), journal.ERROR),
        (OperationFailed("f"), journal.FAILED),
    ],
)
def test_outcome_for_error(exc, outcome):
    assert journal.outcome_for_error(exc) == outcome
