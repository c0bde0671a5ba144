"""The `gardenctl status` view: Patroni members, etcd members and quorum, HAProxy servers, findings.

Two layouts from one function: the full one for wide terminals, and a compact one (fewer columns, short words) when
the console is narrower than `WIDE` columns, e.g. an 80-column pane beside k9s under ``status --watch``.
Colour only repeats what the words say (severity names are always printed), so NO_COLOR loses nothing.

This module lives outside ``render/tables/`` on purpose: importing that package imports every command's table
renderer (and their ops modules), which would cost ``gardenctl status`` more than everything else it does.
``render/tables/status.py`` registers `status_renderable` for the generic ``render(report, "table")``.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from gardenctl.model import EtcdCluster, HAProxyServer, HAProxyState, PatroniCluster, PatroniMember, Severity, StatusReport

WIDE = 100

SEVERITY_STYLE = {
    Severity.OK: "green",
    Severity.WARNING: "yellow",
    Severity.CRITICAL: "bold red",
    Severity.UNKNOWN: "magenta",
}
SHORT_SEVERITY = {Severity.OK: "OK", Severity.WARNING: "WARN", Severity.CRITICAL: "CRIT", Severity.UNKNOWN: "UNKN"}
_ORDER = {Severity.CRITICAL: 0, Severity.UNKNOWN: 1, Severity.WARNING: 2, Severity.OK: 3}


def lag_text(value: int | None) -> str:
    """Exact bytes, or ``unknown`` (never 0 for an unknown lag)."""
    return "unknown" if value is None else f"{value} B"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def ago(seconds: int | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


# Columns of free text may wrap in the wide view; identifiers (names, addresses, URLs, ids) never do - a URL
# folded over two lines reads as two values.
_FREE_TEXT = frozenset({"ERROR", "NOTE", "MESSAGE", "TAGS"})


def _table(*columns: str, compact: bool) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 1), header_style="bold")
    for col in columns:
        if compact or col not in _FREE_TEXT:
            table.add_column(col, overflow="ellipsis", no_wrap=True)
        else:
            table.add_column(col, overflow="fold")
    return table


def _heading(text: str, detail: str = "") -> Text:
    out = Text(text, style="bold")
    if detail:
        out.append(f"  {detail}", style="")
    return out


def _unreachable(layer: str, error: str | None) -> Text:
    out = Text(f"{layer}: ", style="bold")
    out.append(f"unreachable - {error or 'no data'}", style="red")
    return out


def _sev(severity: Severity, compact: bool) -> Text:
    return Text(SHORT_SEVERITY[severity] if compact else severity.value, style=SEVERITY_STYLE[severity])


# ------------------------------------------------------------------------------------------------ Patroni


def _tags(member: PatroniMember) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(member.tags.items(), key=lambda kv: kv[0])) if member.tags else ""


def _member_lags(m: PatroniMember) -> tuple[str, str, str]:
    if m.is_leader:
        return "-", "-", "-"
    return lag_text(m.lag_bytes), lag_text(m.receive_lag_bytes), lag_text(m.replay_lag_bytes)


def _patroni(cluster: PatroniCluster, source: str | None, elapsed: float | None, compact: bool) -> list[RenderableType]:
    pause = "ON (automatic failover off)" if cluster.paused else "off"
    sched = cluster.scheduled_switchover
    if sched is None:
        sched_text = "none"
    else:
        at = sched.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if sched.at else "unknown time"
        sched_text = f"{at} {sched.from_member or '?'} -> {sched.to_member or 'any'}"
    if compact:
        head = _heading("PATRONI", f"{cluster.scope or ''}  maintenance {pause}  switchover {sched_text}".strip())
        table = _table("MEMBER", "ROLE", "STATE", "TL", "LAG recv/replay", "RESTART", compact=True)
        for m in cluster.members:
            tl = "-" if m.timeline is None else str(m.timeline)
            if m.is_leader:
                lag = "-"
            elif m.receive_lag_bytes is None and m.replay_lag_bytes is None:
                lag = lag_text(m.lag_bytes)
            else:
                lag = f"{lag_text(m.receive_lag_bytes)}/{lag_text(m.replay_lag_bytes)}"
            table.add_row(m.name, m.role, _state(m), tl, lag, "pending" if m.pending_restart else "")
        return [head, table]
    where = f"scope {cluster.scope or '-'}"
    if source:
        where += f", via {source}"
    if elapsed is not None:
        where += f", {elapsed:.0f} ms"
    head = _heading("Patroni", where)
    info = Text(f"maintenance mode: {pause}   scheduled switchover: {sched_text}")
    if cluster.paused:
        info.stylize("yellow", 0, len(f"maintenance mode: {pause}"))
    table = _table("MEMBER", "HOST:PORT", "ROLE", "STATE", "TL", "LAG", "RECEIVE LAG", "REPLAY LAG", "PENDING RESTART", "TAGS", compact=False)
    for m in cluster.members:
        lag, recv, replay = _member_lags(m)
        tl = "-" if m.timeline is None else str(m.timeline)
        table.add_row(m.name, m.address, m.role, _state(m), tl, lag, recv, replay, "yes" if m.pending_restart else "", _tags(m))
    return [head, info, table]


def _state(m: PatroniMember) -> Text:
    """The member's state as the DCS lists it; marked when its own REST API did not answer (the DCS keeps the last
    state of a stopped member until its key expires)."""
    if m.api_error is not None:
        return Text(f"{m.state}? API down", style="red")
    own = m.self_report
    if own is not None:
        if m.is_leader and m.role != "standby_leader" and own.role is not None and not own.is_primary:
            return Text(f"{m.state}? says {own.role}", style="red")
        if not m.is_leader and own.is_primary:
            return Text(f"{m.state}? says primary", style="red")
        if own.state is not None and own.state != "running" and m.is_running:
            return Text(f"{m.state}? says {own.state}", style="red")
        if m.is_streaming and own.replication_state not in (None, "streaming"):
            return Text(f"{m.state}? says {own.replication_state}", style="red")
    return Text(m.state)


# ------------------------------------------------------------------------------------------------ etcd


def _etcd(cluster: EtcdCluster, elapsed: float | None, compact: bool) -> list[RenderableType]:
    voters = cluster.voters
    healthy = cluster.healthy_voters
    if compact:
        quorum = f"{len(healthy)}/{len(voters)} voters healthy, quorum {cluster.quorum}, tolerates {cluster.failures_tolerated}"
    else:
        quorum = f"quorum {cluster.quorum} of {len(voters)} voters, {len(healthy)} healthy, tolerates {cluster.failures_tolerated}"
    if not cluster.has_quorum:
        quorum = f"QUORUM LOST: {len(healthy)} of {len(voters)} voters healthy, {cluster.quorum} needed"
    if cluster.alarms_error:
        alarms = "alarms unknown"
    elif cluster.alarms:
        alarms = f"{len(cluster.alarms)} ALARM{'S' if len(cluster.alarms) > 1 else ''}"
    else:
        alarms = "alarms: none"
    quota = f"quota {human_bytes(cluster.quota_bytes)}" if cluster.quota_bytes else "quota unknown"
    detail = f"{quorum}; {alarms}" + ("" if compact else f"; {quota}" + (f", {elapsed:.0f} ms" if elapsed is not None else ""))
    head = _heading("ETCD" if compact else "etcd", detail)
    if not cluster.has_quorum:
        head.stylize("bold red", 4)
    out: list[RenderableType] = [head]
    for alarm in cluster.alarms:
        member = cluster.member(alarm.member_id)
        who = f"{alarm.member_id_hex} ({member.display_name})" if member else alarm.member_id_hex
        out.append(Text(f"ALARM {alarm.alarm} on {who}", style="bold red"))
    if cluster.alarms_error:
        out.append(Text(f"alarms could not be read: {cluster.alarms_error}", style="magenta"))
    if compact:
        table = _table("NAME", "ID", "LEADER", "HEALTHY", "DB", compact=True)
    else:
        columns = ["ID", "NAME", "CLIENT URL", "LEADER", "HEALTHY", "TERM", "INDEX", "DB / QUOTA"]
        has_errors = any(m.error or m.errors for m in cluster.members)
        if has_errors:
            columns.append("ERROR")
        table = _table(*columns, compact=False)
    for m in cluster.members:
        healthy_text = "yes" if m.healthy else ("unknown" if m.healthy is None else "NO")
        if m.db_size_bytes is None:
            db = "unknown"
        elif cluster.quota_bytes:
            db = f"{human_bytes(m.db_size_bytes)} ({m.db_size_bytes * 100 / cluster.quota_bytes:.0f}%)"
        else:
            db = human_bytes(m.db_size_bytes)
        leader = "leader" if m.is_leader else ""
        if m.is_learner:
            leader = (leader + " learner").strip()
        if compact:
            table.add_row(m.display_name, m.id_hex, leader, healthy_text, db)
        else:
            table.add_row(
                m.id_hex,
                m.display_name,
                ", ".join(m.client_urls) or "-",
                leader,
                healthy_text,
                "-" if m.raft_term is None else str(m.raft_term),
                "-" if m.raft_index is None else str(m.raft_index),
                db,
                *([m.error or ", ".join(m.errors) or ""] if has_errors else []),
            )
    out.append(table)
    return out


# ------------------------------------------------------------------------------------------------ HAProxy


def server_note(s: HAProxyServer, state: HAProxyState) -> str:
    """What a server's state means in the Patroni layout (field cases F06/F07)."""
    rw = s.backend == state.rw_backend
    role = " (backup)" if s.backup else ""
    if s.status == "UP":
        if s.transition:
            return f"going down {s.transition}{role}"
        return ("receives writes" if rw else "receives reads") + role
    if s.is_administrative:
        return f"administrative{role}"
    if s.status == "NO CHECK":
        return "health unknown (no check)"
    if s.status == "NOLB":
        return "no new connections"
    if s.status == "DOWN":
        if s.check_unreachable:
            return f"REST API unreachable{role}"
        if s.standing_by:
            return f"standing by{role}"
        if s.transition:
            return f"coming up {s.transition}{role}"
        return f"down{role}"
    return f"status {s.status_text!r}"


