"""The one health rule engine, shared by ``gardenctl status`` and ``gardenctl check``.

Each rule is a named function registered with `rule`. The name is stable: ``check --only/--skip`` select rules by it
and the Prometheus metric ``gardenctl_check_status{rule=...}`` carries it. A rule declares the layers it needs
(``patroni``, ``etcd``, ``haproxy``, or an optional layer such as ``k3s``); the engine runs it only when those layers
answered:

- a needed layer that was not collected at all (an optional layer without config) -> the rule is *not applicable*;
- a needed layer that did not answer -> the rule is *not evaluated* (its status is UNKNOWN, without a finding of its
  own: the layer's ``*_reachable`` rule already says why).

A rule returns its findings; none means OK. Rules add an explicit OK finding only for the facts worth showing on a
healthy cluster (who leads, how many replicas stream, where read-write goes, etcd quorum).

"Unknown is not zero": a lag Patroni reports as unknown is ``None`` and is never compared as 0; an alarm list that
could not be read is not "no alarms".

Optional layers (added by later features) register their rules from their own module with the same decorator, e.g.::

    from gardenctl.ops.rules import RuleInput, rule

    @rule("k3s_nodes_ready", layer="k3s", needs=("k3s",), description="every K3s node is Ready")
    def _k3s_nodes_ready(inp: RuleInput):
        ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterable

from gardenctl.errors import ConfigError
from gardenctl.model import (
    EtcdCluster,
    Finding,
    HAProxyServer,
    HAProxyState,
    PatroniCluster,
    PatroniMember,
    Probe,
    Severity,
    endpoint_key,
)

CORE_LAYERS = ("patroni", "etcd", "haproxy")
OPTIONAL_LAYER_FIELDS = ("hetzner", "k3s")

OK, WARNING, CRITICAL, UNKNOWN = Severity.OK, Severity.WARNING, Severity.CRITICAL, Severity.UNKNOWN


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """Thresholds and facts a rule needs besides the collected layers. Built from the context's config."""

    lag_warning_bytes: int = 1024 * 1024
    lag_critical_bytes: int = 16 * 1024 * 1024
    maintenance_critical_minutes: int = 60
    etcd_db_warning_percent: int = 80

    @staticmethod
    def of(thresholds: Any) -> "RuleSettings":
        """From `gardenctl.config.Thresholds` (or anything with the same attributes; None -> defaults)."""
        if thresholds is None:
            return RuleSettings()
        if isinstance(thresholds, RuleSettings):
            return thresholds
        d = RuleSettings()
        return RuleSettings(
            lag_warning_bytes=getattr(thresholds, "lag_warning_bytes", d.lag_warning_bytes),
            lag_critical_bytes=getattr(thresholds, "lag_critical_bytes", d.lag_critical_bytes),
            maintenance_critical_minutes=getattr(thresholds, "maintenance_critical_minutes", d.maintenance_critical_minutes),
            etcd_db_warning_percent=getattr(thresholds, "etcd_db_warning_percent", d.etcd_db_warning_percent),
        )


@dataclass(frozen=True, slots=True)
class RuleInput:
    """What every rule sees. ``patroni``/``etcd``/``haproxy`` are the answered values (None when the layer did not
    answer or was not collected); ``probes`` has every collected layer's Probe, optional layers included."""

    probes: dict[str, Probe[Any]]
    settings: RuleSettings
    now: datetime
    paused_since: datetime | None = None
    patroni_endpoints: tuple[str, ...] = ()
    patroni_scope: str | None = None  # the context's scope: Patroni must answer for this cluster

    @property
    def patroni(self) -> PatroniCluster | None:
        return _value(self.probes.get("patroni"))

    @property
    def etcd(self) -> EtcdCluster | None:
        return _value(self.probes.get("etcd"))

    @property
    def haproxy(self) -> HAProxyState | None:
        return _value(self.probes.get("haproxy"))

    def value(self, layer: str) -> Any:
        return _value(self.probes.get(layer))


def _value(probe: Probe[Any] | None) -> Any:
    return probe.value if probe is not None and probe.ok else None


RuleFn = Callable[[RuleInput], Iterable[Finding]]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    layer: str
    needs: tuple[str, ...]
    description: str
    fn: RuleFn = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RuleResult:
    """The outcome of one rule. ``evaluated`` False: a needed layer did not answer, so the rule could not run and
    its severity is UNKNOWN (the reason is in ``reason``; the layer's ``*_reachable`` finding explains it)."""

    name: str
    layer: str
    severity: Severity
    evaluated: bool
    findings: tuple[Finding, ...] = ()
    reason: str | None = None


RULES: dict[str, Rule] = {}


