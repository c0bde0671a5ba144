"""SQL gardenctl runs, kept as .sql files so a DBA can read (and run) exactly what gardenctl does.

`load(name)` returns the text of ``gardenctl/sql/<name>``.
"""

from __future__ import annotations

from pathlib import Path

_DIR = Path(__file__).resolve().parent


def load(name: str) -> str:
    return (_DIR / name).read_text()


def path(name: str) -> Path:
    return _DIR / name
