"""The arithmetic of a drill: gaps between successful writes, lost and unacknowledged rows, split brain.

Pure functions over probe records, so every rule here is unit-tested on synthetic data. Times are seconds on one
monotonic clock, counted from the start of the drill.

Definitions (also in docs/benchmarks/drills.md):

- An attempt is *acknowledged* when the server answered the INSERT with its row (``RETURNING``). Its commit happened
  somewhere in ``[started, finished]``: that interval is all a client can know.
- *Write-unavailable window*: the longest time between two consecutive acknowledgements (by ``finished``). With no
  acknowledgement after the last one until the probe stopped, that tail counts too (writes never came back).
- *Total write-unavailable time*: the sum of every such gap longer than ``outage_gap_seconds`` (by default three
  probe intervals, at least 0.25 s): short jitter is not an outage.
- *Acknowledged writes lost*: acknowledged ids missing from the primary after recovery.
- *Rows present but never acknowledged*: ids the probe tried, got an error (or no answer) for, and that exist anyway —
  the commit reached the server but its answer did not reach the client (in doubt, not lost).
- *Split brain*: a writer identity is (server address, timeline). A healthy cluster has one writer at a time, and a
  server that loses the primary role can only write again on a newer timeline. We report split brain when an
  acknowledged write of one writer lies entirely inside the definite span of another writer (the span from its
  first acknowledgement to the start of its last acknowledged attempt: it surely accepted writes at both ends), or
  when a write on an older timeline was acknowledged after a write on a newer timeline had been acknowledged.
  Overlapping *uncertainty* (an attempt that was in flight while another server answered) is not evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Attempt:
    """One probe attempt. ``server`` is ``host:port`` as the server itself reported it (``inet_server_addr``)."""

    id: int
    started: float
    finished: float
    ok: bool
    server: str | None = None
    timeline: int | None = None
    in_recovery: bool | None = None
    error: str | None = None

    @property
    def writer(self) -> tuple[str, int | None] | None:
        return (self.server, self.timeline) if self.ok and self.server else None


@dataclass(frozen=True, slots=True)
class Gap:
    """Time without a successful attempt: from the ``start`` acknowledgement to the ``end`` one (or the probe end)."""

    start: float
    end: float
    open_ended: bool = False

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Availability:
    attempts: int
    succeeded: int
    failed: int
    longest_gap: Gap | None
    outages: tuple[Gap, ...]
    first_success: float | None
    last_success: float | None

    @property
    def longest_gap_seconds(self) -> float | None:
        return self.longest_gap.seconds if self.longest_gap is not None else None

    @property
    def outage_seconds(self) -> float:
        return sum(g.seconds for g in self.outages)

    @property
    def recovered(self) -> bool:
        """Writes (or reads) were succeeding when the probe stopped."""
        return self.longest_gap is None or not self.longest_gap.open_ended


def default_outage_gap(rate_per_second: float) -> float:
    return max(0.25, 3.0 / rate_per_second) if rate_per_second > 0 else 0.25


def availability(attempts: Sequence[Attempt], *, probe_end: float, outage_gap_seconds: float) -> Availability:
    """Gaps between successful attempts (by the time their answer arrived).

    The tail from the last success to ``probe_end`` counts as a gap (``open_ended``) when it is longer than
    ``outage_gap_seconds``; a probe that never succeeded has one open gap from its first attempt to its end.
    """
    acks = sorted(a.finished for a in attempts if a.ok)
    failed = sum(1 for a in attempts if not a.ok)
    gaps: list[Gap] = [Gap(prev, cur) for prev, cur in zip(acks, acks[1:])]
    if acks:
        if probe_end - acks[-1] > outage_gap_seconds:
            gaps.append(Gap(acks[-1], probe_end, open_ended=True))
    elif attempts:
        gaps.append(Gap(min(a.started for a in attempts), probe_end, open_ended=True))
    longest = max(gaps, key=lambda g: g.seconds) if gaps else None
    outages = tuple(g for g in gaps if g.seconds > outage_gap_seconds)
    return Availability(
        attempts=len(attempts),
        succeeded=len(acks),
        failed=failed,
        longest_gap=longest,
        outages=outages,
        first_success=acks[0] if acks else None,
        last_success=acks[-1] if acks else None,
    )


READ_ONLY_REFUSAL = "read-only transaction"


def misrouted(attempts: Iterable[Attempt], since: float) -> list[Attempt]:
    """Write attempts from ``since`` on that a server refused as read-only: the read-write port led to a server that
    was not (or not yet) a writable primary - a replica HAProxy still counted as UP, or a leader still promoting."""
    return [a for a in attempts if not a.ok and a.started >= since and a.error and READ_ONLY_REFUSAL in a.error]


@dataclass(frozen=True, slots=True)
class Durability:
    acknowledged: int
    present: int
    lost: tuple[int, ...]
    unacknowledged_present: tuple[int, ...]
    never_attempted_present: tuple[int, ...] = ()


def durability(attempts: Iterable[Attempt], present_ids: Iterable[int]) -> Durability:
    """Compare what the probe was told with what the primary holds after recovery."""
    attempts = list(attempts)
    acked = {a.id for a in attempts if a.ok}
    tried = {a.id for a in attempts}
    present = set(present_ids)
    return Durability(
        acknowledged=len(acked),
        present=len(present),
        lost=tuple(sorted(acked - present)),
        unacknowledged_present=tuple(sorted((present & tried) - acked)),
        never_attempted_present=tuple(sorted(present - tried)),
    )


@dataclass(frozen=True, slots=True)
class WriterSpan:
    """What one writer (server, timeline) is known to have done."""

    server: str
    timeline: int | None
    writes: int
    first_started: float
    first_ack: float
    last_started: float
    last_ack: float

    @property
    def definite(self) -> tuple[float, float] | None:
        """The interval during which this writer surely accepted writes at both ends; None for a single write."""
        if self.last_started > self.first_ack:
            return (self.first_ack, self.last_started)
        return None

    @property
    def label(self) -> str:
        return f"{self.server} (timeline {self.timeline if self.timeline is not None else '?'})"


def writer_spans(attempts: Iterable[Attempt]) -> tuple[WriterSpan, ...]:
    spans: dict[tuple[str, int | None], list[Attempt]] = {}
    for a in attempts:
        key = a.writer
        if key is not None:
            spans.setdefault(key, []).append(a)
    out = []
    for (server, timeline), rows in spans.items():
        out.append(
            WriterSpan(
                server=server,
                timeline=timeline,
                writes=len(rows),
                first_started=min(r.started for r in rows),
                first_ack=min(r.finished for r in rows),
                last_started=max(r.started for r in rows),
                last_ack=max(r.finished for r in rows),
            )
        )
    return tuple(sorted(out, key=lambda s: (s.first_ack, s.server)))


def split_brain(attempts: Sequence[Attempt]) -> tuple[str, ...]:
    """Evidence that two writers accepted writes at the same time; empty when there is none (see module doc)."""
    evidence: list[str] = []
    spans = writer_spans(attempts)
    acked = [a for a in attempts if a.writer is not None]
    for span in spans:
        window = span.definite
        if window is None:
            continue
        inside = [
            a for a in acked if a.writer != (span.server, span.timeline) and a.started > window[0] and a.finished < window[1]
        ]
        if inside:
            others = sorted({f"{a.server} (timeline {a.timeline if a.timeline is not None else '?'})" for a in inside})
            evidence.append(
                f"{span.label} accepted writes from {window[0]:.2f}s to {window[1]:.2f}s while "
                f"{', '.join(others)} also acknowledged {len(inside)} write(s) in that interval"
            )
    newest_ack_by_timeline: dict[int, float] = {}
    for a in acked:
        if a.timeline is not None:
            newest_ack_by_timeline[a.timeline] = min(newest_ack_by_timeline.get(a.timeline, a.finished), a.finished)
    for a in sorted(acked, key=lambda x: x.started):
        if a.timeline is None:
            continue
        newer = [tl for tl, first_ack in newest_ack_by_timeline.items() if tl > a.timeline and first_ack < a.started]
        if newer:
            evidence.append(
                f"write {a.id} was acknowledged by {a.server} on timeline {a.timeline} at {a.finished:.2f}s, after "
                f"timeline {max(newer)} had already acknowledged writes"
            )
            break
    return tuple(evidence)


@dataclass(frozen=True, slots=True)
class RoleSample:
    """One poll of one member's own view (``GET /patroni``): ``sent``/``received`` bound when it was true."""

    member: str
    sent: float
    received: float
    primary: bool