def rule(name: str, *, layer: str, needs: tuple[str, ...], description: str) -> Callable[[RuleFn], RuleFn]:
    """Register a rule under a stable ``name`` (``[a-z0-9_]+``). Re-registering a name replaces it."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"rule name {name!r} must match [a-z][a-z0-9_]*")

    def register(fn: RuleFn) -> RuleFn:
        RULES[name] = Rule(name=name, layer=layer, needs=tuple(needs), description=description, fn=fn)
        return fn

    return register


def rule_names() -> tuple[str, ...]:
    return tuple(RULES)


def select_rules(only: Iterable[str] = (), skip: Iterable[str] = ()) -> tuple[str, ...]:
    """Rule names after ``--only`` / ``--skip`` (exact names or shell patterns like ``etcd_*``).

    Raises `ConfigError` naming the known rules when a name or pattern matches nothing."""
    names = rule_names()
    only = [p.strip() for item in only for p in item.split(",") if p.strip()]
    skip = [p.strip() for item in skip for p in item.split(",") if p.strip()]
    unknown = [p for p in (*only, *skip) if not any(fnmatchcase(n, p) for n in names)]
    if unknown:
        raise ConfigError(
            f"unknown rule{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            hint="known rules: " + ", ".join(names) + " (gardenctl check --list-rules describes them)",
        )
    selected = [n for n in names if not only or any(fnmatchcase(n, p) for p in only)]
    return tuple(n for n in selected if not any(fnmatchcase(n, p) for p in skip))


# ------------------------------------------------------------------------------------------------ the engine


def _probes_of(report_or_snapshot: Any) -> dict[str, Probe[Any]]:
    """Layer probes from a `StatusReport` or any object with ``patroni``/``etcd``/``haproxy``/... attributes holding
    a Probe, a bare value (taken as answered) or None (not collected)."""
    probes: dict[str, Probe[Any]] = {}
    for layer in (*CORE_LAYERS, *OPTIONAL_LAYER_FIELDS, *_extra_layers()):
        if isinstance(report_or_snapshot, dict):
            item = report_or_snapshot.get(layer)
        else:
            item = getattr(report_or_snapshot, layer, None)
        if item is None:
            continue
        probes[layer] = item if isinstance(item, Probe) else Probe(item)
    return probes


def _extra_layers() -> tuple[str, ...]:
    known = set(CORE_LAYERS) | set(OPTIONAL_LAYER_FIELDS)
    return tuple(dict.fromkeys(n for r in RULES.values() for n in r.needs if n not in known))


def evaluate_rules(
    report_or_snapshot: Any,
    thresholds: Any = None,
    now: datetime | None = None,
    *,
    paused_since: datetime | None = None,
    patroni_endpoints: tuple[str, ...] = (),
    patroni_scope: str | None = None,
    only: Iterable[str] = (),
    skip: Iterable[str] = (),
) -> tuple[RuleResult, ...]:
    """Run the selected rules; one `RuleResult` per applicable rule, in registration order."""
    inp = RuleInput(
        probes=_probes_of(report_or_snapshot),
        settings=RuleSettings.of(thresholds),
        now=_utc(now or datetime.now(timezone.utc)),
        paused_since=_utc(paused_since) if paused_since else None,
        patroni_endpoints=tuple(patroni_endpoints),
        patroni_scope=patroni_scope,
    )
    results: list[RuleResult] = []
    for name in select_rules(only, skip):
        r = RULES[name]
        missing = [layer for layer in r.needs if layer not in inp.probes]
        if missing or (r.layer in OPTIONAL_LAYER_FIELDS and r.layer not in inp.probes):
            continue  # not applicable: the layer is not configured / not collected (no "OK" for what was never asked)
        failed = [layer for layer in r.needs if not inp.probes[layer].ok]
        if failed:
            results.append(RuleResult(r.name, r.layer, UNKNOWN, False, (), f"{', '.join(failed)} did not answer"))
            continue
        findings = tuple(_normalise(r, f) for f in r.fn(inp))
        severity = Severity.worst(f.severity for f in findings)
        results.append(RuleResult(r.name, r.layer, severity, True, findings))
    return tuple(results)


def evaluate(
    report_or_snapshot: Any,
    thresholds: Any = None,
    now: datetime | None = None,
    *,
    paused_since: datetime | None = None,
    patroni_endpoints: tuple[str, ...] = (),
    patroni_scope: str | None = None,
    only: Iterable[str] = (),
    skip: Iterable[str] = (),
) -> tuple[Finding, ...]:
    """Every finding of the selected rules, in rule order (see `evaluate_rules`)."""
    results = evaluate_rules(
        report_or_snapshot,
        thresholds,
        now,
        paused_since=paused_since,
        patroni_endpoints=patroni_endpoints,
        patroni_scope=patroni_scope,
        only=only,
        skip=skip,
    )
    return tuple(f for r in results for f in r.findings)


def _normalise(r: Rule, f: Finding) -> Finding:
    if f.rule == r.name and f.layer == r.layer:
        return f
    return Finding(rule=r.name, severity=f.severity, message=f.message, layer=r.layer, subject=f.subject, hint=f.hint)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _f(severity: Severity, message: str, subject: str | None = None, hint: str | None = None) -> Finding:
    # rule and layer are filled in by the engine from the registration.
    return Finding(rule="", severity=severity, message=message, layer="", subject=subject, hint=hint)


# ------------------------------------------------------------------------------------------------ formatting


def human_bytes(n: int | None) -> str:
    """``1048576`` -> ``1.0 MiB``; None -> ``unknown`` (never 0)."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _names(members: Iterable[Any]) -> str:
    return ", ".join(getattr(m, "name", str(m)) for m in members)


