"""Switchover and failover: plan (topology + preflight), execute through Patroni's REST API, verify convergence.

The flow the CLI drives:

1. `plan_switchover` / `plan_failover` read the cluster (Patroni through any member, each member's own REST API,
   etcd, and a new connection through the HAProxy read-write port) and build a `SwitchoverPlan` whose `Preflight`
   lists every check with ok/fail, a detail and whether ``--force`` may override it. Nothing is changed.
2. The CLI shows the plan and asks for confirmation.
3. `execute` sends exactly one request to Patroni and verifies convergence; it returns a `SwitchoverResult` (with
   the moments it observed) whatever happened, and `SwitchoverResult.error` is the `GardenError` to exit with when
   the operation did not converge.

What "converged" means (the contract):

- the candidate leads in Patroni, is running, and is on a new timeline;
- a **new** connection through the HAProxy read-write port lands on the candidate (its server address and port match
  the member's host:port) and accepts a write;
- the old leader is back as a streaming replica on the new timeline. For a failover whose old leader was already
  down when the plan was made (its REST API did not answer), gardenctl does not wait for it: the result is a
  success with a warning that the old leader is not running - the cluster serves writes, and the missing replica is
  shown, never hidden.

Patroni's answers (field cases F02, F03):

- 200: Patroni saw the new leader; verify the rest. 202: scheduled (``--at``); verify it shows as scheduled.
- 412: Patroni refused (e.g. the candidate is not the sync standby). Shown with Patroni's body; never retried.
- 400/422: a malformed request (Patroni's body says why).
- 503 "... status unknown": Patroni's REST call only waits about two HA loops; the switchover may still be running.
  Poll the cluster through any member that answers until the leader changes or the timeout; never send a second
  request while the first may still be running.
- 503 "... failed": the leader cleaned up the request (no healthy candidate at the moment of demotion).

Timeouts: each convergence step (new leader in Patroni, HAProxy routing + writable, old leader streaming) may take
up to ``timeout_seconds``, default ttl + 2 x loop_wait from Patroni's dynamic config.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from gardenctl.backends.patroni import ActionAnswer, endpoint_of, parse_time
from gardenctl.backends.postgres import Endpoint, Landing
from gardenctl.errors import (
    BackendError,
    BackendUnreachable,
    GardenError,
    OperationFailed,
    OperationTimeout,
    PreconditionFailed,
)
from gardenctl.model import Check, EtcdCluster, Moment, PatroniCluster, PatroniMember, blocking_checks, overridden_checks
from gardenctl.wait import REAL_CLOCK, Clock, wait_until

SWITCHOVER = "switchover"
FAILOVER = "failover"

# Outcomes (the same words as the journal's).
SUCCEEDED = "succeeded"
SCHEDULED = "scheduled"
REFUSED = "refused"
FAILED = "failed"
TIMED_OUT = "timed_out"
ERROR = "error"

# Moment labels, stable for scripts reading -o json.
M_SENT = "request sent"
M_ANSWERED = "Patroni answered"
M_SCHEDULED = "Patroni shows it scheduled"
M_LEADER = "new leader seen in Patroni"
M_ROUTED = "HAProxy routes to the new leader"
M_WRITABLE = "writable through HAProxy"
M_OLD_STREAMING = "old leader streaming"


# ------------------------------------------------------------------------------------------------ adapter interfaces


class PatroniLike(Protocol):
    """What this module needs from `gardenctl.backends.patroni.PatroniClient` (tests use an in-memory fake)."""

    endpoints: tuple[str, ...]

    def get_cluster(self, *, with_config: bool = True, every_endpoint: bool = False) -> PatroniCluster: ...

    def get_member_status(self, api_url: str) -> dict[str, Any]: ...

    def switchover(self, leader: str, candidate: str | None, scheduled_at: datetime | None = None, prefer: tuple[str, ...] = ()) -> ActionAnswer: ...

    def failover(self, candidate: str, prefer: tuple[str, ...] = ()) -> ActionAnswer: ...


class EtcdLike(Protocol):
    def get_cluster(self, quota_bytes: int | None = None) -> EtcdCluster: ...


class RwProbe(Protocol):
    """A new connection through the HAProxy read-write port: where it lands, and whether it accepts a write."""

    where: str

    def where_am_i(self) -> Landing: ...

    def can_write(self) -> bool: ...


class PostgresRwProbe:
    """`RwProbe` over `gardenctl.backends.postgres` (a new connection per call, as a client would open)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.where = endpoint.where

    def where_am_i(self) -> Landing:
        from gardenctl.backends.postgres import where_am_i

        return where_am_i(self.endpoint)

    def can_write(self) -> bool:
        from gardenctl.backends.postgres import can_write

        return can_write(self.endpoint)


@dataclass
class SwitchoverAdapters:
    """The adapters one switchover/failover uses. ``rw`` is None when no read-write address is configured (the
    preflight then refuses: convergence could not be verified). ``rw_problem`` says why it is None."""

    patroni: PatroniLike
    etcd: EtcdLike | None = None
    rw: RwProbe | None = None
    rw_problem: str | None = None
    etcd_problem: str | None = None


# ------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class MemberProbe:
    """What a member's own REST API (``GET /patroni``) said, or why it did not answer."""

    name: str
    api_reachable: bool | None  # None: the member publishes no api_url
    error: str | None = None
    role: str | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class Preflight:
    """The checks, and what ``--force`` does to them: a failed check blocks unless it is overridable and forced."""

    checks: tuple[Check, ...]
    force: bool = False

    __json_properties__ = ("ok", "blocking", "overridden")

    @property
    def blocking(self) -> tuple[Check, ...]:
        return blocking_checks(self.checks, self.force)

    @property
    def overridden(self) -> tuple[Check, ...]:
        return overridden_checks(self.checks, self.force)

    @property
    def ok(self) -> bool:
        return not self.blocking

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)


