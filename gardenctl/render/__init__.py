"""One `render(result, output)` for every command: table (rich), json or yaml.

JSON/YAML keys are the dataclass field names (snake_case), plus the derived properties a type lists in
``__json_properties__``. Every machine document starts with ``kind`` and ``version`` so scripts can rely on it;
a breaking change bumps the version. Table renderers register themselves per result type with `table_renderer`.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Callable

from rich.console import Console

OUTPUT_FORMATS = ("table", "json", "yaml")
SCHEMA_VERSION = 1

_TABLES: dict[type, Callable[[Any, Console], None]] = {}

PIPE_WIDTH = 200
"""Width when the stream is not a terminal and COLUMNS is unset: rich would assume 80 and wrap every long line and
table cell in a log file or a pipe; set COLUMNS to choose another width."""


def make_console(stderr: bool = False) -> Console:
    """The console for stdout (results) or stderr (progress): the terminal's width, or COLUMNS, or PIPE_WIDTH."""
    import os
    import sys

    stream = sys.stderr if stderr else sys.stdout
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        terminal = False
    width = None if terminal or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, width=width)


def table_renderer(kind: type) -> Callable[[Callable[[Any, Console], None]], Callable[[Any, Console], None]]:
    def register(fn: Callable[[Any, Console], None]) -> Callable[[Any, Console], None]:
        _TABLES[kind] = fn
        return fn

    return register


def to_data(obj: Any) -> Any:
    """Plain JSON-able data from model objects: dataclass fields (+ listed properties), enums by value, UTC ISO times,
    and the fields a type lists in ``__json_strings__`` (64-bit ids) as decimal strings."""
    from gardenctl.model import Probe

    if isinstance(obj, Probe):
        base = to_data(obj.value) if obj.value is not None else {}
        if not isinstance(base, dict):
            base = {"value": base}
        return {"reachable": obj.value is not None, "error": obj.error, "elapsed_ms": _round(obj.elapsed_ms), **base}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        data = {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.name.startswith("_")}
        for name in getattr(type(obj), "__json_strings__", ()):  # 64-bit ids: decimal strings, never rounded
            if data.get(name) is not None:
                data[name] = str(data[name])
        for prop in getattr(type(obj), "__json_properties__", ()):
            data[prop] = to_data(getattr(obj, prop))
        return data
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=timezone.utc)
        return obj.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_data(v) for v in obj]
    if isinstance(obj, float):
        return _round(obj)
    return obj


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def document(result: Any) -> dict[str, Any]:
    kind = getattr(type(result), "__kind__", type(result).__name__)
    body = to_data(result)
    if not isinstance(body, dict):
        body = {"items": body}
    return {"kind": kind, "version": SCHEMA_VERSION, **body}


def render(result: Any, output: str = "table", console: Console | None = None) -> None:
    """Write ``result`` to stdout in the requested format."""
    console = console or make_console()
    if output == "json":
        console.file.write(json.dumps(document(result), indent=2, sort_keys=False) + "\n")
        console.file.flush()
        return
    if output == "yaml":
        from gardenctl import yamltext

        console.file.write(yamltext.dump(document(result)))
        console.file.flush()
        return
    from gardenctl.render import tables  # noqa: F401  (registers the table renderers)

    for kind in type(result).__mro__:
        if kind in _TABLES:
            _TABLES[kind](result, console)
            return
    raise TypeError(f"no table renderer for {type(result).__name__}")