# ------------------------------------------------------------------------------------------------ reachability


def _reachable(layer: str, label: str, consequence: str, down_hint: str | None = None) -> RuleFn:
    def check(inp: RuleInput) -> Iterable[Finding]:
        probe = inp.probes.get(layer)
        if probe is None:
            return []
        if probe.down:
            return [_f(CRITICAL, f"{label} did not answer: {probe.error}", layer, down_hint or consequence)]
        if probe.error is not None or probe.value is None:
            return [_f(UNKNOWN, f"{label} did not answer: {probe.error or 'no data'}", layer, consequence)]
        return []

    return check


rule("patroni_reachable", layer="patroni", needs=(), description="some Patroni REST endpoint answers GET /cluster")(
    _reachable("patroni", "Patroni", "check patroni.endpoints of this context and that Patroni runs; the rules on members are not evaluated")
)
rule("etcd_reachable", layer="etcd", needs=(), description="some etcd endpoint answers (members, status)")(
    _reachable("etcd", "etcd", "check etcd.endpoints of this context and that etcd runs; quorum and alarms are not evaluated")
)
rule(
    "haproxy_reachable",
    layer="haproxy",
    needs=(),
    description="the HAProxy stats socket or page answers; CRITICAL when the read-write address refuses clients too (HAProxy down)",
)(
    _reachable(
        "haproxy",
        "HAProxy stats",
        "check haproxy.stats-socket / stats-url of this context; routing is not evaluated",
        down_hint="start HAProxy on the node (lab: gardenctl lab up); until then every client connection fails",
    )
)
rule("hetzner_reachable", layer="hetzner", needs=(), description="the Hetzner Cloud API answers (contexts with a hetzner section)")(
    _reachable("hetzner", "Hetzner Cloud API", "check the hetzner section of this context and the API token")
)
rule("k3s_reachable", layer="k3s", needs=(), description="the K3s API server answers (contexts with a kubernetes section)")(
    _reachable("k3s", "K3s API server", "check the kubernetes section of this context and the kubeconfig")
)


# ------------------------------------------------------------------------------------------------ Patroni


def _member_summary(members: Iterable[PatroniMember]) -> str:
    return ", ".join(f"{m.name} {m.role}/{m.state}" for m in members) or "no members"