@dataclass(frozen=True, slots=True)
class SwitchoverPlan:
    __kind__ = "SwitchoverPlan"
    __json_properties__ = ("ok",)

    action: str
    scope: str | None
    leader: str | None
    candidate: str | None
    candidate_source: str
    scheduled_at: datetime | None
    timeline: int | None
    paused: bool
    synchronous_mode: bool
    max_lag_bytes: int
    timeout_seconds: float
    members: tuple[PatroniMember, ...]
    probes: tuple[MemberProbe, ...]
    preflight: Preflight
    leader_reachable: bool = False
    source: str | None = None

    @property
    def ok(self) -> bool:
        return self.preflight.ok

    def probe(self, name: str) -> MemberProbe | None:
        return next((p for p in self.probes if p.name == name), None)

    @property
    def summary(self) -> str:
        """One line for the confirmation question and the journal."""
        if self.action == FAILOVER:
            return f"fail over to {self.candidate}" + (f" (leader now: {self.leader})" if self.leader else " (no leader)")
        target = self.candidate or "a replica Patroni chooses"
        when = f" at {_utc_text(self.scheduled_at)}" if self.scheduled_at else " now"
        return f"switch over from {self.leader} to {target}{when}"

    def refusal(self) -> PreconditionFailed:
        """The error for a preflight that did not pass: one line, then one line per blocking check."""
        blocking = self.preflight.blocking
        names = ", ".join(c.name for c in blocking)
        hint = "fix the failed checks and re-run"
        if any(c.overridable for c in blocking):
            hint = "the checks marked overridable can be overridden with --force (Patroni would still accept them); the others cannot"
        return PreconditionFailed(
            f"{self.action} refused by the preflight ({len(blocking)} failed check{'s' if len(blocking) != 1 else ''}: {names}); nothing was changed",
            details=[f"{c.name}: {c.detail}" for c in blocking],
            hint=hint,
        )


@dataclass(frozen=True, slots=True)
class SwitchoverResult:
    __kind__ = "SwitchoverResult"
    __json_properties__ = ("duration_seconds", "exit_code")

    action: str
    outcome: str
    converged: bool
    message: str
    plan: SwitchoverPlan
    request_sent: bool
    patroni_status: int | None = None
    patroni_answer: str | None = None
    leader_before: str | None = None
    leader_after: str | None = None
    timeline_before: int | None = None
    timeline_after: int | None = None
    scheduled_at: datetime | None = None
    moments: tuple[Moment, ...] = ()
    warnings: tuple[str, ...] = ()
    final_members: tuple[PatroniMember, ...] = ()
    last_seen: str | None = None
    _error: GardenError | None = field(default=None, repr=False, compare=False)

    @property
    def error(self) -> GardenError | None:
        """The error to exit with, or None when the operation converged (or was verified as scheduled)."""
        return self._error

    @property
    def exit_code(self) -> int:
        return 0 if self._error is None else int(self._error.exit_code)

    @property
    def duration_seconds(self) -> float | None:
        return self.moments[-1].seconds if self.moments else None

    def journal_details(self) -> dict[str, Any]:
        """Plain JSON facts for the operation journal."""
        details: dict[str, Any] = {
            "scope": self.plan.scope,
            "leader_before": self.leader_before,
            "candidate": self.plan.candidate,
            "candidate_source": self.plan.candidate_source,
            "leader_after": self.leader_after,
            "timeline_before": self.timeline_before,
            "timeline_after": self.timeline_after,
            "patroni_status": self.patroni_status,
            "patroni_answer": self.patroni_answer,
        }
        if self.scheduled_at is not None:
            details["scheduled_at"] = _utc_text(self.scheduled_at)
        if self.plan.preflight.overridden:
            details["forced_checks"] = [c.name for c in self.plan.preflight.overridden]
        if self.warnings:
            details["warnings"] = list(self.warnings)
        if self.last_seen and not self.converged:
            details["last_seen"] = self.last_seen
        return details


# ------------------------------------------------------------------------------------------------ helpers


def _utc_text(at: datetime | None) -> str:
    if at is None:
        return "-"
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_when(text: str, now: datetime) -> datetime:
    """``--at``: an ISO 8601 time with a time zone, in the future. Returns it in UTC.

    Raises ValueError with a message for the user: Patroni itself refuses a time without a zone (400) or in the past
    (422); gardenctl says so before anything is sent."""
    raw = text.strip()
    parsed = parse_time(raw)
    if parsed is None:
        raise ValueError(f"{text!r} is not an ISO 8601 time; write it like 2030-01-31T22:00:00+01:00 or 2030-01-31T21:00:00Z")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"{text!r} has no time zone, so it is ambiguous; add one, e.g. {raw}+00:00 or {raw}Z (Patroni refuses times without a zone)"
        )
    parsed = parsed.astimezone(timezone.utc)
    if parsed <= now:
        raise ValueError(f"{text!r} is in the past (now: {_utc_text(now)}); a scheduled switchover must be in the future")
    return parsed


def _describe(cluster: PatroniCluster) -> str:
    """A short line describing the topology, for progress lines and "last seen" in a timeout."""
    parts = []
    for m in cluster.members:
        tl = f" tl{m.timeline}" if m.timeline is not None else ""
        parts.append(f"{m.name} {m.role}/{m.state}{tl}")
    return ", ".join(parts) or "no members"


def _host_addresses(host: str) -> set[str]:
    addrs = {host}
    try:
        for info in socket.getaddrinfo(host, None):
            addrs.add(str(info[4][0]))
    except (OSError, UnicodeError):
        pass
    return addrs


def landing_matches(member: PatroniMember, landing: Landing) -> bool:
    """Did a connection land on ``member``? Server port must equal the member's port and the server address must be
    (one of the addresses of) the member's host. In the lab every member is 127.0.0.1 and the port decides; on
    servers every port is 5432 and the address decides."""
    if member.host is None:
        return False
    if member.port is not None and landing.server_port != member.port:
        return False
    if landing.server_addr is None:
        return False
    return landing.server_addr in _host_addresses(member.host)


