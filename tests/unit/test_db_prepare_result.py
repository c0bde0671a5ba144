"""The pgvector outcome of `db prepare` decides its exit code: never a silent 0 when pgvector was wanted and missing.

The lab test (tests/lab/test_db_prepare.py) runs against a server that has pgvector once scripts/setup built it; the
"not installable" branch is pinned down here on the result model and its rendering.
"""
from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from gardenctl.ops.db_prepare import DbItem, DbPrepareResult, VectorStatus
from gardenctl.render import render

ITEMS = (DbItem("role", "anon", True), DbItem("schema", "auth", True))
MISSING = "pgvector is not installable on 127.0.0.1:5000 (no 'vector' in pg_available_extensions): everything else is prepared"


def result(vector: VectorStatus, warnings: tuple[str, ...] = ()) -> DbPrepareResult:
    return DbPrepareResult(context="lab", endpoint="127.0.0.1:5000", database="postgres", items=ITEMS, passwords=(), vector=vector, warnings=warnings)


@pytest.mark.parametrize(
    ("vector", "warnings", "code", "text"),
    [
        (VectorStatus(wanted=True, available=False), (MISSING,), 1, "pgvector: NOT AVAILABLE on this server"),
        (VectorStatus(wanted=True, available=True, installed_version="0.8.0", available_version="0.8.0"), (), 0, "pgvector: installed (vector 0.8.0)"),
        (VectorStatus(wanted=False, available=False), (), 0, "pgvector: not requested (--no-vector)"),
    ],
)
def test_vector_outcome_sets_exit_code_and_text(vector, warnings, code, text):
    res = result(vector, warnings)
    assert res.exit_code == code and res.complete is (code == 0)
    out = io.StringIO()
    render(res, "table", Console(file=out, width=200, color_system=None))
    assert text in out.getvalue()
    out = io.StringIO()
    render(res, "json", Console(file=out, width=200, color_system=None))
    doc = json.loads(out.getvalue())
    assert doc["exit_code"] == code and doc["warnings"] == list(warnings) and doc["vector"]["wanted"] is vector.wanted


def test_a_missing_item_is_never_complete_even_with_vector():
    res = DbPrepareResult(
        context="lab", endpoint="e", database="postgres", items=ITEMS + (DbItem("publication", "supabase_realtime", False, "missing"),),
        passwords=(), vector=VectorStatus(wanted=True, available=True, installed_version="0.8.0"),
    )
    assert res.complete is False and res.exit_code == 1
