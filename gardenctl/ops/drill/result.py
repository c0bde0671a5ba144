"""What a drill produces: its plan, each run's figures against their thresholds, and the history rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gardenctl.model import Check, blocking_checks, overridden_checks


INTERRUPTED = "interrupted (Ctrl-C)"


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure. ``limit`` None: reported, not judged. ``passed`` None when there is no limit."""

    name: str
    label: str
    value: float | None
    unit: str = ""
    limit: float | None = None
    passed: bool | None = None
    note: str | None = None

    @property
    def shown(self) -> str:
        return format_value(self.value, self.unit)

    @property
    def shown_limit(self) -> str:
        return "-" if self.limit is None else f"<= {format_value(self.limit, self.unit)}"

    @property
    def verdict(self) -> str:
        return "-" if self.passed is None else ("PASS" if self.passed else "FAIL")


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value:.2f} s"
    if float(value).is_integer():
        return f"{int(value)}{(' ' + unit) if unit else ''}"
    return f"{value:.2f}{(' ' + unit) if unit else ''}"


@dataclass(frozen=True, slots=True)
class DrillEvent:
    seconds: float
    what: str


@dataclass(frozen=True, slots=True)
class DrillRun:
    """One execution of a playbook (one of ``--repeat N``)."""

    __kind__ = "DrillRun"
    __json_properties__ = ("passed", "failed_figures", "interrupted")

    playbook: str
    context: str
    run_id: str
    iteration: int
    started_at: datetime
    duration_seconds: float
    synchronous_mode: bool
    failsafe_mode: bool | None
    ttl_seconds: int | None
    fault_target: str
    leader_before: str | None
    leader_after: str | None
    figures: tuple[Figure, ...]
    events: tuple[DrillEvent, ...] = ()
    notes: tuple[str, ...] = ()
    split_brain_evidence: tuple[str, ...] = ()
    lost_ids: tuple[int, ...] = ()
    unacknowledged_present_ids: tuple[int, ...] = ()
    write_errors: tuple[tuple[str, int], ...] = ()
    read_errors: tuple[tuple[str, int], ...] = ()
    writers: tuple[str, ...] = ()
    recovered: bool = True
    recovery_message: str = ""
    aborted: str | None = None
    patroni_config_applied: dict[str, Any] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        """Ended early by Ctrl-C (the cluster was still recovered and the figures measured up to then)."""
        return bool(self.aborted and self.aborted.startswith(INTERRUPTED))

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)

    def value(self, name: str) -> float | None:
        fig = self.figure(name)
        return fig.value if fig else None

    @property
    def failed_figures(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.figures if f.passed is False)

    @property
    def passed(self) -> bool:
        return self.recovered and self.aborted is None and not self.failed_figures


@dataclass(frozen=True, slots=True)
class DrillReport:
    __kind__ = "DrillReport"
    __json_properties__ = ("passed",)

    playbook: str
    summary: str
    context: str
    runs: tuple[DrillRun, ...]
    history_file: str | None = None
    report_file: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(r.passed for r in self.runs)


@dataclass(frozen=True, slots=True)
class DrillPlan:
    """What ``drill run`` will do, shown before asking (and all that ``--dry-run`` prints)."""

    __kind__ = "DrillPlan"
    __json_properties__ = ("ok", "blocking")

    playbook: str
    summary: str
    context: str
    fault_target: str
    leader: str | None
    synchronous_mode: bool
    ttl_seconds: int | None
    steps: tuple[str, ...]
    thresholds: tuple[str, ...]
    checks: tuple[Check, ...]
    repeat: int = 1
    rate: float = 20.0
    patroni_config: dict[str, Any] = field(default_factory=dict)
    force: bool = False

    @property
    def blocking(self) -> tuple[Check, ...]:
        return blocking_checks(self.checks, self.force)

    @property
    def overridden(self) -> tuple[Check, ...]:
        return overridden_checks(self.checks, self.force)

    @property
    def ok(self) -> bool:
        return not self.blocking


@dataclass(frozen=True, slots=True)
class HistoryRow:
    started_at: str | None
    context: str
    playbook: str
    passed: bool
    synchronous_mode: bool | None
    figures: dict[str, float | None]
    failed: tuple[str, ...] = ()
    recovered: bool = True
    run_id: str = ""
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class DrillHistory:
    __kind__ = "DrillHistory"
    path: str
    runs: tuple[HistoryRow, ...]
    unreadable_lines: int = 0
