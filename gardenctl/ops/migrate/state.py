"""The recorded phase of one cluster, kept in the cluster's own etcd and changed only by compare-and-set.

Key: ``/gardenos/<cluster>/phase`` where ``<cluster>`` is the context's ``scope`` (the Patroni scope: the same for
every operator of that cluster, whatever they named their context), else the context name. Value: one JSON document

.. code-block:: json

    {"version": 1, "phase": 2, "updated_at": "2025-01-31T10:00:00Z", "updated_by": "op@host",
     "history": [{"from": 1, "to": 2, "action": "apply", "at": "...", "by": "op@host", "forced": false, "id": "..."}],
     "claim": null,
     "last_failure": null}

- ``claim`` is set while an operator migrates (``{"id", "to", "action", "by", "at"}``): taking it is a CAS on the
  revision the plan was made from, so of two operators who planned from the same state only the first gets it; the
  second is refused before anything is applied. A claim left by a crashed run blocks others until it is released
  (``--break-lock``).
- A successful migration replaces phase, appends to ``history`` (newest last, the last `HISTORY_LIMIT` kept) and
  clears the claim, again by CAS on the claimed revision. A failed one clears the claim and sets ``last_failure``;
  the phase does not change.

Phase 0 (no key) means nothing was ever recorded.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from gardenctl.errors import OperationFailed, PreconditionFailed

KEY_PREFIX = "/gardenos"
HISTORY_LIMIT = 100
SCHEMA_VERSION = 1


class KeyValueStore(Protocol):
    """What the phase store needs from etcd (`gardenctl.backends.etcd.EtcdClient` provides it)."""

    def get(self, key: str | bytes) -> Any: ...  # KeyValue | None with .value (bytes) and .mod_revision

    def compare_and_set(self, key: str | bytes, value: str | bytes, *, expected_mod_revision: int | None) -> bool: ...


class PhaseConflict(PreconditionFailed):
    """Someone else changed the recorded phase (or claimed it) since it was read: nothing was done."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded phase change."""

    from_phase: int
    to_phase: int
    action: str  # apply | rollback | reapply
    at: str
    by: str
    forced: bool = False
    id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"from": self.from_phase, "to": self.to_phase, "action": self.action, "at": self.at, "by": self.by, "forced": self.forced, "id": self.id}

    @staticmethod
    def from_json(data: Any) -> "Transition | None":
        if not isinstance(data, dict):
            return None
        try:
            return Transition(
                from_phase=int(data.get("from") or 0),
                to_phase=int(data.get("to") or 0),
                action=str(data.get("action") or "?"),
                at=str(data.get("at") or ""),
                by=str(data.get("by") or "?"),
                forced=bool(data.get("forced", False)),
                id=str(data.get("id") or ""),
            )
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class Claim:
    """An operator's migration in progress."""

    id: str
    to_phase: int
    action: str
    by: str
    at: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "to": self.to_phase, "action": self.action, "by": self.by, "at": self.at}

    @staticmethod
    def from_json(data: Any) -> "Claim | None":
        if not isinstance(data, dict):
            return None
        try:
            return Claim(str(data.get("id") or ""), int(data.get("to") or 0), str(data.get("action") or "?"), str(data.get("by") or "?"), str(data.get("at") or ""))
        except (TypeError, ValueError):
            return None

    def describe(self) -> str:
        return f"{self.action} to phase {self.to_phase} by {self.by} since {self.at}"


@dataclass(frozen=True, slots=True)
class PhaseState:
    """The recorded phase as read, with the etcd ``mod_revision`` it was read at (0: no key)."""

    __kind__ = "PhaseState"

    cluster: str
    key: str
    phase: int
    mod_revision: int
    updated_at: str | None = None
    updated_by: str | None = None
    history: tuple[Transition, ...] = ()
    claim: Claim | None = None
    last_failure: dict[str, Any] | None = None
    unreadable: str | None = None  # why the stored value could not be parsed (then phase is 0 and nothing may change)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def recorded(self) -> bool:
        return self.mod_revision > 0

    def to_json(self) -> dict[str, Any]:
        doc = dict(self.extra)
        doc.update(
            {
                "version": SCHEMA_VERSION,
                "phase": self.phase,
                "updated_at": self.updated_at,
                "updated_by": self.updated_by,
                "history": [t.to_json() for t in self.history[-HISTORY_LIMIT:]],
                "claim": self.claim.to_json() if self.claim else None,
                "last_failure": self.last_failure,
            }
        )
        return doc


def phase_key(cluster: str) -> str:
    return f"{KEY_PREFIX}/{cluster}/phase"