@rule(
    "patroni_scope",
    layer="patroni",
    needs=("patroni",),
    description="Patroni answers for the scope the context names (the endpoints point at the right cluster)",
)
def _scope(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    if not inp.patroni_scope or not cluster.scope or cluster.scope == inp.patroni_scope:
        return []
    return [
        _f(
            CRITICAL,
            f"Patroni answers for scope {cluster.scope!r}, but this context is for {inp.patroni_scope!r}: "
            "its endpoints point at another cluster, and every finding here is about that one",
            hint="fix scope or patroni.endpoints of this context (gardenctl config view)",
        )
    ]


@rule("patroni_leader", layer="patroni", needs=("patroni",), description="exactly one leader, running, its own REST API answering")
def _leader(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    leaders = cluster.leaders
    if not cluster.members:
        return [_f(CRITICAL, "no leader: Patroni lists no members", hint="check that Patroni runs on the nodes and reaches etcd")]
    if not leaders:
        why = " (maintenance mode is on: Patroni will not elect one by itself)" if cluster.paused else ""
        return [
            _f(
                CRITICAL,
                f"no leader{why} (members: {_member_summary(cluster.members)})",
                hint="Patroni elects a leader within ttl when a healthy replica can take the leader key; "
                "if none appears, check etcd quorum and the members' logs",
            )
        ]
    if len(leaders) > 1:
        return [_f(CRITICAL, f"{len(leaders)} leaders: {_names(leaders)} (two primaries)", subject=leaders[0].name)]
    leader = leaders[0]
    if leader.api_error is not None:
        return [
            _f(
                CRITICAL,
                f"leader {leader.name}'s REST API does not answer ({leader.api_error}): node or Patroni down? "
                f"The DCS still lists {leader.name} as {leader.state!r} until its leader key expires (ttl); then Patroni fails over",
                subject=leader.name,
                hint=f"is Patroni on {leader.name} running? (lab: gardenctl lab status)",
            )
        ]
    if _being_promoted(inp, leader):
        own_role = leader.self_report.role if leader.self_report else None
        return [
            _f(
                WARNING,
                f"{leader.name} holds the leader key but still says it is a {own_role}: being promoted (etcd has quorum); "
                "writes wait until it runs as primary",
                subject=leader.name,
                hint="it should say primary within a few seconds; if not, see its Patroni log",
            )
        ]
    why_not = leader.primary_problem()
    if why_not:
        return [
            _f(
                CRITICAL,
                f"{leader.name} holds the leader key but {why_not}: no primary takes writes",
                subject=leader.name,
                hint="a leader that cannot renew its key in etcd demotes itself (etcd quorum lost? see etcd_quorum); "
                "Patroni's failsafe_mode keeps it primary while every member still answers it",
            )
        ]
    running = leader.is_running if leader.role == "standby_leader" else leader.state == "running"
    if not running:
        return [
            _f(
                CRITICAL,
                f"leader {leader.name} is {leader.state!r}, not running: writes fail until it recovers or fails over",
                subject=leader.name,
            )
        ]
    tl = leader.timeline if leader.timeline is not None else "-"
    return [_f(OK, f"{leader.name} leads ({leader.role}, timeline {tl})", subject=leader.name)]


@rule(
    "patroni_replication",
    layer="patroni",
    needs=("patroni",),
    description="every replica streams and its own REST API answers; CRITICAL when none does (nothing to fail over to)",
)
def _replication(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    out: list[Finding] = []
    replicas = cluster.replicas
    for m in replicas:
        own = m.self_report
        if own is not None and own.is_primary:
            out.append(
                _f(
                    CRITICAL,
                    f"{m.name} says it is a primary, but the leader key is {cluster.leader.name if cluster.leader else 'not its'}: two primaries?",
                    m.name,
                    hint="Patroni demotes a primary that lost the leader key on its next loop; if it persists, stop it",
                )
            )
        elif own is not None and m.is_streaming and own.state is not None and own.state != "running":
            out.append(_f(WARNING, f"{m.name} says its PostgreSQL is {own.state!r} (the DCS still lists it streaming)", m.name))
        elif own is not None and m.is_streaming and own.replication_state not in (None, "streaming"):
            out.append(_f(WARNING, f"{m.name} says its replication is {own.replication_state!r} (the DCS still lists it streaming)", m.name))
        elif m.api_error is not None:
            out.append(
                _f(
                    WARNING,
                    f"{m.name}'s REST API does not answer ({m.api_error}): node or Patroni down? "
                    f"(the DCS keeps its last state {m.state!r} until its member key expires after ttl)",
                    m.name,
                )
            )
        elif not m.role_known:
            out.append(_f(WARNING, f"{m.name}: role {m.role!r} is not one gardenctl knows (state {m.state!r})", m.name))
        elif m.is_streaming:
            continue
        elif m.state == "start failed":
            out.append(
                _f(WARNING, f"{m.name} failed to start (state 'start failed'): not replicating", m.name, hint=f"see the PostgreSQL log on {m.name}")
            )
        else:
            out.append(_f(WARNING, f"{m.name} is {m.state!r}, not streaming", m.name))
    streaming = [m for m in replicas if m.streams_now]
    if replicas and cluster.leader_down:
        # without a working leader nothing streams: that is the leader's finding, not each replica's
        lost = [f for f in out if f.subject and (m := cluster.member(f.subject)) is not None and m.state == "running" and f.severity is WARNING and f.message.endswith("not streaming")]
        out = [f for f in out if f not in lost]
        if lost:
            names = ", ".join(f.subject or "" for f in lost)
            out.append(_f(WARNING, f"{names} running but not streaming: the leader is down or being promoted (see patroni_leader)"))
    elif replicas and not streaming:
        word = "replica" if len(replicas) == 1 else "replicas"
        out.append(_f(CRITICAL, f"no replica is streaming ({len(replicas)} {word}): nothing to fail over to"))
    elif replicas and len(streaming) == len(replicas):
        missing = len(inp.patroni_endpoints) - len(cluster.members)
        gone = f" ({missing} configured {'node is' if missing == 1 else 'nodes are'} not in the cluster: see patroni_members)" if missing > 0 else ""
        out.append(_f(OK, f"{len(streaming)} of {len(replicas)} replicas streaming{gone}"))
    return out


@rule(
    "patroni_lag",
    layer="patroni",
    needs=("patroni",),
    description="streaming replicas' lag (lag, receive and replay lag in bytes) below the warning/critical thresholds; unknown lag is a WARNING",
)
def _lag(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    s = inp.settings
    out: list[Finding] = []
    worst_seen: int | None = None
    for m in cluster.replicas:
        if not m.streams_now:
            continue  # patroni_replication reports it; its lag is unknown or stale
        values = {"lag": m.lag_bytes, "receive lag": m.receive_lag_bytes, "replay lag": m.replay_lag_bytes}
        known = {k: v for k, v in values.items() if v is not None}
        if m.lag_bytes is None:
            out.append(
                _f(WARNING, f"{m.name}: lag unknown (Patroni reports no WAL position): not an eligible failover candidate", m.name)
            )
        if not known:
            continue
        which, worst = max(known.items(), key=lambda kv: kv[1])
        worst_seen = worst if worst_seen is None else max(worst_seen, worst)
        if worst > s.lag_critical_bytes:
            out.append(_f(CRITICAL, f"{m.name}: {which} {human_bytes(worst)} above the critical threshold {human_bytes(s.lag_critical_bytes)}", m.name))
        elif worst > s.lag_warning_bytes:
            out.append(_f(WARNING, f"{m.name}: {which} {human_bytes(worst)} above the warning threshold {human_bytes(s.lag_warning_bytes)}", m.name))
    if not out and worst_seen is not None:
        out.append(_f(OK, f"replication lag within thresholds (largest {human_bytes(worst_seen)})"))
    return out


@rule("patroni_timeline", layer="patroni", needs=("patroni",), description="replicas are on the leader's timeline")
def _timeline(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    leader = cluster.leader
    if leader is None or leader.timeline is None:
        return []
    out = []
    for m in cluster.replicas:
        if m.timeline is None:
            continue  # unknown timeline: shown as '-', its state is reported by patroni_replication
        if m.timeline < leader.timeline:
            out.append(
                _f(
                    WARNING,
                    f"{m.name} is on timeline {m.timeline}, the leader {leader.name} on {leader.timeline}: it has not followed the last promotion",
                    m.name,
                    hint="Patroni rewinds or re-clones a replica that cannot follow; if it persists, see the member's log (patronictl reinit)",
                )
            )
        elif m.timeline > leader.timeline:
            out.append(_f(WARNING, f"{m.name} is on timeline {m.timeline}, newer than the leader's {leader.timeline}: histories diverged?", m.name))
    return out


@rule(
    "patroni_failover_candidates",
    layer="patroni",
    needs=("patroni",),
    description="at least one replica could be promoted now (streaming, REST API answering, known lag within maximum_lag_on_failover, same timeline, tags allow it)",
)
def _candidates(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    leader = cluster.leader
    if leader is not None and _being_promoted(inp, leader):
        return [_f(OK, f"{leader.name} is being promoted: the candidates are judged again once it runs as primary")]
    down = cluster.leader_down
    eligible = tuple(m for m in cluster.replicas if not cluster.candidate_problems(m, leader_down=down))
    if eligible:
        word = "candidate" if len(eligible) == 1 else "candidates"
        etcd = inp.etcd
        if etcd is not None and etcd.voters and not etcd.has_quorum:
            return [_f(WARNING, f"{len(eligible)} eligible failover {word} ({_names(eligible)}), but etcd has no quorum: Patroni cannot fail over until it returns")]
        if down:
            return [_f(OK, f"the leader is down; Patroni can promote {_names(eligible)} (running, lag within the limit)")]
        return [_f(OK, f"{len(eligible)} eligible failover {word}: {_names(eligible)}")]
    replicas = cluster.replicas
    if not replicas:
        return [_f(CRITICAL, "no eligible failover candidate: the cluster has no replica")]
    reasons = "; ".join(f"{m.name}: {', '.join(cluster.candidate_problems(m, leader_down=down))}" for m in replicas)
    return [_f(CRITICAL, f"no eligible failover candidate ({reasons})")]


@rule(
    "patroni_tags",
    layer="patroni",
    needs=("patroni",),
    description="member tags are readable and do not contradict each other (nofailover vs failover_priority)",
)
def _tags(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    out = []
    for m in cluster.members:
        elig = m.eligibility
        tags = m.tags or {}
        if elig.conflicting_tags:
            verdict = "eligible" if elig.eligible else "not eligible"
            out.append(
                _f(
                    WARNING,
                    f"{m.name}: conflicting tags nofailover={tags.get('nofailover')!r} and failover_priority={tags.get('failover_priority')!r} "
                    f"(nofailover wins: {verdict})",
                    m.name,
                    hint="keep one of the two tags in the member's patroni.yml",
                )
            )
        elif elig.reason and elig.reason.startswith("unreadable"):
            out.append(_f(WARNING, f"{m.name}: {elig.reason}: treated as not eligible for failover", m.name))
    return out


@rule(
    "patroni_members",
    layer="patroni",
    needs=("patroni",),
    description="every Patroni endpoint in the context answers and has a member in the cluster (a stopped node disappears after ttl)",
)
def _members(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    endpoints = inp.patroni_endpoints
    if not endpoints:
        return []
    present = {endpoint_key(m.api_url) for m in cluster.members} - {None}
    configured = {e: endpoint_key(e) for e in endpoints}
    matched = [e for e, key in configured.items() if key in present]
    unanswered = {endpoint_key(e): error for e, error in cluster.unanswered.items()}
    if matched:
        missing = [e for e, key in configured.items() if key not in present]
        return [
            _f(
                WARNING,
                f"no Patroni member answers for the configured endpoint {e}: node stopped or removed from the cluster"
                + (f" (the endpoint: {unanswered[configured[e]]})" if configured[e] in unanswered else ""),
                e,
            )
            for e in missing
        ]
    # The context names members differently from their api_url (DNS names vs addresses): the members cannot be told
    # apart, so an endpoint that does not answer is reported here (the member rules cannot name it).
    out = [
        _f(WARNING, f"the configured Patroni endpoint {e} does not answer ({error}): node or Patroni down?", e)
        for e, error in cluster.unanswered.items()
    ]
    if len(cluster.members) < len(endpoints):
        out.append(_f(WARNING, f"{len(cluster.members)} Patroni members but {len(endpoints)} endpoints in the context: a node is stopped or removed"))
    return out


@rule(
    "patroni_maintenance",
    layer="patroni",
    needs=("patroni",),
    description="maintenance mode (pause) is off; WARNING while on, CRITICAL after thresholds.maintenance-critical-minutes",
)
def _maintenance(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    if not cluster.paused:
        return []
    hint = "when the maintenance is over: patronictl resume (PATCH /config {\"pause\": false})"
    limit = inp.settings.maintenance_critical_minutes
    if inp.paused_since is None:
        return [
            _f(
                WARNING,
                "maintenance mode is on: automatic failover is off (since when is unknown: Patroni does not record it)",
                hint=hint,
            )
        ]
    minutes = max(int((inp.now - inp.paused_since).total_seconds() // 60), 0)
    since = inp.paused_since.strftime("%Y-%m-%d %H:%M:%SZ")
    if minutes >= limit:
        return [
            _f(
                CRITICAL,
                f"maintenance mode on for at least {minutes} min (first seen {since}): automatic failover is off",
                hint=hint,
            )
        ]
    return [
        _f(
            WARNING,
            f"maintenance mode on for at least {minutes} min (first seen {since}; CRITICAL after {limit} min): automatic failover is off",
            hint=hint,
        )
    ]


@rule("patroni_pending_restart", layer="patroni", needs=("patroni",), description="no member waits for a restart to apply changed parameters")
def _pending_restart(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    scope = cluster.scope or "<scope>"
    return [
        _f(
            WARNING,
            f"{m.name} needs a restart to apply changed PostgreSQL parameters (pending restart)",
            m.name,
            hint=f"patronictl restart {scope} {m.name} (a replica first, the leader last or after a switchover)",
        )
        for m in cluster.members
        if m.pending_restart
    ]


@rule(
    "patroni_scheduled_switchover",
    layer="patroni",
    needs=("patroni",),
    description="a scheduled switchover has not overrun its time (Patroni runs it on its next HA loop)",
)
def _scheduled(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.patroni
    assert cluster is not None
    sched = cluster.scheduled_switchover
    if sched is None:
        return []
    who = f"{sched.from_member or '?'} -> {sched.to_member or 'any eligible replica'}"
    if sched.at is None:
        return [_f(WARNING, f"a switchover is scheduled ({who}) at a time gardenctl cannot read")]
    at = _utc(sched.at)
    loop_wait = (cluster.config.loop_wait_seconds if cluster.config else None) or 10
    grace = timedelta(seconds=2 * loop_wait)
    when = at.strftime("%Y-%m-%d %H:%M:%SZ")
    if inp.now > at + grace:
        late = int((inp.now - at).total_seconds())
        return [
            _f(
                WARNING,
                f"scheduled switchover ({who}) at {when} has not happened ({late}s overdue)",
                hint="see the leader's Patroni log; cancel it with patronictl flush <scope> switchover",
            )
        ]
    return [_f(OK, f"switchover scheduled at {when} ({who})")]


# ------------------------------------------------------------------------------------------------ HAProxy


def _server_is_member(server: HAProxyServer, member: PatroniMember) -> bool:
    if server.name == member.name:
        return True
    return server.address is not None and member.host is not None and server.address == member.address


def _in_rotation(servers: Iterable[HAProxyServer]) -> tuple[list[HAProxyServer], list[HAProxyServer]]:
    """(servers HAProxy sends new connections to, of which the ones without a health check).
    Backup servers take traffic only when no active server is available."""
    servers = list(servers)
    nocheck = [s for s in servers if s.status == "NO CHECK"]
    active = [s for s in servers if not s.backup and (s.is_up or s.status == "NO CHECK")]
    if active:
        return active, [s for s in nocheck if not s.backup]
    backup = [s for s in servers if s.backup and (s.is_up or s.status == "NO CHECK")]
    return backup, [s for s in nocheck if s.backup]


def _backend_names(state: HAProxyState) -> str:
    names = [b.name for b in state.backends] or sorted({s.backend for s in state.servers})
    return ", ".join(names) or "none"


@rule(
    "haproxy_rw",
    layer="haproxy",
    needs=("haproxy",),
    description="the read-write backend has exactly one server UP, and it is the Patroni leader (cross-layer)",
)
def _haproxy_rw(inp: RuleInput) -> Iterable[Finding]:
    state = inp.haproxy
    assert state is not None
    rw = state.rw_backend
    servers = state.servers_of(rw) if rw else ()
    if not rw or (not servers and rw not in {b.name for b in state.backends}):
        return [
            _f(
                UNKNOWN,
                f"HAProxy has no read-write backend {rw!r} (backends: {_backend_names(state)})",
                hint="set haproxy.rw-backend of this context to the listener that checks GET /primary",
            )
        ]
    routed, nocheck = _in_rotation(servers)
    if nocheck:
        return [
            _f(
                UNKNOWN,
                f"read-write ({rw}): {_names(nocheck)} without a health check: where writes go is unknown",
                hint="add `check port <patroni REST port>` with `option httpchk GET /primary` to every server",
            )
        ]
    if not routed:
        detail = ", ".join(f"{s.name} {s.status_text or s.status}" for s in servers) or "no servers"
        return [_f(CRITICAL, f"read-write ({rw}): no server UP: writes fail ({detail})")]
    if len(routed) > 1:
        return [_f(CRITICAL, f"read-write ({rw}): {len(routed)} servers UP ({_names(routed)}): two primaries behind the balancer")]
    target = routed[0]
    cluster = inp.patroni
    leader = cluster.leader if cluster is not None else None
    if leader is None:
        why = "Patroni did not answer" if cluster is None else "Patroni has no single leader"
        return [_f(OK, f"read-write ({rw}) routes to {target.name} ({why}: not cross-checked)", target.name)]
    if not _server_is_member(target, leader):
        return [
            _f(
                CRITICAL,
                f"read-write ({rw}) routes to {target.name}, but the Patroni leader is {leader.name}",
                target.name,
                hint="HAProxy checks GET /primary on each member: a member that answers 200 believes it is the primary",
            )
        ]
    why_not = leader.primary_problem()
    if why_not:
        return [_f(CRITICAL, f"read-write ({rw}) routes to {target.name}, the leader in the DCS, but {why_not}: writes fail", target.name)]
    return [_f(OK, f"read-write ({rw}) routes to {target.name}, the leader", target.name)]


def _being_promoted(inp: RuleInput, leader: PatroniMember) -> bool:
    """The leader key is taken and the member still says replica while etcd has quorum: a promotion under way (a
    leader demoted by a lost quorum says the same, which is why quorum decides)."""
    own = leader.self_report
    etcd = inp.etcd
    return (
        leader.role != "standby_leader"
        and leader.api_error is None
        and own is not None
        and own.role is not None
        and not own.is_primary
        and own.state in (None, "running")
        and etcd is not None
        and bool(etcd.voters)
        and etcd.has_quorum
    )


@rule("haproxy_ro", layer="haproxy", needs=("haproxy",), description="the read-only backend (when configured) has a server UP")
def _haproxy_ro(inp: RuleInput) -> Iterable[Finding]:
    state = inp.haproxy
    assert state is not None
    ro = state.ro_backend
    servers = state.servers_of(ro) if ro else ()
    if not servers:
        return []  # no read-only listener in this setup
    routed, _ = _in_rotation(servers)
    if not routed:
        return [_f(WARNING, f"read-only ({ro}): no server UP: read-only clients cannot connect")]
    return [_f(OK, f"read-only ({ro}) routes to {_names(routed)}")]


@rule(
    "haproxy_servers",
    layer="haproxy",
    needs=("haproxy",),
    description="servers of the read-write/read-only backends: REST API reachable, no MAINT/DRAIN left behind, health checked",
)
def _haproxy_servers(inp: RuleInput) -> Iterable[Finding]:
    state = inp.haproxy
    assert state is not None
    out: list[Finding] = []
    backends = [b for b in (state.rw_backend, state.ro_backend) if b]
    for backend in dict.fromkeys(backends):
        for s in state.servers_of(backend):
            where = f"{backend}/{s.name}"
            check = " ".join(str(x) for x in (s.check_status, s.check_code) if x is not None) or "no check result"
            if s.status == "UP":
                if s.transition:
                    out.append(_f(WARNING, f"{where} is UP but failing its checks (going down, {s.transition}; last check {check})", where))
            elif s.is_administrative:
                detail = f", {s.status_detail}" if s.status_detail else ""
                out.append(
                    _f(
                        WARNING,
                        f"{where} is in {s.status} (administrative{detail}): set by an operator, not by a health check",
                        where,
                        hint=f"when done: `set server {where} state ready` on the HAProxy stats socket",
                    )
                )
            elif s.status == "NO CHECK":
                out.append(_f(WARNING, f"{where} has no health check: its health is unknown", where))
            elif s.status == "NOLB":
                out.append(_f(WARNING, f"{where} is NOLB: it takes no new connections", where))
            elif s.status == "DOWN":
                if s.check_unreachable:
                    out.append(
                        _f(
                            WARNING,
                            f"{where} is DOWN: its Patroni REST API is unreachable ({s.check_status}): the node or Patroni may be down",
                            where,
                        )
                    )
                elif s.standing_by:
                    continue  # standing by: Patroni says "not the primary" (rw) / "not a usable replica" (ro)
                elif s.transition:
                    continue  # coming up (DOWN n/m): passing checks, not yet enough of them
                else:
                    out.append(_f(WARNING, f"{where} is DOWN (check {check})", where))
            else:
                out.append(_f(WARNING, f"{where}: status {s.status_text or s.status!r} not recognised", where))
    return out


# ------------------------------------------------------------------------------------------------ etcd


@rule("etcd_members", layer="etcd", needs=("etcd",), description="every etcd member is started and healthy")
def _etcd_members(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.etcd
    assert cluster is not None
    out: list[Finding] = []
    for m in cluster.members:
        what = "learner" if m.is_learner else "member"
        if not m.started:
            out.append(
                _f(
                    WARNING,
                    f"etcd {what} {m.id_hex} ({m.display_name}) was added but never started",
                    m.id_hex,
                    hint=f"start etcd there with --initial-cluster-state existing, or remove it: etcdctl member remove {m.id_hex}",
                )
            )
        elif m.healthy is False:
            out.append(_f(WARNING, f"etcd {what} {m.display_name} ({m.id_hex}) is unhealthy: {m.error or 'no answer'}", m.id_hex))
        elif m.healthy is None:
            out.append(_f(UNKNOWN, f"etcd {what} {m.display_name} ({m.id_hex}): health unknown", m.id_hex))
    if not out and cluster.members:
        out.append(_f(OK, f"{len(cluster.members)} of {len(cluster.members)} etcd members healthy"))
    return out


@rule(
    "etcd_quorum",
    layer="etcd",
    needs=("etcd",),
    description="etcd has quorum (CRITICAL when lost) and tolerates at least one more failure (WARNING when not)",
)
def _etcd_quorum(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.etcd
    assert cluster is not None
    voters = cluster.voters
    healthy = cluster.healthy_voters
    if not voters:
        return [_f(UNKNOWN, "etcd lists no voting member")]
    counts = f"{len(healthy)} of {len(voters)} voters healthy, quorum {cluster.quorum}"
    if not cluster.has_quorum:
        return [
            _f(
                CRITICAL,
                f"etcd quorum lost ({counts}): no write succeeds; the Patroni leader cannot renew its key and demotes after ttl unless failsafe_mode is on",
            )
        ]
    if cluster.failures_tolerated == 0:
        return [_f(WARNING, f"etcd tolerates no further failure ({counts})")]
    return [_f(OK, f"etcd quorum ({counts}); tolerates {cluster.failures_tolerated} more failure{'s' if cluster.failures_tolerated > 1 else ''}")]


_ALARM_IN_ERROR = re.compile(r"memberID:\s*(\d+)\s+alarm:\s*([A-Z_]+)")

_ALARM_HINTS = {
    "NOSPACE": "recover in this order: etcdctl compact <current revision>, etcdctl defrag on each member, then etcdctl alarm disarm "
    "(gardenctl does not run these for you)",
    "CORRUPT": "a member's data diverged from the others: replace that member (etcdctl member remove, wipe its data dir, "
    "member add, start it), then etcdctl alarm disarm (gardenctl does not run these for you)",
}


@rule(
    "etcd_alarms",
    layer="etcd",
    needs=("etcd",),
    description="no etcd alarm is raised (NOSPACE/CORRUPT are CRITICAL: every write is rejected); an unreadable alarm list is UNKNOWN",
)
def _etcd_alarms(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.etcd
    assert cluster is not None
    seen: dict[tuple[int, str], None] = {}
    for alarm in cluster.alarms:
        seen[(alarm.member_id, alarm.alarm.upper())] = None
    # The alarm also shows in each member's status ``errors`` (read without quorum, unlike the alarm list).
    for m in cluster.members:
        for text in m.errors:
            match = _ALARM_IN_ERROR.search(text)
            if match:
                seen[(int(match.group(1)), match.group(2))] = None
    out: list[Finding] = []
    for member_id, kind in seen:
        member = cluster.member(member_id)
        who = f"{format(member_id, 'x')} ({member.display_name if member else 'not a current member'})"
        if kind in ("NOSPACE", "CORRUPT"):
            effect = "the database reached its quota" if kind == "NOSPACE" else "data inconsistency detected"
            out.append(
                _f(
                    CRITICAL,
                    f"etcd alarm {kind} on member {who}: {effect}; etcd rejects every write, so Patroni cannot renew its leader key",
                    format(member_id, "x"),
                    hint=_ALARM_HINTS[kind],
                )
            )
        else:
            out.append(_f(WARNING, f"etcd alarm {kind} on member {who}", format(member_id, "x")))
    if cluster.alarms_error and not out:
        out.append(_f(UNKNOWN, f"etcd alarms could not be read ({cluster.alarms_error}): a NOSPACE or CORRUPT alarm cannot be ruled out"))
    return out


@rule(
    "etcd_db_size",
    layer="etcd",
    needs=("etcd",),
    description="each member's database is below thresholds.etcd-db-warning-percent (80) of the quota",
)
def _etcd_db_size(inp: RuleInput) -> Iterable[Finding]:
    cluster = inp.etcd
    assert cluster is not None
    quota = cluster.quota_bytes
    if not quota:
        return []
    limit = inp.settings.etcd_db_warning_percent
    out = []
    for m in cluster.members:
        if m.db_size_bytes is None:
            continue
        percent = m.db_size_bytes * 100 / quota
        if percent > limit:
            out.append(
                _f(
                    WARNING,
                    f"etcd member {m.display_name} ({m.id_hex}): database {human_bytes(m.db_size_bytes)} is {percent:.0f}% of the "
                    f"{human_bytes(quota)} quota",
                    m.id_hex,
                    hint="compact and defragment before it reaches the quota (a NOSPACE alarm stops every write)",
                )
            )
    return out