def _member_for_landing(cluster: PatroniCluster, landing: Landing) -> PatroniMember | None:
    return next((m for m in cluster.members if landing_matches(m, landing)), None)


def _probe_members(patroni: PatroniLike, members: tuple[PatroniMember, ...]) -> tuple[MemberProbe, ...]:
    """Ask every member's own REST API at once; a slow member never blocks the others."""
    if not members:
        return ()

    def ask(member: PatroniMember) -> MemberProbe:
        if not member.api_url:
            return MemberProbe(member.name, None, "no api_url published in the DCS")
        try:
            data = patroni.get_member_status(member.api_url)
        except GardenError as exc:
            return MemberProbe(member.name, False, exc.message)
        return MemberProbe(member.name, True, None, str(data.get("role")) if data.get("role") else None, str(data.get("state")) if data.get("state") else None)

    with ThreadPoolExecutor(max_workers=len(members), thread_name_prefix="probe") as pool:
        return tuple(pool.map(ask, members))


def _reference_timeline(cluster: PatroniCluster) -> int | None:
    leader = cluster.leader
    if leader is not None and leader.timeline is not None:
        return leader.timeline
    timelines = [m.timeline for m in cluster.members if m.timeline is not None]
    return max(timelines) if timelines else None


def _priority(member: PatroniMember) -> int:
    from gardenctl.model import parse_int

    value = parse_int(member.tags.get("failover_priority")) if member.tags else None
    return 1 if value is None else value


# ------------------------------------------------------------------------------------------------ checks

_DOWN_STATES = frozenset({"stopped", "stopping", "start failed", "crashed", "stop failed", "unknown"})


def _candidate_checks(
    cluster: PatroniCluster,
    member: PatroniMember | None,
    name: str,
    *,
    action: str,
    max_lag_bytes: int,
    lag_limit_source: str,
    probe: MemberProbe | None,
) -> list[Check]:
    """Every check about one candidate, in the order an operator reads them."""
    checks: list[Check] = []
    if member is None:
        known = ", ".join(m.name for m in cluster.members) or "none"
        checks.append(Check("candidate", False, f"{name!r} is not a member of the cluster (members: {known})"))
        return checks
    if member.is_leader:
        what = "nothing to fail over" if action == FAILOVER else "pick a replica"
        checks.append(Check("candidate", False, f"{name} is already the leader; {what}"))
        return checks
    checks.append(Check("candidate", True, f"{name} is a member ({member.role}, {member.address})"))

    # Patroni refuses a candidate whose REST API it cannot reach ("not reachable").
    if probe is None or probe.api_reachable is None:
        checks.append(Check("candidate reachable", False, f"{name} publishes no REST API address; Patroni cannot promote it"))
    elif probe.api_reachable:
        checks.append(Check("candidate reachable", True, f"its REST API answers (state {probe.state or '?'})"))
    else:
        checks.append(Check("candidate reachable", False, f"its REST API does not answer: {probe.error}; Patroni refuses an unreachable candidate"))

    # A stopped PostgreSQL has no WAL position: Patroni would drop the request, so that is never overridable.
    down = not member.is_replica or member.state in _DOWN_STATES
    if action == SWITCHOVER:
        ok = member.is_streaming
        detail = f"{member.role}, state {member.state}" + ("" if ok else "; a switchover candidate should stream from the leader")
        checks.append(Check("candidate streaming", ok, detail, overridable=not down))
    else:
        # With the leader down, replicas lose their WAL stream and show "running": that is expected here.
        ok = member.is_replica and member.state in ("streaming", "running")
        detail = f"{member.role}, state {member.state}" + ("" if ok else "; the candidate must be a running replica")
        checks.append(Check("candidate running", ok, detail, overridable=not down))

    reference = _reference_timeline(cluster)
    if reference is None:
        checks.append(Check("candidate timeline", True, "no timeline known for the cluster; Patroni decides", overridable=True))
    elif member.timeline is None:
        checks.append(Check("candidate timeline", False, f"unknown (the cluster is on timeline {reference})", overridable=True))
    elif member.timeline < reference:
        checks.append(Check("candidate timeline", False, f"on timeline {member.timeline}, the leader on {reference}", overridable=True))
    else:
        checks.append(Check("candidate timeline", True, f"timeline {member.timeline}, same as the leader"))

    # "Unknown" is never zero (F01): a member without a known WAL position cannot be judged, so never promoted.
    if member.lag_bytes is None:
        checks.append(Check("candidate lag", False, f"lag is unknown (limit {max_lag_bytes} B, {lag_limit_source}); Patroni has no WAL position for it"))
    elif member.lag_bytes > max_lag_bytes:
        checks.append(
            Check(
                "candidate lag",
                False,
                f"{member.lag_bytes} B behind, above the limit of {max_lag_bytes} B ({lag_limit_source}); promoting it loses those bytes of committed WAL",
                overridable=True,
            )
        )
    else:
        checks.append(Check("candidate lag", True, f"{member.lag_bytes} B (limit {max_lag_bytes} B, {lag_limit_source})"))

    elig = member.eligibility
    tags = ", ".join(f"{k}={v}" for k, v in sorted(member.tags.items())) or "no tags"
    if not elig.eligible:
        checks.append(Check("candidate tags", False, f"not eligible: {elig.reason} ({tags}); Patroni never promotes it"))
    elif elig.conflicting_tags:
        checks.append(Check("candidate tags", True, f"eligible, but nofailover and failover_priority disagree ({tags}): nofailover wins; fix the tags"))
    else:
        checks.append(Check("candidate tags", True, f"eligible ({tags})"))

    if cluster.synchronous_mode:
        standbys = [m.name for m in cluster.sync_standbys]
        if member.is_sync_standby:
            checks.append(Check("synchronous standby", True, f"synchronous_mode is on and {name} is a synchronous standby"))
        elif standbys:
            checks.append(
                Check(
                    "synchronous standby",
                    False,
                    f"synchronous_mode is on and {name} is not a synchronous standby; the sync standby is {', '.join(standbys)} "
                    f"(Patroni would answer 412; promoting an async replica can lose acknowledged commits)",
                )
            )
        else:
            checks.append(Check("synchronous standby", False, "synchronous_mode is on but no member is a synchronous standby (Patroni would answer 412: can not find sync_standby)"))
    return checks