def parse_state(cluster: str, key: str, raw: bytes | None, mod_revision: int) -> PhaseState:
    """Tolerant: unknown keys are kept (a newer gardenctl may add some), a damaged value is flagged, never a crash."""
    if raw is None:
        return PhaseState(cluster=cluster, key=key, phase=0, mod_revision=0)
    try:
        data = json.loads(raw.decode())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        phase = data.get("phase", 0)
        if isinstance(phase, bool) or not isinstance(phase, int) or phase < 0:
            raise ValueError(f"phase is {phase!r}, not a non-negative integer")
    except (ValueError, UnicodeDecodeError) as exc:
        return PhaseState(cluster=cluster, key=key, phase=0, mod_revision=mod_revision, unreadable=str(exc)[:200])
    history = tuple(t for t in (Transition.from_json(h) for h in data.get("history") or []) if t is not None)
    known = {"version", "phase", "updated_at", "updated_by", "history", "claim", "last_failure"}
    return PhaseState(
        cluster=cluster,
        key=key,
        phase=phase,
        mod_revision=mod_revision,
        updated_at=data.get("updated_at"),
        updated_by=data.get("updated_by"),
        history=history,
        claim=Claim.from_json(data.get("claim")),
        last_failure=data.get("last_failure") if isinstance(data.get("last_failure"), dict) else None,
        extra={k: v for k, v in data.items() if k not in known},
    )


class PhaseStore:
    """Read and change the recorded phase of ``cluster`` in etcd. Every change is a CAS on the revision read."""

    def __init__(self, kv: KeyValueStore, cluster: str) -> None:
        self.kv = kv
        self.cluster = cluster
        self.key = phase_key(cluster)

    def read(self) -> PhaseState:
        """The current state. Raises `BackendUnreachable` / `BackendError` when etcd cannot be read."""
        item = self.kv.get(self.key)
        if item is None:
            return parse_state(self.cluster, self.key, None, 0)
        return parse_state(self.cluster, self.key, item.value, item.mod_revision)

    def _cas(self, seen: PhaseState, new: PhaseState, what: str) -> PhaseState:
        if seen.unreadable:
            raise PreconditionFailed(
                f"the recorded phase at {self.key} in etcd is unreadable ({seen.unreadable}); gardenctl will not overwrite it",
                hint=f"inspect it: etcdctl get {self.key}; repair or delete it by hand",
            )
        ok = self.kv.compare_and_set(self.key, json.dumps(new.to_json(), sort_keys=True), expected_mod_revision=seen.mod_revision or None)
        if not ok:
            now = self.read()
            held = f"; in progress: {now.claim.describe()}" if now.claim else ""
            raise PhaseConflict(
                f"{what}: the recorded phase of {self.cluster} changed since it was read (now phase {now.phase}{held}); nothing was changed by this run",
                hint="another operator is migrating or just did: run `gardenctl migrate-phase status`, then plan again",
            )
        after = self.read()
        return after

    def claim(self, seen: PhaseState, *, to_phase: int, action: str, by: str, break_lock: bool = False, now: datetime | None = None) -> PhaseState:
        """Take the migration claim, from the state the plan was made from. Raises `PhaseConflict` when the state
        moved on or another claim is held (unless ``break_lock``)."""
        if seen.claim is not None and not break_lock:
            raise PhaseConflict(
                f"a migration of {self.cluster} is in progress: {seen.claim.describe()}",
                hint="wait for it, or if that run died, re-run with --break-lock",
            )
        claim = Claim(id=uuid.uuid4().hex[:12], to_phase=to_phase, action=action, by=by, at=_iso(now or utc_now()))
        after = self._cas(seen, replace(seen, claim=claim), "taking the migration claim")
        if after.claim is None or after.claim.id != claim.id:
            raise PhaseConflict(f"taking the migration claim of {self.cluster}: another operator took it", hint="run `gardenctl migrate-phase status`")
        return after

    def record(self, claimed: PhaseState, *, to_phase: int, action: str, by: str, forced: bool = False, now: datetime | None = None) -> PhaseState:
        """Record the finished transition and drop the claim (CAS on the claimed revision)."""
        self._require_claim(claimed)
        at = _iso(now or utc_now())
        transition = Transition(claimed.phase, to_phase, action, at, by, forced, claimed.claim.id if claimed.claim else "")
        new = replace(
            claimed,
            phase=to_phase,
            updated_at=at,
            updated_by=by,
            history=(claimed.history + (transition,))[-HISTORY_LIMIT:],
            claim=None,
            last_failure=None,
        )
        return self._cas(claimed, new, "recording the new phase")

    def release(self, claimed: PhaseState, *, failure: dict[str, Any], now: datetime | None = None) -> PhaseState:
        """Drop the claim after a failed migration, keeping the phase and noting the failure."""
        self._require_claim(claimed)
        failure = {**failure, "at": failure.get("at") or _iso(now or utc_now())}
        return self._cas(claimed, replace(claimed, claim=None, last_failure=failure), "releasing the migration claim")

    def _require_claim(self, claimed: PhaseState) -> None:
        if claimed.claim is None:
            raise OperationFailed("internal: recording a phase change without holding the claim")