def _check_text(s: HAProxyServer, compact: bool) -> str:
    parts = [s.check_status or "-"]
    if s.check_code is not None:
        parts.append(str(s.check_code))
    if s.check_duration_ms is not None and not compact:
        parts.append(f"{s.check_duration_ms}ms")
    text = " ".join(parts)
    return f"* {text}" if s.check_in_progress else text


def _haproxy(state: HAProxyState, elapsed: float | None, compact: bool) -> list[RenderableType]:
    target = state.rw_target
    up = state.rw_up
    if target:
        rw = f"read-write -> {target}"
    elif up:
        rw = f"read-write -> {len(up)} servers UP ({', '.join(s.name for s in up)})"
    else:
        rw = "read-write -> NO SERVER UP"
    detail = rw + ("" if compact or elapsed is None else f"; {elapsed:.0f} ms")
    head = _heading("HAPROXY" if compact else "HAProxy", detail)
    if compact:
        table = _table("BACKEND", "SERVER", "STATUS", "CHECK", "NOTE", compact=True)
    else:
        table = _table("BACKEND", "SERVER", "ADDRESS", "STATUS", "LAST CHECK", "LAST CHANGE", "SESSIONS", "NOTE", compact=False)
    backends = [b for b in (state.rw_backend, state.ro_backend) if b and state.servers_of(b)]
    others = sorted({s.backend for s in state.servers} - set(backends))
    for backend in [*dict.fromkeys(backends), *others]:
        for s in state.servers_of(backend):
            status = Text(s.status + (f" {s.transition}" if s.transition else "") + (f" ({s.status_detail})" if s.status_detail and not compact else ""))
            if s.status == "UP":
                status.stylize("green")
            elif s.status == "DOWN" and not s.standing_by:
                status.stylize("red")
            elif s.status != "DOWN":
                status.stylize("yellow")
            note = server_note(s, state)
            if compact:
                table.add_row(s.backend, s.name, status, _check_text(s, True), note)
            else:
                sessions = "-" if s.current_sessions is None else str(s.current_sessions)
                table.add_row(s.backend, s.name, s.address or "-", status, _check_text(s, False), ago(s.last_change_seconds), sessions, note)
    return [head, table]