def _etcd_check(adapters: SwitchoverAdapters) -> Check:
    if adapters.etcd is None:
        return Check("etcd quorum", False, f"not checked: {adapters.etcd_problem or 'no etcd endpoints configured'}", overridable=True)
    try:
        etcd = adapters.etcd.get_cluster()
    except GardenError as exc:
        # Patroni talks to etcd on its own network; unreachable from here is not proof of no quorum.
        return Check("etcd quorum", False, f"etcd does not answer from here: {exc.message}", overridable=True)
    voters = len(etcd.voters)
    healthy = len(etcd.healthy_voters)
    alarms = ", ".join(f"{a.alarm} on {a.member_id_hex}" for a in etcd.alarms)
    if not etcd.has_quorum:
        return Check("etcd quorum", False, f"{healthy} of {voters} voters healthy, quorum is {etcd.quorum}: Patroni cannot write the switchover request")
    if any(a.alarm in ("NOSPACE", "CORRUPT") for a in etcd.alarms):
        return Check("etcd quorum", False, f"alarm {alarms}: etcd rejects writes, Patroni cannot write the switchover request")
    return Check("etcd quorum", True, f"{healthy} of {voters} voters healthy (quorum {etcd.quorum}, {etcd.failures_tolerated} more {'failure' if etcd.failures_tolerated == 1 else 'failures'} tolerated)")


def _routing_check(adapters: SwitchoverAdapters, cluster: PatroniCluster, action: str) -> Check:
    """Before anything changes: can gardenctl verify routing at all, and where does the read-write port go now?"""
    if adapters.rw is None:
        return Check(
            "read-write routing",
            False,
            f"cannot verify convergence: {adapters.rw_problem or 'no HAProxy read-write address configured'}",
        )
    leader = cluster.leader
    try:
        landing = adapters.rw.where_am_i()
    except GardenError as exc:
        if action == FAILOVER:
            return Check("read-write routing", True, f"{exc.message.removeprefix('postgres: ')} (expected while the leader is down)")
        return Check("read-write routing", False, exc.message.removeprefix("postgres: "), overridable=True)
    target = _member_for_landing(cluster, landing)
    where = f"{landing.server_addr}:{landing.server_port}"
    name = target.name if target else f"{where} (not a Patroni member)"
    if leader is not None and target is not None and target.name == leader.name and not landing.in_recovery:
        return Check("read-write routing", True, f"{adapters.rw.where} reaches {leader.name}, the leader (writable primary)")
    detail = f"{adapters.rw.where} reaches {name}" + (" (a replica)" if landing.in_recovery else "") + (f", not the leader {leader.name}" if leader else "")
    if action == FAILOVER:
        return Check("read-write routing", True, detail)
    return Check("read-write routing", False, detail, overridable=True)


def _leader_check(cluster: PatroniCluster, probes: dict[str, MemberProbe], action: str) -> tuple[Check, bool]:
    """The leader check, and whether the leader's own REST API answered as a running primary."""
    leaders = cluster.leaders
    if len(leaders) > 1:
        names = ", ".join(m.name for m in leaders)
        return Check("leader", False, f"{len(leaders)} members claim to lead ({names}): resolve that first"), False
    if not leaders:
        if action == FAILOVER:
            return Check("leader", True, "no leader in the DCS: the candidate will be promoted"), False
        return Check("leader", False, "no leader in the DCS: a switchover needs one; use `gardenctl failover --candidate NAME`"), False
    leader = leaders[0]
    probe = probes.get(leader.name)
    healthy = probe is not None and bool(probe.api_reachable) and probe.state == "running" and (probe.role or "") in ("primary", "master", "leader", "standby_leader")
    if action == FAILOVER:
        if healthy:
            return Check("leader", True, f"{leader.name} is running and answers: failover demotes it (a switchover is the gentler tool)"), True
        why = probe.error if probe and probe.error else f"its REST API says role {probe.role if probe else '?'}, state {probe.state if probe else '?'}"
        return Check("leader", True, f"{leader.name} holds the leader key but is not healthy ({why}); the candidate takes over once the key expires (up to ttl)"), False
    if healthy:
        return Check("leader", True, f"{leader.name} is running as primary on timeline {leader.timeline if leader.timeline is not None else '?'} and its REST API answers"), True
    if probe is None or not probe.api_reachable:
        why = probe.error if probe and probe.error else "no REST API address"
        return Check("leader", False, f"{leader.name} holds the leader key but its REST API does not answer ({why}); if it is down use failover", overridable=True), False
    return Check("leader", False, f"{leader.name} says role {probe.role}, state {probe.state}: not a healthy primary", overridable=True), False


# ------------------------------------------------------------------------------------------------ planning


def plan_switchover(
    adapters: SwitchoverAdapters,
    *,
    candidate: str | None = None,
    at: datetime | None = None,
    force: bool = False,
    max_lag_bytes: int | None = None,
    timeout_seconds: float | None = None,
    now: datetime | None = None,
) -> SwitchoverPlan:
    """Read the cluster and build the plan and preflight for a switchover. Changes nothing.

    Without ``candidate``, the default is the synchronous standby in synchronous mode, else the best eligible
    replica (highest failover_priority, then lowest lag). A scheduled switchover (``at``) without a candidate leaves
    the choice to Patroni at that time. Raises `BackendUnreachable` when no Patroni member answers."""
    return _plan(adapters, SWITCHOVER, candidate, at, force, max_lag_bytes, timeout_seconds, now)


