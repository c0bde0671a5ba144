"""A drill report as Markdown (``drill run --report FILE.md``): figures against thresholds, timeline, notes."""

from __future__ import annotations

from gardenctl.ops.drill.result import DrillReport, DrillRun


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def run_markdown(run: DrillRun, *, heading: str = "##") -> str:
    verdict = "PASS" if run.passed else "FAIL"
    lines = [
        f"{heading} Run {run.iteration}: {verdict}",
        "",
        f"- started: {run.started_at.strftime('%Y-%m-%d %H:%M:%S UTC')}, took {run.duration_seconds:.1f} s; run id `{run.run_id}`",
        f"- synchronous_mode: {'on' if run.synchronous_mode else 'off'}; failsafe_mode: "
        f"{'unknown' if run.failsafe_mode is None else ('on' if run.failsafe_mode else 'off')}; ttl: {run.ttl_seconds} s",
        f"- leader before: {run.leader_before or '-'}; after: {run.leader_after or '-'}",
        f"- faults through: {run.fault_target}",
    ]
    if run.patroni_config_applied:
        lines.append(f"- Patroni config during the drill: {run.patroni_config_applied} (restored afterwards)")
    if run.aborted:
        lines.append(f"- **steps aborted**: {run.aborted}")
    lines.append(f"- recovery: {'OK' if run.recovered else '**NOT recovered**'} - {run.recovery_message}")
    lines += ["", "| figure | value | threshold | result |", "| --- | ---: | ---: | --- |"]
    for f in run.figures:
        value = f.shown + (f" ({f.note})" if f.note else "")
        lines.append(f"| {_cell(f.label)} | {_cell(value)} | {_cell(f.shown_limit)} | {f.verdict} |")
    lines += ["", "Timeline (seconds since the drill started):", ""]
    lines += [f"- {e.seconds:7.2f}  {_cell(e.what)}" for e in run.events]
    if run.notes:
        lines += ["", "What happened:", ""]
        lines += [f"- {_cell(n)}" for n in run.notes]
    if run.writers:
        lines += ["", "Servers that acknowledged writes:", ""]
        lines += [f"- {_cell(w)}" for w in run.writers]
    if run.write_errors:
        lines += ["", "Write errors (most frequent first):", ""]
        lines += [f"- {count} x {_cell(text)}" for text, count in run.write_errors]
    return "\n".join(lines) + "\n"


def report_markdown(report: DrillReport, command: str | None = None) -> str:
    runs = report.runs
    passed = sum(1 for r in runs if r.passed)
    lines = [
        f"# Drill {report.playbook} on {report.context}: {'PASS' if report.passed else 'FAIL'}",
        "",
        report.summary,
        "",
        f"{passed} of {len(runs)} run(s) passed.",
    ]
    if command:
        lines += ["", f"Command: `{command}`"]
    lines.append("")
    for run in runs:
        lines.append(run_markdown(run))
    return "\n".join(lines)
