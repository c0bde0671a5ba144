"""Drill history: every run with its figures, one JSON object per line in ``<state dir>/drill-history.jsonl``.

Appended under an exclusive ``flock`` (two drills finishing at once never interleave lines), file mode 0600.
A damaged line is skipped and counted, never fatal.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from gardenctl.errors import GardenError
from gardenctl.ops.drill.result import DrillHistory, DrillRun, HistoryRow

HISTORY_FILE = "drill-history.jsonl"
HISTORY_VERSION = 1


def history_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / HISTORY_FILE


def plain(obj: Any) -> Any:
    """JSON-able data from result dataclasses (field names as keys, UTC ISO times)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        data = {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        for prop in getattr(type(obj), "__json_properties__", ()):
            data[prop] = plain(getattr(obj, prop))
        return data
    if isinstance(obj, datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=timezone.utc)
        return obj.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [plain(v) for v in obj]
    return obj


def append(state_dir: Path | str, run: DrillRun) -> Path:
    path = history_path(state_dir)
    record = {"version": HISTORY_VERSION, **plain(run)}
    line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise GardenError(f"cannot write the drill history {path}: {exc.strerror or exc}", hint="set GARDENCTL_STATE_DIR to a writable directory") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return path


def read(state_dir: Path | str, *, limit: int | None = None, playbook: str | None = None, context: str | None = None) -> DrillHistory:
    path = history_path(state_dir)
    rows: list[HistoryRow] = []
    bad = 0
    try:
        raw_lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        raw_lines = []
    except OSError as exc:
        raise GardenError(f"cannot read the drill history {path}: {exc.strerror or exc}") from exc
    for raw in raw_lines:
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError
            row = _row(data)
        except (ValueError, TypeError, UnicodeDecodeError):
            bad += 1
            continue
        if playbook and row.playbook != playbook:
            continue
        if context and row.context != context:
            continue
        rows.append(row)
    if limit is not None and limit > 0:
        rows = rows[-limit:]
    return DrillHistory(path=str(path), runs=tuple(rows), unreadable_lines=bad)


def _row(data: dict[str, Any]) -> HistoryRow:
    figures: dict[str, float | None] = {}
    for fig in data.get("figures") or ():
        if isinstance(fig, dict) and isinstance(fig.get("name"), str):
            value = fig.get("value")
            figures[fig["name"]] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    failed = tuple(str(f) for f in data.get("failed_figures") or ())
    return HistoryRow(
        started_at=data.get("started_at") if isinstance(data.get("started_at"), str) else None,
        context=str(data.get("context") or "?"),
        playbook=str(data.get("playbook") or "?"),
        passed=bool(data.get("passed", False)),
        synchronous_mode=data.get("synchronous_mode") if isinstance(data.get("synchronous_mode"), bool) else None,
        figures=figures,
        failed=failed,
        recovered=bool(data.get("recovered", True)),
        run_id=str(data.get("run_id") or ""),
        interrupted=bool(data.get("interrupted", False)),
    )
