"""Frozen data shared by every layer.

Backends parse what their system says into these types once, at the edge, tolerantly: unknown keys are ignored,
missing optional keys become None, values we did not foresee are kept raw. "Unknown" is never turned into zero:
a lag Patroni reports as ``"unknown"`` is ``None`` here and stays ``None`` up to the screen and the health rules.
Derived facts are properties, so they cannot drift from the data they come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


# --------------------------------------------------------------------------------------------------- severity


class Severity(str, Enum):
    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"

    @property
    def rank(self) -> int:
        """Order for "worst of": CRITICAL > UNKNOWN > WARNING > OK."""
        return {"OK": 0, "WARNING": 1, "UNKNOWN": 2, "CRITICAL": 3}[self.value]

    @property
    def exit_code(self) -> int:
        """Monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
        return {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[self.value]

    @staticmethod
    def worst(severities: Any) -> "Severity":
        result = Severity.OK
        for sev in severities:
            if sev.rank > result.rank:
                result = sev
        return result


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of one health rule. ``rule`` is a stable name usable with ``check --only/--skip``."""

    rule: str
    severity: Severity
    message: str
    layer: str = "cluster"
    subject: str | None = None
    hint: str | None = None


# --------------------------------------------------------------------------------------------------- Patroni

LEADER_ROLES = frozenset({"leader", "master", "primary", "standby_leader"})
REPLICA_ROLES = frozenset({"replica", "sync_standby", "quorum_standby", "standby"})
SYNC_ROLES = frozenset({"sync_standby", "quorum_standby"})
KNOWN_ROLES = LEADER_ROLES | REPLICA_ROLES | {"uninitialized"}

_TRUE_WORDS = {"true", "yes", "on", "1", "y", "t"}
_FALSE_WORDS = {"false", "no", "off", "0", "n", "f", ""}


def parse_bool(value: Any) -> bool | None:
    """Tag values arrive as booleans, numbers or strings ("true", "0"); None when it is none of those."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return None


def parse_int(value: Any) -> int | None:
    """An integer from an int or a numeric string; None for "unknown", None, floats with fractions or junk."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return None


def endpoint_key(url: str | None) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a REST URL, to match a configured endpoint with a member's ``api_url``."""
    from urllib.parse import urlsplit

    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


@dataclass(frozen=True, slots=True)
class Eligibility:
    """What a member's tags say about promoting it (field case F04)."""

    eligible: bool
    reason: str | None = None
    conflicting_tags: bool = False


@dataclass(frozen=True, slots=True)
class SelfReport:
    """What a member's own REST API (``GET /patroni``) says it is now - unlike its entry in ``/cluster``, which is
    its last write to the DCS (kept until its key expires, and kept as it was while etcd has no quorum)."""

    role: str | None = None  # primary / replica / standby_leader (Patroni 3+; "master" before)
    state: str | None = None  # PostgreSQL: running, stopped, starting, ...
    replication_state: str | None = None  # replicas: streaming, in archive recovery, ...
    timeline: int | None = None

    @property
    def is_primary(self) -> bool:
        return self.role in ("primary", "master")


@dataclass(frozen=True, slots=True)
class PatroniMember:
    name: str
    role: str
    state: str
    api_url: str | None = None
    host: str | None = None
    port: int | None = None
    timeline: int | None = None
    lag_bytes: int | None = None
    receive_lag_bytes: int | None = None
    replay_lag_bytes: int | None = None
    lsn: str | None = None
    pending_restart: bool = False
    scheduled_restart: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    # Set when this member's own REST API (a configured endpoint) did not answer GET /patroni: /cluster comes from
    # the DCS, which keeps a stopped member's last state until its key expires (ttl). None: it answered, or it was
    # not asked (no configured endpoint is this member).
    api_error: str | None = None
    # What it says about itself (GET /patroni), when status/check asked it; None: not asked or no answer.
    self_report: SelfReport | None = None

    @property
    def role_known(self) -> bool:
        return self.role in KNOWN_ROLES

    @property
    def is_leader(self) -> bool:
        return self.role in LEADER_ROLES

    @property
    def is_replica(self) -> bool:
        return self.role in REPLICA_ROLES

    @property
    def is_sync_standby(self) -> bool:
        return self.role in SYNC_ROLES

    @property
    def is_streaming(self) -> bool:
        return self.is_replica and self.state == "streaming"

    @property
    def streams_now(self) -> bool:
        """Streaming in the DCS, and its own REST API answers without contradicting it (when it was asked)."""
        if not self.is_streaming or self.api_error is not None:
            return False
        own = self.self_report
        return own is None or (not own.is_primary and own.state in (None, "running") and own.replication_state in (None, "streaming"))

    @property
    def is_running(self) -> bool:
        return self.state in ("running", "streaming")

    def primary_problem(self) -> str | None:
        """For the member holding the leader key: why its own REST API says it cannot take writes (silent, demoted,
        PostgreSQL not running); None when it can or was not asked. Its DCS state is judged apart."""
        if self.api_error is not None:
            return f"its REST API does not answer ({self.api_error})"
        own = self.self_report
        if own is None:
            return None
        if self.role != "standby_leader" and own.role is not None and not own.is_primary:
            return f"it says it is a {own.role} (demoted, read-only)"
        if own.state not in (None, "running"):
            return f"it says its PostgreSQL is {own.state!r}"
        return None

    @property
    def address(self) -> str:
        if self.host is None:
            return "-"
        return f"{self.host}:{self.port}" if self.port is not None else self.host

    @property
    def eligibility(self) -> Eligibility:
        """Tags decide: ``nofailover`` (when present) wins over ``failover_priority`` (default 1, eligible when > 0)."""
        tags = self.tags or {}
        has_nofailover = "nofailover" in tags and tags["nofailover"] is not None
        nofailover = parse_bool(tags.get("nofailover")) if has_nofailover else None
        priority_raw = tags.get("failover_priority")
        priority = parse_int(priority_raw) if priority_raw is not None else None
        if has_nofailover and nofailover is None:
            return Eligibility(False, f"unreadable nofailover tag {tags['nofailover']!r}")
        if nofailover is not None:
            conflict = priority is not None and ((nofailover and priority > 0) or (not nofailover and priority <= 0))
            if nofailover:
                return Eligibility(False, "tagged nofailover", conflict)
            return Eligibility(True, None, conflict)
        if priority_raw is not None and priority is None:
            return Eligibility(False, f"unreadable failover_priority tag {priority_raw!r}")
        if priority is not None and priority <= 0:
            return Eligibility(False, f"failover_priority is {priority}")
        return Eligibility(True)


@dataclass(frozen=True, slots=True)
class PatroniConfig:
    """The dynamic configuration (``GET /config``) fields gardenctl uses; ``raw`` keeps the rest."""

    ttl_seconds: int | None = None
    loop_wait_seconds: int | None = None
    retry_timeout_seconds: int | None = None
    maximum_lag_on_failover_bytes: int | None = None
    synchronous_mode: bool = False
    synchronous_mode_strict: bool = False
    failsafe_mode: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def convergence_timeout_seconds(self) -> float:
        """How long a switchover may legitimately take: ttl + 2 x loop_wait (field case F03)."""
        return float((self.ttl_seconds or 30) + 2 * (self.loop_wait_seconds or 10))


@dataclass(frozen=True, slots=True)
class ScheduledSwitchover:
    at: datetime | None
    from_member: str | None
    to_member: str | None


@dataclass(frozen=True, slots=True)
class PatroniCluster:
    scope: str | None
    members: tuple[PatroniMember, ...]
    paused: bool = False
    scheduled_switchover: ScheduledSwitchover | None = None
    config: PatroniConfig | None = None
    source: str | None = None
    # Configured endpoints that did not answer GET /patroni (endpoint -> error); filled only by a read that asked
    # every endpoint (status/check). A member whose api_url is one of them carries the error as ``api_error``.
    unanswered: dict[str, str] = field(default_factory=dict)

    def member(self, name: str) -> PatroniMember | None:
        return next((m for m in self.members if m.name == name), None)

    @property
    def leaders(self) -> tuple[PatroniMember, ...]:
        return tuple(m for m in self.members if m.is_leader)

    @property
    def leader(self) -> PatroniMember | None:
        leaders = self.leaders
        return leaders[0] if len(leaders) == 1 else None

    @property
    def replicas(self) -> tuple[PatroniMember, ...]:
        return tuple(m for m in self.members if not m.is_leader)

    @property
    def sync_standbys(self) -> tuple[PatroniMember, ...]:
        return tuple(m for m in self.members if m.is_sync_standby)

    @property
    def synchronous_mode(self) -> bool:
        if self.config is not None:
            return self.config.synchronous_mode
        return bool(self.sync_standbys)

    @property
    def maximum_lag_on_failover_bytes(self) -> int:
        if self.config is not None and self.config.maximum_lag_on_failover_bytes is not None:
            return self.config.maximum_lag_on_failover_bytes
        return 1048576  # Patroni's default

    @property
    def leader_down(self) -> bool:
        """No working leader: none holds the key, or the one that does is not running, does not answer, or says it
        is no primary. Its replicas then stop streaming, and Patroni promotes one once the key expires (ttl)."""
        leader = self.leader
        if leader is None or leader.primary_problem() is not None:
            return True
        return not leader.is_running if leader.role == "standby_leader" else leader.state != "running"

    def candidate_problems(self, member: PatroniMember, max_lag_bytes: int | None = None, *, leader_down: bool = False) -> list[str]:
        """Why ``member`` cannot be promoted now; empty when it can. Shared by health rules and switchover preflight.
        ``leader_down``: judge it as Patroni does in a failover - a replica that lost its stream with the leader
        ("running", not "streaming") is still a candidate when its lag is known and small enough."""
        problems: list[str] = []
        if member.is_leader:
            problems.append("is the leader")
            return problems
        if not member.is_replica:
            problems.append(f"role is {member.role!r}")
        if member.state != "streaming" and not (leader_down and member.state == "running"):
            problems.append(f"state is {member.state!r}, not streaming")
        if member.lag_bytes is None:
            problems.append("lag is unknown")
        else:
            limit = self.maximum_lag_on_failover_bytes if max_lag_bytes is None else max_lag_bytes
            if member.lag_bytes > limit:
                problems.append(f"lag {member.lag_bytes} B exceeds {limit} B")
        leader = self.leader
        if leader is not None and leader.timeline is not None:
            if member.timeline is None:
                problems.append("timeline is unknown")
            elif member.timeline != leader.timeline:
                problems.append(f"on timeline {member.timeline}, leader on {leader.timeline}")
        elig = member.eligibility
        if not elig.eligible:
            problems.append(elig.reason or "not eligible by its tags")
        if member.api_error is not None:
            problems.append(f"its REST API does not answer ({member.api_error})")
        own = member.self_report
        if own is not None and member.state == "streaming" and not leader_down:  # the DCS says fine; the member decides
            if own.state is not None and own.state != "running":
                problems.append(f"it says its PostgreSQL is {own.state!r}")
            elif own.replication_state is not None and own.replication_state != "streaming":
                problems.append(f"it says its replication is {own.replication_state!r}")
        if self.synchronous_mode and not member.is_sync_standby:
            problems.append("not a synchronous standby (synchronous_mode is on)")
        return problems

    @property
    def failover_candidates(self) -> tuple[PatroniMember, ...]:
        return tuple(m for m in self.replicas if not self.candidate_problems(m))


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of Patroni's ``GET /history``: the timeline that ended at ``lsn`` and why."""

    timeline: int
    lsn: int | None
    reason: str
    at: datetime | None = None
    new_leader: str | None = None


# --------------------------------------------------------------------------------------------------- etcd


@dataclass(frozen=True, slots=True)
class EtcdMember:
    __json_properties__ = ("id_hex",)
    __json_strings__ = ("id",)  # a uint64: above 2**53, which jq and JavaScript cannot hold (etcd's gateway does the same)

    id: int
    name: str | None
    peer_urls: tuple[str, ...] = ()
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False
    healthy: bool | None = None
    is_leader: bool = False
    raft_term: int | None = None
    raft_index: int | None = None
    db_size_bytes: int | None = None
    db_size_in_use_bytes: int | None = None
    version: str | None = None
    errors: tuple[str, ...] = ()
    error: str | None = None

    @property
    def id_hex(self) -> str:
        return format(self.id, "x")

    @property
    def started(self) -> bool:
        return bool(self.name) and bool(self.client_urls)

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        from urllib.parse import urlsplit

        host = urlsplit(self.peer_urls[0]).hostname if self.peer_urls else None
        return f"unstarted ({host or self.id_hex})"


@dataclass(frozen=True, slots=True)
class EtcdAlarm:
    __json_strings__ = ("member_id",)
    member_id: int
    alarm: str

    @property
    def member_id_hex(self) -> str:
        return format(self.member_id, "x")


@dataclass(frozen=True, slots=True)
class EtcdCluster:
    __json_properties__ = ("quorum", "has_quorum", "failures_tolerated")

    members: tuple[EtcdMember, ...]
    alarms: tuple[EtcdAlarm, ...] = ()
    quota_bytes: int | None = None
    # Why the alarm list is unknown (listing alarms needs quorum); None when it was read. Unknown is not "no alarms".
    alarms_error: str | None = None

    def member(self, member_id: int) -> EtcdMember | None:
        return next((m for m in self.members if m.id == member_id), None)

    @property
    def voters(self) -> tuple[EtcdMember, ...]:
        return tuple(m for m in self.members if not m.is_learner)

    @property
    def healthy_voters(self) -> tuple[EtcdMember, ...]:
        return tuple(m for m in self.voters if m.healthy)

    @property
    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    @property
    def has_quorum(self) -> bool:
        return len(self.healthy_voters) >= self.quorum

    @property
    def failures_tolerated(self) -> int:
        return max(len(self.healthy_voters) - self.quorum, 0) if self.has_quorum else 0

    @property
    def leader(self) -> EtcdMember | None:
        return next((m for m in self.members if m.is_leader), None)


# --------------------------------------------------------------------------------------------------- HAProxy


@dataclass(frozen=True, slots=True)
class HAProxyServer:
    """One server row of ``show stat``. ``status`` is the first word (UP, DOWN, MAINT, DRAIN, NOLB, NO CHECK, ...);
    ``transition`` keeps "2/3"-style counters and ``status_detail`` the text in parentheses (field case F07)."""

    backend: str
    name: str
    status: str
    status_text: str = ""
    transition: str | None = None
    status_detail: str | None = None
    address: str | None = None
    weight: int | None = None
    active: bool = True
    backup: bool = False
    check_status: str | None = None
    check_in_progress: bool = False
    check_code: int | None = None
    check_duration_ms: int | None = None
    last_change_seconds: int | None = None
    current_sessions: int | None = None

    @property
    def is_up(self) -> bool:
        return self.status == "UP"

    @property
    def is_administrative(self) -> bool:
        return self.status in ("MAINT", "DRAIN")

    @property
    def standing_by(self) -> bool:
        """DOWN because Patroni's check answered "not me" (503), as every non-primary in a read-write backend is
        (field case F06). While a check runs HAProxy shows the last status with no code, so that counts too."""
        if self.status != "DOWN" or self.check_status != "L7STS":
            return False
        return self.check_code == 503 or (self.check_code is None and self.check_in_progress)

    @property
    def check_unreachable(self) -> bool:
        """The health check could not reach the member's REST API at all (L4CON/L4TOUT), unlike a 503 answer."""
        return (self.check_status or "") in ("L4CON", "L4TOUT", "SOCKERR", "L6TOUT", "L7TOUT")


@dataclass(frozen=True, slots=True)
class HAProxyBackend:
    name: str
    status: str
    current_sessions: int | None = None


@dataclass(frozen=True, slots=True)
class HAProxyState:
    __json_properties__ = ("rw_target",)

    servers: tuple[HAProxyServer, ...]
    backends: tuple[HAProxyBackend, ...] = ()
    rw_backend: str | None = None
    ro_backend: str | None = None

    def servers_of(self, backend: str) -> tuple[HAProxyServer, ...]:
        return tuple(s for s in self.servers if s.backend == backend)

    @property
    def rw_up(self) -> tuple[HAProxyServer, ...]:
        if self.rw_backend is None:
            return ()
        return tuple(s for s in self.servers_of(self.rw_backend) if s.is_up)

    @property
    def rw_target(self) -> str | None:
        """The server the read-write listener sends to, when exactly one is UP."""
        up = self.rw_up
        return up[0].name if len(up) == 1 else None


# --------------------------------------------------------------------------------------------------- joined view


@dataclass(frozen=True, slots=True)
class Probe(Generic[T]):
    """What one layer answered: a value, or why there is none."""

    value: T | None
    error: str | None = None
    elapsed_ms: float | None = None
    # The layer is not just unreadable but down for its clients (HAProxy: the stats socket and the read-write port
    # both refuse): a CRITICAL finding, not UNKNOWN.
    down: bool = False

    @property
    def ok(self) -> bool:
        return self.value is not None and self.error is None


@dataclass(frozen=True, slots=True)
class StatusReport:
    __json_properties__ = ("severity",)

    context: str
    collected_at: datetime
    patroni: Probe[PatroniCluster]
    etcd: Probe[EtcdCluster]
    haproxy: Probe[HAProxyState]
    findings: tuple[Finding, ...] = ()
    hetzner: Probe[Any] | None = None
    k3s: Probe[Any] | None = None

    @property
    def severity(self) -> Severity:
        return Severity.worst(f.severity for f in self.findings)


# --------------------------------------------------------------------------------------------------- operations


@dataclass(frozen=True, slots=True)
class Check:
    """One preflight check. ``overridable`` says whether ``--force`` may skip it (only what Patroni still accepts)."""

    name: str
    ok: bool
    detail: str
    overridable: bool = False


def blocking_checks(checks: "tuple[Check, ...] | list[Check]", force: bool) -> tuple[Check, ...]:
    """The failed checks that stop an operation: every one, except the overridable ones under ``--force``."""
    return tuple(c for c in checks if not c.ok and not (force and c.overridable))


def overridden_checks(checks: "tuple[Check, ...] | list[Check]", force: bool) -> tuple[Check, ...]:
    """The failed checks that ``--force`` let through (shown, so nobody forgets what was skipped)."""
    return tuple(c for c in checks if not c.ok and force and c.overridable)


@dataclass(frozen=True, slots=True)
class Moment:
    """Seconds since the operation started at which something was observed."""

    label: str
    seconds: float


@dataclass(frozen=True, slots=True)
class OperationOutcome:
    """What a mutating command did, for the screen and the journal."""

    command: str
    ok: bool
    message: str
    moments: tuple[Moment, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- config views


@dataclass(frozen=True, slots=True)
class ContextRow:
    name: str
    current: bool
    scope: str | None
    patroni_endpoints: int
    etcd_endpoints: int
    lab: bool


@dataclass(frozen=True, slots=True)
class ContextList:
    __kind__ = "ContextList"
    path: str
    current_context: str | None
    contexts: tuple[ContextRow, ...]


@dataclass(frozen=True, slots=True)
class ConfigView:
    __kind__ = "Config"
    path: str
    config: dict
