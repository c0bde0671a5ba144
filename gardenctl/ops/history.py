"""`gardenctl history`: the operation journal next to Patroni's own timeline history, merged by time.

Patroni's ``GET /history`` lists every timeline switch (``[timeline, lsn, reason, timestamp, new_leader]``): what
happened to the cluster, whoever caused it (gardenctl, patronictl, an automatic failover). The journal says who ran
which gardenctl command and why. Side by side, an automatic failover at 03:12 shows up as a timeline change with no
journal entry next to it.

History must work when the cluster is down: the journal is read from the local state directory, and Patroni is
shown as unreachable with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from gardenctl import journal
from gardenctl.errors import GardenError
from gardenctl.journal import JournalEntry
from gardenctl.model import TimelineEntry


class HistorySource(Protocol):
    def get_history(self) -> tuple[TimelineEntry, ...]: ...


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One row of the merged view. ``source`` is ``gardenctl`` (the journal) or ``patroni`` (a timeline switch)."""

    at: datetime | None
    source: str
    what: str
    outcome: str | None
    who: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class HistoryReport:
    __kind__ = "History"

    context: str | None
    journal_path: str
    journal: tuple[JournalEntry, ...]
    patroni_reachable: bool
    patroni_error: str | None
    timeline: tuple[TimelineEntry, ...]
    events: tuple[HistoryEvent, ...]


def format_lsn(lsn: int | None) -> str:
    """PostgreSQL's notation: 25165984 -> ``0/1800120``."""
    if lsn is None:
        return "?"
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def _journal_event(entry: JournalEntry) -> HistoryEvent:
    d = entry.details
    what = entry.command
    if d.get("leader_before") or d.get("candidate"):
        what += f" {d.get('leader_before') or '?'} -> {d.get('leader_after') or d.get('candidate') or '?'}"
    detail = entry.message
    if entry.reason:
        detail = f"reason: {entry.reason}; {detail}" if detail else f"reason: {entry.reason}"
    if entry.context:
        detail = f"[{entry.context}] {detail}"
    return HistoryEvent(at=entry.at, source="gardenctl", what=what, outcome=entry.outcome, who=entry.who, detail=detail)


def _timeline_event(entry: TimelineEntry) -> HistoryEvent:
    leader = entry.new_leader or "?"
    return HistoryEvent(
        at=entry.at,
        source="patroni",
        what=f"timeline {entry.timeline} -> {entry.timeline + 1}: {leader} promoted",
        outcome=None,
        who=None,
        detail=f"timeline {entry.timeline} ended at LSN {format_lsn(entry.lsn)} ({entry.reason})",
    )


def _sort_key(indexed: tuple[int, HistoryEvent]) -> tuple[datetime, int]:
    index, event = indexed
    at = event.at
    if at is None:
        at = datetime.min.replace(tzinfo=timezone.utc)
    elif at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at, index


def build_history(
    entries: list[JournalEntry] | tuple[JournalEntry, ...],
    timeline: tuple[TimelineEntry, ...],
    *,
    patroni_error: str | None,
    context: str | None,
    journal_path: str,
    limit: int | None = None,
) -> HistoryReport:
    """Merge journal entries and timeline switches by time (entries without a time first, in their own order);
    ``limit`` keeps the newest rows of each list and of the merged view."""
    events = [_journal_event(e) for e in entries] + [_timeline_event(t) for t in timeline]
    merged = [e for _, e in sorted(enumerate(events), key=_sort_key)]
    if limit is not None:
        merged = merged[-limit:] if limit > 0 else []
        entries = list(entries)[-limit:] if limit > 0 else []
        timeline = tuple(timeline)[-limit:] if limit > 0 else ()
    return HistoryReport(
        context=context,
        journal_path=journal_path,
        journal=tuple(entries),
        patroni_reachable=patroni_error is None,
        patroni_error=patroni_error,
        timeline=tuple(timeline),
        events=tuple(merged),
    )


def get_history(
    state_dir: Path | str,
    patroni: HistorySource | None,
    *,
    context: str | None,
    limit: int | None = None,
    patroni_problem: str | None = None,
) -> HistoryReport:
    """Read the journal (only ``context``'s entries when given) and Patroni's timeline history. Patroni failing is
    not an error: the report says it is unreachable and why (``patroni_problem`` when there is no client at all)."""
    entries = journal.read(state_dir, context=context)
    timeline: tuple[TimelineEntry, ...] = ()
    error = patroni_problem if patroni is None else None
    if patroni is not None:
        try:
            timeline = patroni.get_history()
        except GardenError as exc:
            error = exc.message
    elif error is None:
        error = "no cluster selected"
    return build_history(entries, timeline, patroni_error=error, context=context, journal_path=str(journal.journal_path(state_dir)), limit=limit)