def plan_failover(
    adapters: SwitchoverAdapters,
    *,
    candidate: str,
    force: bool = False,
    max_lag_bytes: int | None = None,
    timeout_seconds: float | None = None,
) -> SwitchoverPlan:
    """Read the cluster and build the plan and preflight for a failover to ``candidate`` (the leader may be down).
    Changes nothing. Raises `BackendUnreachable` when no Patroni member answers."""
    if not candidate:
        raise PreconditionFailed("a failover needs a named candidate (--candidate NAME)")
    return _plan(adapters, FAILOVER, candidate, None, force, max_lag_bytes, timeout_seconds, None)


def _plan(
    adapters: SwitchoverAdapters,
    action: str,
    candidate: str | None,
    at: datetime | None,
    force: bool,
    max_lag_bytes: int | None,
    timeout_seconds: float | None,
    now: datetime | None,
) -> SwitchoverPlan:
    cluster = adapters.patroni.get_cluster(with_config=True)
    probes_list = _probe_members(adapters.patroni, cluster.members)
    probes = {p.name: p for p in probes_list}
    limit = cluster.maximum_lag_on_failover_bytes if max_lag_bytes is None else max_lag_bytes
    limit_source = "--max-lag" if max_lag_bytes is not None else "maximum_lag_on_failover"
    config = cluster.config
    timeout = float(timeout_seconds) if timeout_seconds else (config.convergence_timeout_seconds if config is not None else 50.0)

    checks: list[Check] = []
    leader_check, leader_reachable = _leader_check(cluster, probes, action)
    checks.append(leader_check)

    # Maintenance mode (F05): Patroni accepts only a switchover to a named candidate, and no scheduled one.
    if cluster.paused:
        if at is not None:
            checks.append(Check("maintenance mode", False, "the cluster is paused (maintenance mode): Patroni refuses a scheduled switchover while paused; resume first"))
        elif candidate is None:
            checks.append(Check("maintenance mode", False, "the cluster is paused (maintenance mode): Patroni accepts only a switchover to a named candidate; pass --candidate NAME"))
        else:
            checks.append(Check("maintenance mode", True, "on (paused): allowed because a candidate is named; automatic failover stays off"))
    else:
        checks.append(Check("maintenance mode", True, "off"))

    if cluster.scheduled_switchover is not None:
        s = cluster.scheduled_switchover
        checks.append(
            Check(
                "scheduled switchover",
                False,
                f"one is already scheduled for {_utc_text(s.at)} (from {s.from_member or '?'} to {s.to_member or 'any'}); "
                "cancel it first (Patroni: DELETE /switchover, or patronictl flush <scope> switchover)",
            )
        )
    else:
        checks.append(Check("scheduled switchover", True, "none"))

    if at is not None:
        current = now or datetime.now(timezone.utc)
        if at.tzinfo is None:
            checks.append(Check("schedule time", False, f"{at.isoformat()} has no time zone"))
        elif at <= current:
            checks.append(Check("schedule time", False, f"{_utc_text(at)} is in the past (now {_utc_text(current)})"))
        else:
            checks.append(Check("schedule time", True, f"{_utc_text(at)}, in {int((at - current).total_seconds())} s"))

    checks.append(_etcd_check(adapters))

    # Choose the candidate.
    chosen = candidate
    source = "named with --candidate"
    candidate_checks: list[Check] = []
    if candidate is not None:
        candidate_checks = _candidate_checks(
            cluster, cluster.member(candidate), candidate, action=action, max_lag_bytes=limit, lag_limit_source=limit_source, probe=probes.get(candidate)
        )
    elif at is not None:
        source = "Patroni chooses at the scheduled time"
        eligible = [m.name for m in cluster.replicas if not cluster.candidate_problems(m, limit) and probes.get(m.name, MemberProbe(m.name, False)).api_reachable]
        if eligible:
            candidate_checks.append(Check("candidates", True, f"eligible now: {', '.join(eligible)}"))
        else:
            candidate_checks.append(Check("candidates", False, "no replica is eligible now: " + _why_not(cluster, limit, probes), overridable=True))
    else:
        chosen, source, candidate_checks = _default_candidate(cluster, action, limit, limit_source, probes, force)
    checks.extend(candidate_checks)
    if at is None:  # a scheduled switchover is verified as scheduled; routing is checked when it runs
        checks.append(_routing_check(adapters, cluster, action))

    return SwitchoverPlan(
        action=action,
        scope=cluster.scope,
        leader=cluster.leader.name if cluster.leader else None,
        candidate=chosen,
        candidate_source=source,
        scheduled_at=at,
        timeline=_reference_timeline(cluster),
        paused=cluster.paused,
        synchronous_mode=cluster.synchronous_mode,
        max_lag_bytes=limit,
        timeout_seconds=timeout,
        members=cluster.members,
        probes=probes_list,
        preflight=Preflight(tuple(checks), force=force),
        leader_reachable=leader_reachable,
        source=cluster.source,
    )


def _why_not(cluster: PatroniCluster, limit: int, probes: dict[str, MemberProbe]) -> str:
    parts = []
    for m in cluster.replicas:
        problems = cluster.candidate_problems(m, limit)
        probe = probes.get(m.name)
        if probe is not None and probe.api_reachable is False:
            problems = [*problems, "REST API does not answer"]
        parts.append(f"{m.name}: {'; '.join(problems) if problems else 'ok'}")
    return "; ".join(parts) or "there are no replicas"