# ------------------------------------------------------------------------------------------------ findings


def _findings(report: StatusReport, compact: bool) -> list[RenderableType]:
    findings = sorted(report.findings, key=lambda f: _ORDER[f.severity])
    problems = [f for f in findings if f.severity is not Severity.OK]
    shown = problems if compact else findings
    head = _heading("FINDINGS" if compact else "Findings", f"worst: {report.severity.value}")
    head.stylize(SEVERITY_STYLE[report.severity], len(head.plain) - len(report.severity.value))
    out: list[RenderableType] = [head]
    if compact:
        table = _table("SEV", "MESSAGE", compact=False)
    else:
        table = _table("SEVERITY", "RULE", "MESSAGE", compact=False)
    for f in shown:
        message = Text(f.message)
        if f.hint and f.severity is not Severity.OK and not compact:
            message.append(f"\nhint: {f.hint}", style="dim")
        if compact:
            table.add_row(_sev(f.severity, True), message)
        else:
            table.add_row(_sev(f.severity, False), f.rule, message)
    if shown:
        out.append(table)
    oks = len(findings) - len(problems)
    if compact and oks:
        from gardenctl.ops.check import ok_summary

        if problems:
            out.append(Text(f"OK: {oks} other check{'s' if oks > 1 else ''} passed", style="green"))
        else:
            out.append(Text(f"OK: {ok_summary(report)}", style="green"))
    if not findings:
        out.append(Text("no findings"))
    return out