def max_concurrent_primaries(samples: Sequence[RoleSample]) -> tuple[int, tuple[str, ...]]:
    """How many members surely claimed the primary role at the same moment, and which.

    Per member, consecutive samples claiming primary form a run. A claim was true at some instant between the poll's
    request and its answer, so a run surely covers the span from its first answer to its last request. Two runs of
    different members are concurrent when those spans intersect, or when one whole sample of one run (request to
    answer) lies inside the other's span. Polling jitter alone never makes two primaries.
    """
    from itertools import combinations

    runs: list[tuple[str, list[RoleSample]]] = []
    by_member: dict[str, list[RoleSample]] = {}
    for s in sorted(samples, key=lambda x: x.sent):
        by_member.setdefault(s.member, []).append(s)
    for member, rows in by_member.items():
        current: list[RoleSample] = []
        for s in [*rows, RoleSample(member, float("inf"), float("inf"), False)]:
            if s.primary:
                current.append(s)
            elif current:
                runs.append((member, current))
                current = []
    if not runs:
        return 0, ()

    def span(run: list[RoleSample]) -> tuple[float, float] | None:
        lo, hi = run[0].received, run[-1].sent
        return (lo, hi) if hi >= lo else None

    def concurrent(a: list[RoleSample], b: list[RoleSample]) -> bool:
        sa, sb = span(a), span(b)
        if sa and sb and max(sa[0], sb[0]) <= min(sa[1], sb[1]):
            return True
        if sa and any(sa[0] <= s.sent and s.received <= sa[1] for s in b):
            return True
        return bool(sb and any(sb[0] <= s.sent and s.received <= sb[1] for s in a))

    best: tuple[int, tuple[str, ...]] = (1, (runs[0][0],))
    for size in range(2, len(by_member) + 1):
        for combo in combinations(range(len(runs)), size):
            members = {runs[i][0] for i in combo}
            if len(members) == size and all(concurrent(runs[i][1], runs[j][1]) for i, j in combinations(combo, 2)):
                if size > best[0]:
                    best = (size, tuple(sorted(members)))
    return best