def _default_candidate(
    cluster: PatroniCluster, action: str, limit: int, limit_source: str, probes: dict[str, MemberProbe], force: bool
) -> tuple[str | None, str, list[Check]]:
    """The sync standby in synchronous mode, else the best eligible replica: every candidate check passing (with
    --force: none failing that cannot be overridden), then highest failover_priority, then lowest lag, then name."""
    ranked = sorted(
        cluster.replicas,
        key=lambda m: (not m.is_sync_standby, -_priority(m), m.lag_bytes if m.lag_bytes is not None else 1 << 62, m.name),
    )
    source = (
        "chosen by default: the synchronous standby"
        if cluster.synchronous_mode
        else "chosen by default: the best eligible replica (highest failover_priority, then lowest lag)"
    )
    fallback: tuple[PatroniMember, list[Check]] | None = None
    for member in ranked:
        checks = _candidate_checks(cluster, member, member.name, action=action, max_lag_bytes=limit, lag_limit_source=limit_source, probe=probes.get(member.name))
        if all(c.ok for c in checks):
            return member.name, source, checks
        if fallback is None and force and all(c.ok or c.overridable for c in checks):
            fallback = (member, checks)
    if fallback is not None:
        return fallback[0].name, source + " (with --force)", fallback[1]
    if cluster.synchronous_mode and not cluster.sync_standbys:
        detail = "synchronous_mode is on but no member is a synchronous standby (Patroni would answer 412: can not find sync_standby)"
    else:
        detail = "no replica can be promoted: " + _why_not(cluster, limit, probes)
    return None, source, [Check("candidate", False, detail)]


# ------------------------------------------------------------------------------------------------ execution


def _prefer(patroni: PatroniLike, members: list[PatroniMember | None]) -> tuple[str, ...]:
    """Endpoints to send the request to first, among the configured ones (a member's api_url may not be reachable
    from where gardenctl runs)."""
    configured = set(getattr(patroni, "endpoints", ()) or ())
    out = []
    for m in members:
        ep = endpoint_of(m) if m is not None else None
        if ep and ep in configured:
            out.append(ep)
    return tuple(out)


class _Run:
    """Book-keeping for one execution: moments from one start, progress lines, what was last seen."""

    def __init__(self, clock: Clock, progress: Callable[[str], None]) -> None:
        self.clock = clock
        self.progress = progress
        self.start = clock.now()
        self.moments: list[Moment] = []
        self.last_seen: str | None = None
        self._last_reported: str | None = None

    def elapsed(self) -> float:
        return self.clock.now() - self.start

    def mark(self, label: str, note: str = "") -> None:
        moment = Moment(label, round(self.elapsed(), 3))
        self.moments.append(moment)
        self.progress(f"[{moment.seconds:5.1f}s] {label}" + (f": {note}" if note else ""))

    def seen(self, observation: str) -> None:
        self.last_seen = observation
        if observation != self._last_reported:
            self._last_reported = observation
            self.progress(f"[{self.elapsed():5.1f}s]   seen: {observation}")


def execute(
    adapters: SwitchoverAdapters,
    plan: SwitchoverPlan,
    *,
    clock: Clock = REAL_CLOCK,
    progress: Callable[[str], None] | None = None,
    poll_interval: float = 0.5,
    now: datetime | None = None,
) -> SwitchoverResult:
    """Send the one request the plan describes and verify convergence. Always returns a result; ``result.error`` is
    the `GardenError` to exit with when it did not converge. Refuses (raises `PreconditionFailed`) a plan whose
    preflight did not pass. Never sends a second request."""
    if not plan.ok:
        raise plan.refusal()
    run = _Run(clock, progress or (lambda _m: None))
    patroni = adapters.patroni
    members = {m.name: m for m in plan.members}
    leader_member = members.get(plan.leader) if plan.leader else None
    candidate_member = members.get(plan.candidate) if plan.candidate else None
    warnings = [f"--force overrode: {c.name}: {c.detail}" for c in plan.preflight.overridden]

    def result(outcome: str, message: str, *, sent: bool, error: GardenError | None = None, answer: ActionAnswer | None = None, **extra: Any) -> SwitchoverResult:
        return SwitchoverResult(
            action=plan.action,
            outcome=outcome,
            converged=outcome == SUCCEEDED,
            message=message,
            plan=plan,
            request_sent=sent,
            patroni_status=answer.status if answer else None,
            patroni_answer=answer.text if answer else None,
            leader_before=plan.leader,
            timeline_before=plan.timeline,
            scheduled_at=plan.scheduled_at,
            moments=tuple(run.moments),
            warnings=tuple(warnings + list(extra.pop("more_warnings", []))),
            last_seen=run.last_seen,
            _error=error,
            **extra,
        )

    # ---- the one request
    run.mark(M_SENT, f"POST /{plan.action}" + (f" leader={plan.leader}" if plan.action == SWITCHOVER else "") + f" candidate={plan.candidate or '(Patroni chooses)'}")
    try:
        if plan.action == SWITCHOVER:
            if plan.leader is None:
                raise PreconditionFailed("no leader to switch over from")
            answer = patroni.switchover(plan.leader, plan.candidate, plan.scheduled_at, prefer=_prefer(patroni, [leader_member, candidate_member]))
        else:
            assert plan.candidate is not None
            answer = patroni.failover(plan.candidate, prefer=_prefer(patroni, [candidate_member, leader_member]))
    except BackendUnreachable as exc:
        return result(ERROR, f"no Patroni member accepted the request: {exc.message}; nothing was changed", sent=False, error=exc)
    except GardenError as exc:
        return result(REFUSED if isinstance(exc, PreconditionFailed) else ERROR, exc.message, sent=False, error=exc)
    run.mark(M_ANSWERED, f"HTTP {answer.status}: {answer.text[:200]}")

    # ---- Patroni's answer
    status, text = answer.status, answer.text
    if status == 202 or (plan.scheduled_at is not None and status in (200, 201)):
        return _verify_scheduled(adapters, plan, run, answer, result, poll_interval)
    if status == 412:
        err = PreconditionFailed(
            f"Patroni refused the {plan.action} (HTTP 412): {text}",
            hint="nothing was changed; gardenctl does not retry a 412 - fix what Patroni names and run it again",
        )
        return result(REFUSED, err.message, sent=True, error=err, answer=answer)
    if status in (400, 422):
        err = BackendError(f"Patroni rejected the {plan.action} request (HTTP {status}): {text}", status=status, body=text)
        return result(ERROR, err.message, sent=True, error=err, answer=answer)
    if status == 503 and not answer.in_progress:
        if "dcs" in text.lower() or "failover key" in text.lower():
            err = BackendError(f"Patroni could not register the {plan.action} (HTTP 503): {text}", status=status, body=text, hint="check etcd (quorum, alarms) with gardenctl status")
            return result(ERROR, err.message, sent=True, error=err, answer=answer)
        # "Switchover failed": the leader cleaned up the request. Look once, in case the leader changed anyway.
        try:
            cluster = patroni.get_cluster(with_config=False)
            run.seen(_describe(cluster))
        except GardenError as exc:
            cluster = None
            run.seen(f"no Patroni member answered: {exc.message}")
        if cluster is None or cluster.leader is None or cluster.leader.name == plan.leader:
            err = OperationFailed(
                f"Patroni answered HTTP 503: {text}; the leader is unchanged",
                hint="the leader drops the request when no candidate is healthy at the moment of demotion (lag, timeline, "
                "nofailover, unreachable); see the Patroni log of the leader",
            )
            return result(FAILED, err.message, sent=True, error=err, answer=answer, leader_after=cluster.leader.name if cluster and cluster.leader else None)
    elif status == 503:
        run.progress(f"[{run.elapsed():5.1f}s]   Patroni does not know yet whether it worked (503 status unknown): still in progress, polling without sending anything again")
    elif not 200 <= status < 300:
        err = BackendError(f"Patroni answered HTTP {status} to the {plan.action} request: {text}", status=status, body=text)
        return result(ERROR, err.message, sent=True, error=err, answer=answer)

    return _converge(adapters, plan, run, answer, result, poll_interval)