# ------------------------------------------------------------------------------------------------ optional layers


def _optional(name: str, probe: Any, compact: bool) -> list[RenderableType]:
    if probe is None:
        return []
    label = name.upper() if compact else name.capitalize()
    if not probe.ok:
        return [_unreachable(label, probe.error)]
    value = probe.value
    if hasattr(value, "__rich__") or hasattr(value, "__rich_console__"):
        return [_heading(label), value]
    return [_heading(label, str(getattr(value, "summary", "answered")))]


# ------------------------------------------------------------------------------------------------ the view


def status_renderable(report: StatusReport, width: int = 120, *, footer: str | None = None) -> RenderableType:
    """The whole status view; compact when ``width`` < `WIDE`."""
    compact = width < WIDE
    when = report.collected_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    sev = report.severity
    title = Text(f"{report.context}", style="bold")
    scope = report.patroni.value.scope if report.patroni.ok and report.patroni.value.scope else None
    if scope and not compact:
        title.append(f" (scope {scope})", style="")
    title.append(f"  {when}  ")
    title.append(sev.value, style=SEVERITY_STYLE[sev])
    parts: list[RenderableType] = [title, Text("")]

    if report.patroni.ok:
        parts += _patroni(report.patroni.value, report.patroni.value.source, report.patroni.elapsed_ms, compact)
    else:
        parts.append(_unreachable("PATRONI" if compact else "Patroni", report.patroni.error))
    parts.append(Text(""))
    if report.etcd.ok:
        parts += _etcd(report.etcd.value, report.etcd.elapsed_ms, compact)
    else:
        parts.append(_unreachable("ETCD" if compact else "etcd", report.etcd.error))
    parts.append(Text(""))
    if report.haproxy.ok:
        parts += _haproxy(report.haproxy.value, report.haproxy.elapsed_ms, compact)
    else:
        parts.append(_unreachable("HAPROXY" if compact else "HAProxy", report.haproxy.error))
    for name in ("hetzner", "k3s"):
        extra = _optional(name, getattr(report, name), compact)
        if extra:
            parts.append(Text(""))
            parts += extra
    parts.append(Text(""))
    parts += _findings(report, compact)
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)


def print_view(console: Console, renderable: RenderableType) -> None:
    """Print to a terminal as is; to a pipe or file without the padding rich leaves at the end of table lines."""
    if console.is_terminal:
        console.print(renderable, highlight=False)
        return
    with console.capture() as capture:
        console.print(renderable, highlight=False)
    text = "\n".join(line.rstrip() for line in capture.get().splitlines())
    console.file.write(text + "\n")
    console.file.flush()
