"""`gardenctl check`: the status rules as a monitoring plugin (cron, Nagios/Icinga, node_exporter textfile).

``run_check`` collects the cluster like ``status`` (same `collect`, same rules), keeps the selected rules and returns
a `CheckResult`: overall severity (monitoring-plugin exit code 0/1/2/3), a one-line summary, every finding, each
rule's own status, and perfdata. ``unknown_result`` turns any `GardenError` (bad config, missing secret) into an
UNKNOWN result, as monitoring expects, instead of an error exit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from gardenctl.model import Finding, Severity, StatusReport

if TYPE_CHECKING:  # pragma: no cover
    from gardenctl.config import ClusterConfig
    from gardenctl.ops.rules import RuleResult
    from gardenctl.ops.status import Sources


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """One rule's outcome. ``evaluated`` False: a layer it needs did not answer (status UNKNOWN)."""

    rule: str
    layer: str
    status: Severity
    evaluated: bool
    findings: int = 0
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PerfDatum:
    """One perfdata value. ``value`` None is printed ``U`` (undetermined), never 0."""

    label: str
    value: int | float | None
    unit: str = ""
    warn: int | float | None = None
    crit: int | float | None = None
    min: int | float | None = None
    max: int | float | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check. ``check -o json`` (schema version 1, keys in this order)::

        kind: "CheckResult", version: 1, context, status (OK|WARNING|CRITICAL|UNKNOWN), summary, checked_at (UTC),
        duration_ms, findings: [{rule, severity, message, layer, subject, hint}],
        rules: [{rule, layer, status, evaluated, findings, reason}], perfdata: [{label, value, unit, warn, crit, min,
        max}] (value null = unknown), exit_code (0/1/2/3)
    """

    __kind__ = "CheckResult"
    __json_properties__ = ("exit_code",)

    context: str | None
    status: Severity
    summary: str
    checked_at: datetime
    duration_ms: float | None
    findings: tuple[Finding, ...]
    rules: tuple[RuleStatus, ...]
    perfdata: tuple[PerfDatum, ...] = ()
    # The collected layers, for --prometheus; not part of the JSON document (underscore fields are skipped).
    _report: StatusReport | None = field(default=None, repr=False, compare=False)

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    @property
    def report(self) -> StatusReport | None:
        return self._report

    @property
    def first_line(self) -> str:
        return f"{self.status.value} - {self.summary}"


# ------------------------------------------------------------------------------------------------ summary


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def ok_summary(report: StatusReport | None, layers: Iterable[str] | None = None) -> str:
    """A healthy cluster in one line: leader, replicas, etcd, routing - of the layers whose rules ran (``layers``;
    None: all), so `check --only 'etcd_*'` does not vouch for Patroni."""
    if report is None:
        return "all selected rules OK"
    shown = set(layers) if layers is not None else {"patroni", "etcd", "haproxy"}
    parts = []
    pat = report.patroni.value if report.patroni.ok and "patroni" in shown else None
    if pat is not None:
        leader = pat.leader
        parts.append(f"leader {leader.name}" if leader else "no single leader")
        reps = pat.replicas
        parts.append(f"{sum(1 for m in reps if m.streams_now)}/{len(reps)} replicas streaming")
    et = report.etcd.value if report.etcd.ok and "etcd" in shown else None
    if et is not None:
        parts.append(f"etcd {len(et.healthy_voters)}/{len(et.voters)} healthy")
    hp = report.haproxy.value if report.haproxy.ok and "haproxy" in shown else None
    if hp is not None and hp.rw_target:
        parts.append(f"rw -> {hp.rw_target}")
    return ", ".join(parts) or "all selected rules OK"


def summarize(status: Severity, findings: Iterable[Finding], rules: Iterable[RuleStatus], report: StatusReport | None) -> str:
    """``CRITICAL`` -> ``no leader; 1 more critical, 2 warnings`` (the first finding of the worst severity, then
    counts of the rest); OK -> `ok_summary`."""
    findings = list(findings)
    rules = list(rules)
    if not rules and not findings:
        return "no rule selected: --only/--skip left nothing to check"
    if status is Severity.OK:
        return ok_summary(report, {r.layer for r in rules})
    worst = [f for f in findings if f.severity is status]
    if worst:
        head = worst[0].message
        more = len(worst) - 1
    else:  # only "not evaluated" rules carry the status
        skipped = [r for r in rules if not r.evaluated]
        head = f"{_plural(len(skipped), 'rule')} not evaluated ({skipped[0].reason})" if skipped else status.value.lower()
        more = 0
    parts = [head]
    names = {Severity.CRITICAL: "critical", Severity.WARNING: "warning", Severity.UNKNOWN: "unknown"}
    if more:
        parts.append(f"{more} more {names[status]}" + ("s" if status is Severity.WARNING and more > 1 else ""))
    for sev in (Severity.CRITICAL, Severity.UNKNOWN, Severity.WARNING):
        if sev is status:
            continue
        n = sum(1 for f in findings if f.severity is sev)
        if n:
            parts.append(f"{n} {names[sev]}" if sev is not Severity.WARNING else _plural(n, "warning"))
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------------ perfdata


def perfdata_of(report: StatusReport | None, thresholds: Any = None) -> tuple[PerfDatum, ...]:
    """Replica lag (bytes, with the lag thresholds), counts of streaming replicas and healthy etcd voters, and each
    etcd member's database size against the quota."""
    from gardenctl.ops.rules import RuleSettings

    if report is None:
        return ()
    s = RuleSettings.of(thresholds)
    out: list[PerfDatum] = []
    pat = report.patroni.value if report.patroni.ok else None
    if pat is not None:
        for m in pat.replicas:
            out.append(PerfDatum(f"lag_{m.name}", m.lag_bytes, "B", s.lag_warning_bytes, s.lag_critical_bytes, 0))
        out.append(PerfDatum("replicas_streaming", sum(1 for m in pat.replicas if m.is_streaming), "", None, None, 0, len(pat.replicas)))
    et = report.etcd.value if report.etcd.ok else None
    if et is not None:
        out.append(PerfDatum("etcd_healthy_voters", len(et.healthy_voters), "", None, None, 0, len(et.voters)))
        for m in et.members:
            warn = et.quota_bytes * s.etcd_db_warning_percent // 100 if et.quota_bytes else None
            out.append(PerfDatum(f"etcd_db_{m.display_name}", m.db_size_bytes, "B", warn, None, 0, et.quota_bytes))
    return tuple(out)


