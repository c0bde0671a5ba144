"""The operation journal: one JSON object per line in ``<state dir>/journal.jsonl``, appended by every mutating command.

An entry says when (UTC), who, on which context, the command line, the reason given, the outcome, and the moments
(seconds from the start) the command observed. It is written even when the operation fails, times out, is refused
or is aborted, so the journal answers "who did what to this cluster, and did it work" - the same question an auditor
and the next on-call ask.

Small on purpose: `JournalEntry`, `record(state_dir, entry)`, `read(state_dir, limit)`, and `outcome_for_error(exc)`
to name the outcome of a command that ended with an exception.

Concurrency and safety: the file is created with mode 0600 (the reason text may name customers or incidents), each
entry is one ``write()`` of a complete line under an exclusive ``flock``, and fsync'ed. Two gardenctl processes
appending at once never interleave lines. A damaged line (a crash mid-write on a filesystem without O_APPEND
atomicity, a hand edit) is not fatal: `read` returns it as an entry with outcome ``unreadable``.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gardenctl.errors import Aborted, BackendError, BackendUnreachable, GardenError, OperationTimeout, PreconditionFailed
from gardenctl.model import Moment

JOURNAL_FILE = "journal.jsonl"

# The outcomes a command can record. `read` keeps any other value as it is (a newer gardenctl may add some).
SUCCEEDED = "succeeded"  # the operation ran and its result was verified
SCHEDULED = "scheduled"  # accepted for later (a scheduled switchover); verified as scheduled
REFUSED = "refused"  # gardenctl (preflight, no TTY) or the backend (e.g. Patroni 412) refused: nothing changed
ABORTED = "aborted"  # the operator said no, or pressed Ctrl-C
FAILED = "failed"  # it ran but did not reach or verify the state asked for
TIMED_OUT = "timed_out"  # gave up waiting for convergence; the cluster may still be converging
ERROR = "error"  # a backend could not be reached or answered with an error
UNREADABLE = "unreadable"  # only from `read`: a line that is not a valid entry
OUTCOMES = (SUCCEEDED, SCHEDULED, REFUSED, ABORTED, FAILED, TIMED_OUT, ERROR)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One operation. ``at`` is when it started (UTC). ``details`` is command-specific (from/to members, timelines,
    the backend's answer...), plain JSON values only. ``changed`` says whether anything may have been changed (a
    request was sent), so a refused or aborted attempt is told apart from a failed one at a glance."""

    command: str
    outcome: str
    at: datetime | None
    who: str
    context: str | None
    command_line: str
    reason: str | None = None
    message: str = ""
    changed: bool = False
    duration_seconds: float | None = None
    moments: tuple[Moment, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def ok(self) -> bool:
        return self.outcome in (SUCCEEDED, SCHEDULED)

    def to_json(self) -> dict[str, Any]:
        at = self.at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if self.at is not None else None
        return {
            "id": self.id,
            "at": at,
            "command": self.command,
            "outcome": self.outcome,
            "who": self.who,
            "context": self.context,
            "command_line": self.command_line,
            "reason": self.reason,
            "message": self.message,
            "changed": self.changed,
            "duration_seconds": None if self.duration_seconds is None else round(self.duration_seconds, 3),
            "moments": [{"label": m.label, "seconds": round(m.seconds, 3)} for m in self.moments],
            "details": self.details,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> "JournalEntry":
        """Tolerant: unknown keys ignored, missing ones defaulted; a bad time becomes None, never a crash."""
        moments = []
        for m in data.get("moments") or ():
            if isinstance(m, dict) and isinstance(m.get("seconds"), (int, float)) and not isinstance(m.get("seconds"), bool):
                moments.append(Moment(str(m.get("label", "?")), float(m["seconds"])))
        duration = data.get("duration_seconds")
        return JournalEntry(
            id=str(data.get("id") or ""),
            at=_parse_time(data.get("at")),
            command=str(data.get("command") or "?"),
            outcome=str(data.get("outcome") or "?"),
            who=str(data.get("who") or "?"),
            context=None if data.get("context") is None else str(data["context"]),
            command_line=str(data.get("command_line") or ""),
            reason=None if data.get("reason") is None else str(data["reason"]),
            message=str(data.get("message") or ""),
            changed=bool(data.get("changed", False)),
            duration_seconds=float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) else None,
            moments=tuple(moments),
            details=dict(data["details"]) if isinstance(data.get("details"), dict) else {},
        )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def journal_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / JOURNAL_FILE


def record(state_dir: Path | str, entry: JournalEntry) -> Path:
    """Append ``entry`` to the journal in ``state_dir`` (created with mode 0700, the file with 0600) and return the
    file's path. Raises `GardenError` when the state directory cannot be written."""
    path = journal_path(state_dir)
    line = (json.dumps(entry.to_json(), sort_keys=False, default=str, ensure_ascii=False) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise GardenError(
            f"cannot write the operation journal {path}: {exc.strerror or exc}",
            hint="set GARDENCTL_STATE_DIR to a writable directory",
        ) from exc
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError as exc:
        raise GardenError(f"cannot write the operation journal {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    return path


def read(state_dir: Path | str, limit: int | None = None, *, context: str | None = None) -> list[JournalEntry]:
    """The journal's entries, oldest first; with ``limit`` only the newest ``limit``; with ``context`` only that
    context's. A missing journal is empty. A line that is not a valid entry comes back with outcome ``unreadable``."""
    path = journal_path(state_dir)
    try:
        with open(path, "rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
            try:
                raw_lines = fh.read().splitlines()
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise GardenError(f"cannot read the operation journal {path}: {exc.strerror or exc}") from exc
    entries: list[JournalEntry] = []
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            entry = JournalEntry.from_json(data)
        except (ValueError, UnicodeDecodeError):
            text = raw.decode(errors="replace")
            entry = JournalEntry(
                id=f"line-{number}",
                command="?",
                outcome=UNREADABLE,
                at=None,
                who="?",
                context=None,
                command_line="",
                message=f"{path}:{number}: not a journal entry: {text[:120]}",
            )
        if context is not None and entry.outcome != UNREADABLE and entry.context != context:
            continue
        entries.append(entry)
    if limit is not None:
        entries = entries[-limit:] if limit > 0 else []
    return entries


def outcome_for_error(exc: BaseException) -> str:
    """The outcome to record for a command that ended with ``exc``."""
    if isinstance(exc, OperationTimeout):
        return TIMED_OUT
    if isinstance(exc, PreconditionFailed):
        return REFUSED
    if isinstance(exc, (Aborted, KeyboardInterrupt)):
        return ABORTED
    if isinstance(exc, (BackendUnreachable, BackendError)):
        return ERROR
    return FAILED


def new_entry(
    command: str,
    *,
    who: str,
    context: str | None,
    command_line: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> JournalEntry:
    """An entry for an operation starting now, outcome still ``failed`` until the caller says otherwise
    (`dataclasses.replace` it with the real outcome before `record`)."""
    return JournalEntry(command=command, outcome=FAILED, at=at or _utc_now(), who=who, context=context, command_line=command_line, reason=reason)