def _verify_scheduled(adapters: SwitchoverAdapters, plan: SwitchoverPlan, run: _Run, answer: ActionAnswer, result: Callable[..., SwitchoverResult], poll_interval: float) -> SwitchoverResult:
    def check() -> tuple[bool, str]:
        try:
            cluster = adapters.patroni.get_cluster(with_config=False)
        except GardenError as exc:
            return False, f"no Patroni member answered: {exc.message}"
        s = cluster.scheduled_switchover
        if s is None:
            return False, "no scheduled switchover visible yet"
        same = s.at is None or plan.scheduled_at is None or abs((s.at - plan.scheduled_at).total_seconds()) < 1.5
        return same, f"scheduled for {_utc_text(s.at)} from {s.from_member or '?'} to {s.to_member or 'any'}"

    try:
        wait_until(lambda: _observe(run, check), timeout=min(plan.timeout_seconds, 30.0), interval=poll_interval, what="Patroni to show the scheduled switchover", clock=run.clock)
    except OperationTimeout:
        err = OperationFailed(f"Patroni answered HTTP {answer.status} but does not show the scheduled switchover (last seen: {run.last_seen})")
        return result(FAILED, err.message, sent=True, error=err, answer=answer)
    run.mark(M_SCHEDULED, run.last_seen or "")
    to = plan.candidate or "a replica Patroni chooses then"
    message = f"switchover from {plan.leader} to {to} scheduled for {_utc_text(plan.scheduled_at)}"
    return result(SCHEDULED, message, sent=True, answer=answer)


def _observe(run: _Run, check: Callable[[], tuple[Any, str]]) -> Any:
    value, observation = check()
    run.seen(observation)
    return value