# ------------------------------------------------------------------------------------------------ run


def rule_statuses(results: Iterable["RuleResult"]) -> tuple[RuleStatus, ...]:
    return tuple(RuleStatus(r.name, r.layer, r.severity, r.evaluated, len(r.findings), r.reason) for r in results)


def run_check(
    cluster: "ClusterConfig",
    *,
    timeout: float | None = None,
    only: Iterable[str] = (),
    skip: Iterable[str] = (),
    state_dir: Path | None = None,
    sources: "Sources | None" = None,
    now: datetime | None = None,
) -> CheckResult:
    """Collect ``cluster`` and evaluate the selected rules (``only``/``skip``: names or patterns like ``etcd_*``).

    ``state_dir`` remembers when maintenance mode was first seen (see `PauseTracker`); None: its age is unknown.
    Raises `ConfigError` for an unknown rule name or a secret that cannot be resolved."""
    from gardenctl.ops.rules import evaluate_rules, select_rules
    from gardenctl.ops.status import PauseTracker, collect

    started = time.perf_counter()
    only, skip = tuple(only), tuple(skip)
    select_rules(only, skip)  # unknown names fail before any request
    report = collect(cluster, timeout=timeout, sources=sources, now=now, evaluate=False)
    paused_since = None
    if state_dir is not None:
        pat = report.patroni.value if report.patroni.ok else None
        tracker = PauseTracker(state_dir, cluster.name, clock=lambda: report.collected_at)
        paused_since = tracker.observe(pat.paused if pat is not None else None)
    results = evaluate_rules(
        report,
        cluster.thresholds,
        report.collected_at,
        paused_since=paused_since,
        patroni_endpoints=cluster.patroni.endpoints,
        patroni_scope=cluster.scope,
        only=only,
        skip=skip,
    )
    findings = tuple(f for r in results for f in r.findings)
    rules = rule_statuses(results)
    # a check that checked nothing (--only/--skip left no rule) must not read as healthy to monitoring
    status = Severity.worst(r.status for r in rules) if rules else Severity.UNKNOWN
    report = StatusReport(
        context=report.context,
        collected_at=report.collected_at,
        patroni=report.patroni,
        etcd=report.etcd,
        haproxy=report.haproxy,
        findings=findings,
        hetzner=report.hetzner,
        k3s=report.k3s,
    )
    return CheckResult(
        context=cluster.name,
        status=status,
        summary=summarize(status, findings, rules, report),
        checked_at=report.collected_at,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        findings=findings,
        rules=rules,
        perfdata=perfdata_of(report, cluster.thresholds),
        _report=report,
    )


