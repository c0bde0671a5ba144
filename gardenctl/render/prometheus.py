"""Prometheus text exposition (format 0.0.4) of a `CheckResult`, for node_exporter's textfile collector.

Written atomically (a temporary file in the same directory, then ``rename``), so the collector never reads half a
file. node_exporter only reads files ending in ``.prom`` from its ``--collector.textfile.directory``.

Severity values follow the monitoring-plugin codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. A value that is unknown
(a lag Patroni reports as "unknown", a member that did not answer) is exported as ``NaN``, never as 0.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from gardenctl.ops.check import CheckResult

Sample = tuple[dict[str, str], "float | int | None"]


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float | int | bool | None) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Exposition:
    """Collects metric families and renders them: one HELP and TYPE line per family, then its samples."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[Sample]]] = {}

    def family(self, name: str, help_text: str, kind: str = "gauge") -> list[Sample]:
        if name not in self._families:
            self._families[name] = (help_text, kind, [])
        return self._families[name][2]

    def add(self, name: str, help_text: str, labels: dict[str, str], value: float | int | bool | None, kind: str = "gauge") -> None:
        self.family(name, help_text, kind).append((labels, value))

    def render(self) -> str:
        lines: list[str] = []
        for name, (help_text, kind, samples) in self._families.items():
            lines.append(f"# HELP {name} {escape_help(help_text)}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                label_text = ",".join(f'{k}="{escape_label_value(str(v))}"' for k, v in labels.items())
                lines.append(f"{name}{{{label_text}}} {format_value(value)}" if label_text else f"{name} {format_value(value)}")
        return "\n".join(lines) + "\n"


def check_metrics(result: "CheckResult") -> str:
    """The metrics of one check run: status per rule and overall, layer reachability, Patroni members (role, state,
    lag, timeline), etcd members (health, leader, db size, quota, alarms, quorum), HAProxy servers."""
    ctx = result.context or ""
    base = {"context": ctx}
    ex = Exposition()
    ex.add("gardenctl_check_status", "Overall check status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).", base, result.status.exit_code)
    ex.family("gardenctl_check_rule_status", "Status of one health rule (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; 3 also when not evaluated).")
    for r in result.rules:
        ex.add("gardenctl_check_rule_status", "", {**base, "rule": r.rule, "layer": r.layer}, r.status.exit_code)
    ex.add("gardenctl_check_timestamp_seconds", "Unix time the check ran.", base, result.checked_at.timestamp())
    if result.duration_ms is not None:
        ex.add("gardenctl_check_duration_seconds", "How long the check took.", base, result.duration_ms / 1000)
    report = result.report
    if report is None:
        return ex.render()

    for layer in ("patroni", "etcd", "haproxy", "hetzner", "k3s"):
        probe = getattr(report, layer)
        if probe is not None:
            ex.add("gardenctl_layer_up", "1 if the layer answered, 0 if not.", {**base, "layer": layer}, probe.ok)

    pat = report.patroni.value if report.patroni.ok else None
    if pat is not None:
        ex.add("gardenctl_patroni_paused", "1 while Patroni maintenance mode (pause) is on.", base, pat.paused)
        ex.add("gardenctl_patroni_members", "Members Patroni lists.", base, len(pat.members))
        ex.family("gardenctl_patroni_member_info", "One series per member with its role and state as labels (value 1).")
        ex.family("gardenctl_patroni_member_is_leader", "1 for the Patroni leader.")
        ex.family("gardenctl_patroni_member_timeline", "PostgreSQL timeline of the member (NaN when unknown).")
        ex.family("gardenctl_patroni_member_lag_bytes", "Replica lag in bytes as Patroni reports it (NaN when unknown).")
        ex.family("gardenctl_patroni_member_receive_lag_bytes", "Replica receive lag in bytes (NaN when unknown).")
        ex.family("gardenctl_patroni_member_replay_lag_bytes", "Replica replay lag in bytes (NaN when unknown).")
        ex.family("gardenctl_patroni_member_pending_restart", "1 when the member needs a restart to apply parameters.")
        for m in pat.members:
            labels = {**base, "member": m.name}
            ex.add("gardenctl_patroni_member_info", "", {**labels, "role": m.role, "state": m.state}, 1)
            ex.add("gardenctl_patroni_member_is_leader", "", labels, m.is_leader)
            ex.add("gardenctl_patroni_member_timeline", "", labels, m.timeline)
            if not m.is_leader:
                ex.add("gardenctl_patroni_member_lag_bytes", "", labels, m.lag_bytes)
                ex.add("gardenctl_patroni_member_receive_lag_bytes", "", labels, m.receive_lag_bytes)
                ex.add("gardenctl_patroni_member_replay_lag_bytes", "", labels, m.replay_lag_bytes)
            ex.add("gardenctl_patroni_member_pending_restart", "", labels, m.pending_restart)

    et = report.etcd.value if report.etcd.ok else None
    if et is not None:
        ex.add("gardenctl_etcd_voters", "Voting etcd members.", base, len(et.voters))
        ex.add("gardenctl_etcd_healthy_voters", "Voting etcd members that answered with a leader.", base, len(et.healthy_voters))
        ex.add("gardenctl_etcd_quorum", "Voters needed for quorum.", base, et.quorum)
        ex.add("gardenctl_etcd_failures_tolerated", "How many more voters may fail before quorum is lost.", base, et.failures_tolerated)
        ex.add("gardenctl_etcd_db_quota_bytes", "etcd backend quota in bytes (NaN when unknown).", base, et.quota_bytes)
        ex.add("gardenctl_etcd_alarms_known", "1 if the alarm list could be read (it needs quorum), 0 if not.", base, et.alarms_error is None)
        ex.family("gardenctl_etcd_member_healthy", "1 if the member answered and sees a leader.")
        ex.family("gardenctl_etcd_member_is_leader", "1 for the raft leader.")
        ex.family("gardenctl_etcd_member_db_size_bytes", "Size of the member's database file in bytes (NaN when unknown).")
        for m in et.members:
            labels = {**base, "member": m.display_name, "member_id": m.id_hex}
            ex.add("gardenctl_etcd_member_healthy", "", labels, bool(m.healthy))
            ex.add("gardenctl_etcd_member_is_leader", "", labels, m.is_leader)
            ex.add("gardenctl_etcd_member_db_size_bytes", "", labels, m.db_size_bytes)
        ex.family("gardenctl_etcd_alarm", "One series per raised etcd alarm (value 1).")
        for a in et.alarms:
            member = et.member(a.member_id)
            name = member.display_name if member else ""
            ex.add("gardenctl_etcd_alarm", "", {**base, "member": name, "member_id": a.member_id_hex, "alarm": a.alarm}, 1)

    hp = report.haproxy.value if report.haproxy.ok else None
    if hp is not None:
        ex.family("gardenctl_haproxy_server_up", "1 if HAProxy sends new connections to the server (status UP).")
        ex.family("gardenctl_haproxy_server_info", "One series per server with its normalised status (value 1).")
        for s in hp.servers:
            labels = {**base, "backend": s.backend, "server": s.name}
            ex.add("gardenctl_haproxy_server_up", "", labels, s.is_up)
            ex.add("gardenctl_haproxy_server_info", "", {**labels, "status": s.status, "check_status": s.check_status or ""}, 1)
    return ex.render()


def write_textfile(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same directory, fsync, then rename.
    Raises OSError (the caller reports it)."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(directory))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def families(text: str) -> Iterable[str]:
    """Metric family names in an exposition text (for tests and debugging)."""
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            yield line.split()[2]