def _converge(adapters: SwitchoverAdapters, plan: SwitchoverPlan, run: _Run, answer: ActionAnswer, result: Callable[..., SwitchoverResult], poll_interval: float) -> SwitchoverResult:
    patroni = adapters.patroni
    clock = run.clock
    timeout = plan.timeout_seconds
    state: dict[str, Any] = {"cluster": None, "other_leader": None}

    # ---- 1. the candidate leads in Patroni, running, on a new timeline
    def new_leader() -> tuple[bool, str]:
        try:
            cluster = patroni.get_cluster(with_config=False)
        except GardenError as exc:
            return False, f"no Patroni member answered: {exc.message}"
        state["cluster"] = cluster
        leader = cluster.leader
        seen = _describe(cluster)
        if leader is None:
            return False, seen
        # Another member leading is not final yet: Patroni may still move the lead on to the candidate.
        state["other_leader"] = leader.name if leader.name not in (plan.leader, plan.candidate) else None
        if plan.candidate is not None and leader.name != plan.candidate:
            return False, seen
        if plan.candidate is None and leader.name == plan.leader:
            return False, seen
        new_timeline = plan.timeline is None or (leader.timeline is not None and leader.timeline > plan.timeline)
        return leader.state == "running" and new_timeline, seen

    if answer.status == 200 and "instead of" in answer.text:
        # Patroni's own verdict ("Switched over to "X" instead of "Y""): the request is consumed, nothing more moves.
        try:
            seen_cluster = patroni.get_cluster(with_config=False)
            run.seen(_describe(seen_cluster))
        except GardenError:
            seen_cluster = None
        leader_now = seen_cluster.leader if seen_cluster is not None else None
        err = OperationFailed(f"Patroni answered: {answer.text}", hint="check in the Patroni logs why the candidate was passed over")
        return result(FAILED, err.message, sent=True, error=err, answer=answer, leader_after=leader_now.name if leader_now else None, final_members=_members(seen_cluster))

    try:
        wait_until(lambda: _observe(run, new_leader), timeout=timeout, interval=poll_interval, what="the new leader in Patroni", clock=clock)
    except OperationTimeout:
        last: PatroniCluster | None = state["cluster"]
        if state["other_leader"] and last is not None and last.leader is not None:
            err = OperationFailed(
                f"{state['other_leader']} leads instead of {plan.candidate} (last seen: {run.last_seen})",
                hint="Patroni passed the candidate over (or an automatic failover came first); see the Patroni logs",
            )
            return result(FAILED, err.message, sent=True, error=err, answer=answer, leader_after=state["other_leader"], timeline_after=last.leader.timeline, final_members=last.members)
        err = OperationTimeout(
            f"timed out after {timeout:.0f}s waiting for {plan.candidate or 'a new leader'} to lead in Patroni (last seen: {run.last_seen})",
            hint="the request was sent once and may still complete; watch with `gardenctl status --watch 2` - do not send another",
        )
        return result(TIMED_OUT, err.message, sent=True, error=err, answer=answer, final_members=_members(last))
    cluster: PatroniCluster = state["cluster"]
    new = cluster.leader
    assert new is not None
    run.mark(M_LEADER, f"{new.name} leads on timeline {new.timeline}")
    timeline_after = new.timeline

    # ---- 2. a NEW connection through the read-write port lands on it, and accepts a write
    rw = adapters.rw
    if rw is None:  # the preflight refuses this; kept for direct callers
        err = OperationFailed("cannot verify routing: no HAProxy read-write address")
        return result(FAILED, err.message, sent=True, error=err, answer=answer, leader_after=new.name, timeline_after=timeline_after, final_members=cluster.members)

    def routed() -> tuple[bool, str]:
        try:
            landing = rw.where_am_i()
        except GardenError as exc:
            return False, f"read-write {exc.message.removeprefix('postgres: ')}"
        target = _member_for_landing(cluster, landing)
        name = target.name if target else f"{landing.server_addr}:{landing.server_port}"
        ok = target is not None and target.name == new.name and not landing.in_recovery
        return ok, f"read-write {rw.where} lands on {name}" + (" (in recovery)" if landing.in_recovery else "")

    def writable() -> tuple[bool, str]:
        try:
            landing = rw.where_am_i()
            if not landing_matches(new, landing):
                return False, f"read-write {rw.where} lands on {landing.server_addr}:{landing.server_port} again"
            return rw.can_write(), f"read-write {rw.where}: write on {new.name}"
        except GardenError as exc:
            return False, f"read-write {exc.message.removeprefix('postgres: ')}"

    for what, check, label in (("HAProxy to route read-write to the new leader", routed, M_ROUTED), ("a write through HAProxy to succeed", writable, M_WRITABLE)):
        try:
            wait_until(lambda c=check: _observe(run, c), timeout=timeout, interval=min(poll_interval, 0.25), what=what, clock=clock)
        except OperationTimeout:
            err = OperationTimeout(f"timed out after {timeout:.0f}s waiting for {what} (last seen: {run.last_seen})", hint="gardenctl status shows what HAProxy sees")
            return result(TIMED_OUT, err.message, sent=True, error=err, answer=answer, leader_after=new.name, timeline_after=timeline_after, final_members=cluster.members)
        run.mark(label, run.last_seen or "")

    # ---- 3. the old leader is back as a streaming replica
    more_warnings: list[str] = []
    old = plan.leader
    wait_for_old = old is not None and old != new.name and (plan.action == SWITCHOVER or plan.leader_reachable)

    def old_streaming() -> tuple[bool, str]:
        try:
            c = patroni.get_cluster(with_config=False)
        except GardenError as exc:
            return False, f"no Patroni member answered: {exc.message}"
        state["cluster"] = c
        m = c.member(old) if old else None
        if m is None:
            return False, f"{old} is not in the cluster"
        ok = m.is_streaming and (timeline_after is None or m.timeline == timeline_after)
        return ok, f"{old} {m.role}/{m.state}" + (f" tl{m.timeline}" if m.timeline is not None else "")

    if wait_for_old:
        try:
            wait_until(lambda: _observe(run, old_streaming), timeout=timeout, interval=poll_interval, what=f"{old} to stream as a replica", clock=clock)
        except OperationTimeout:
            err = OperationTimeout(
                f"timed out after {timeout:.0f}s waiting for the old leader {old} to stream as a replica (last seen: {run.last_seen})",
                hint=f"{new.name} leads and takes writes; {old} may need pg_rewind or a reinit - see its Patroni log",
            )
            return result(TIMED_OUT, err.message, sent=True, error=err, answer=answer, leader_after=new.name, timeline_after=timeline_after, final_members=_members(state["cluster"]))
        run.mark(M_OLD_STREAMING, run.last_seen or "")

    try:
        final = patroni.get_cluster(with_config=False)
    except GardenError:
        final = state["cluster"] or cluster
    if old is not None and not wait_for_old:
        m = final.member(old)
        if m is None or not m.is_running:
            state_text = "not in the cluster any more" if m is None else f"state {m.state}"
            more_warnings.append(
                f"old leader {old} is not running ({state_text}): {new.name} serves writes without it, and the cluster has one replica "
                f"less until {old} is started again (it rejoins as a replica, with pg_rewind if needed)"
            )
    for m in final.members:
        if m.name not in (new.name, old) and not m.is_streaming and not m.is_leader:
            more_warnings.append(f"{m.name} is {m.role}/{m.state}, not streaming yet")

    message = f"{new.name} leads on timeline {timeline_after}; HAProxy routes read-write to it and it accepts writes"
    if wait_for_old:
        message += f"; {old} streams from it"
    return result(SUCCEEDED, message, sent=True, answer=answer, leader_after=new.name, timeline_after=timeline_after, final_members=final.members, more_warnings=more_warnings)


def _members(cluster: PatroniCluster | None) -> tuple[PatroniMember, ...]:
    return cluster.members if cluster is not None else ()