def with_finding(result: CheckResult, message: str, severity: Severity = Severity.UNKNOWN) -> CheckResult:
    """``result`` with one more finding of the check itself (e.g. the --prometheus file could not be written)."""
    from dataclasses import replace

    finding = Finding(rule="check", severity=severity, message=message, layer="check")
    findings = (*result.findings, finding)
    status = Severity.worst([result.status, severity])
    return replace(result, findings=findings, status=status, summary=summarize(status, findings, result.rules, result.report))


def unknown_result(message: str, context: str | None = None, now: datetime | None = None, *, hint: str | None = None) -> CheckResult:
    """What a check that could not run says: UNKNOWN with the reason (exit 3)."""
    when = now or datetime.now(timezone.utc)
    finding = Finding(rule="check", severity=Severity.UNKNOWN, message=message, layer="check", hint=hint)
    return CheckResult(
        context=context,
        status=Severity.UNKNOWN,
        summary=message,
        checked_at=when,
        duration_ms=None,
        findings=(finding,),
        rules=(),
    )


# ------------------------------------------------------------------------------------------------ plugin text


def _perf_label(label: str) -> str:
    if any(c in label for c in " '=\"") or not label:
        return "'" + label.replace("'", "''") + "'"
    return label


def _perf_num(value: int | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    return str(int(value))


def format_perfdata(data: Iterable[PerfDatum]) -> str:
    """Monitoring-plugin perfdata: ``'label'=value[UOM];[warn];[crit];[min];[max]``; unknown value -> ``U``."""
    items = []
    for d in data:
        value = "U" if d.value is None else f"{_perf_num(d.value)}{d.unit}"
        tail = ";".join(_perf_num(v) for v in (d.warn, d.crit, d.min, d.max)).rstrip(";")
        items.append(f"{_perf_label(d.label)}={value}" + (f";{tail}" if tail else ""))
    return " ".join(items)


def plugin_lines(result: CheckResult, *, perfdata: bool = False) -> list[str]:
    """The plugin output: the summary line (with perfdata when asked), then one line per finding, worst first,
    each hint indented under its finding, then the rules that could not be evaluated."""
    first = result.first_line
    if perfdata and result.perfdata:
        first += " | " + format_perfdata(result.perfdata)
    lines = [first]
    order = {Severity.CRITICAL: 0, Severity.UNKNOWN: 1, Severity.WARNING: 2, Severity.OK: 3}
    for f in sorted(result.findings, key=lambda f: order[f.severity]):
        if not (f.rule == "check" and f.message == result.summary):  # already the first line
            lines.append(f"{f.severity.value}: [{f.rule}] {f.message}")
        if f.hint and f.severity is not Severity.OK:
            lines.append(f"  hint: {f.hint}")
    skipped = [r for r in result.rules if not r.evaluated]
    by_reason: dict[str, list[str]] = {}
    for r in skipped:
        by_reason.setdefault(r.reason or "not evaluated", []).append(r.rule)
    for reason, names in by_reason.items():
        lines.append(f"UNKNOWN: not evaluated ({reason}): {', '.join(names)}")
    return lines