def leader_sequence(observed: Iterable[str | None]) -> tuple[str, ...]:
    """The distinct leaders in the order seen, ignoring polls with no leader or no answer."""
    out: list[str] = []
    for name in observed:
        if name and (not out or out[-1] != name):
            out.append(name)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LeaderChange:
    """Patroni's own leader change, from each member's own /patroni answers (resolution: one poll): from the last
    answer in which the old leader was a running primary (a demotion first shows state "stopping") to the first in
    which the new leader was."""

    old_last_primary: float | None  # answer time of the old leader's last "primary" before the new one said so
    new_first_primary: float | None  # answer time of the new leader's first "primary"

    @property
    def seconds(self) -> float | None:
        if self.old_last_primary is None or self.new_first_primary is None:
            return None
        return max(self.new_first_primary - self.old_last_primary, 0.0)


def leader_change(samples: Sequence[RoleSample], old: str | None, new: str | None, after: float) -> LeaderChange:
    """When ``old`` last said it was primary and ``new`` first did, after ``after`` (the fault)."""
    if not old or not new or old == new:
        return LeaderChange(None, None)
    ordered = sorted(samples, key=lambda s: s.received)
    first_new = next((s.received for s in ordered if s.member == new and s.primary and s.received >= after), None)
    if first_new is None:
        return LeaderChange(None, None)
    last_old = None
    for s in ordered:
        if s.member == old and s.primary and s.received <= first_new:
            last_old = s.received
    return LeaderChange(last_old, first_new)
