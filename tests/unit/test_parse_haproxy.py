"""HAProxy ``show stat`` CSV -> model (field cases F06/F07): the status is a first word plus a transition and a detail,
``check_status`` may carry a ``* `` prefix while a check runs, backup servers are flagged."""

from __future__ import annotations

import pytest

from gardenctl.backends.haproxy import parse_stat_csv, parse_status
from gardenctl.errors import BackendError
from tests.unit.fixtures.health import load_text


def test_lab_show_stat_servers_and_rw_target():
    state = parse_stat_csv(load_text("haproxy/lab_show_stat.csv"), "pg_rw", "pg_ro")
    rw = state.servers_of("pg_rw")
    assert [(s.name, s.status, s.check_status, s.check_code) for s in rw] == [
        ("node0", "UP", "L7OK", 200),
        ("node1", "DOWN", "L7STS", 503),
        ("node2", "DOWN", "L7STS", 503),
    ]
    assert state.rw_target == "node0"
    assert rw[0].address == "127.0.0.1:16530"
    assert rw[0].current_sessions == 0 and rw[0].last_change_seconds is not None
    assert {b.name for b in state.backends} == {"stats", "pg_rw", "pg_ro"}
    assert all(s.backend != "stats" for s in state.servers)  # FRONTEND/BACKEND rows are not servers


def test_f06_exact_sample_one_up_two_standing_by():
    state = parse_stat_csv(load_text("haproxy/f06_rw.csv"), "pg_rw", None)
    assert [(s.name, s.status, s.check_status, s.check_code) for s in state.servers] == [
        ("node-a", "UP", "L7OK", 200),
        ("node-b", "DOWN", "L7STS", 503),
        ("node-c", "DOWN", "L7STS", 503),
    ]
    assert [s.check_unreachable for s in state.servers] == [False, False, False]
    assert state.rw_target == "node-a"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("UP", ("UP", None, None)),
        ("UP 2/3", ("UP", "2/3", None)),
        ("DOWN 1/2", ("DOWN", "1/2", None)),
        ("NOLB", ("NOLB", None, None)),
        ("DRAIN", ("DRAIN", None, None)),
        ("MAINT", ("MAINT", None, None)),
        ("MAINT (via pg_rw/node-d)", ("MAINT", None, "via pg_rw/node-d")),
        ("MAINT(resolution)", ("MAINT", None, "resolution")),
        ("no check", ("NO CHECK", None, None)),
        ("DOWN (agent)", ("DOWN", None, "agent")),
        ("", ("UNKNOWN", None, None)),
        ("SOMETHING NEW", ("SOMETHING", None, "NEW")),
    ],
)
def test_f07_status_words(text, expected):
    assert parse_status(text) == expected


def test_f07_sample_rows():
    state = parse_stat_csv(load_text("haproxy/f07_statuses.csv"), "pg_rw", None)
    by = {s.name: s for s in state.servers}
    assert (by["node-a"].status, by["node-a"].transition, by["node-a"].check_status, by["node-a"].check_in_progress) == ("UP", "2/3", "L7OK", True)
    assert (by["node-b"].status, by["node-b"].transition) == ("DOWN", "1/2")
    assert by["node-c"].status == "NOLB" and not by["node-c"].is_up
    assert (by["node-d"].status, by["node-d"].status_detail, by["node-d"].is_administrative) == ("MAINT", "via pg_rw/node-d", True)
    assert by["node-e"].is_administrative
    assert by["node-f"].status == "NO CHECK" and by["node-f"].check_status is None
    assert by["node-g"].backup is True and by["node-g"].active is False
    assert by["node-d"].status_text == "MAINT (via pg_rw/node-d)"


@pytest.mark.parametrize("check,unreachable", [("L4CON", True), ("L4TOUT", True), ("L7TOUT", True), ("SOCKERR", True), ("L7STS", False), ("L7OK", False), ("INI", False)])
def test_check_unreachable_kinds(check, unreachable):
    csv = f"# pxname,svname,status,act,bck,check_status,check_code\npg_rw,n1,DOWN,1,0,{check},\n"
    assert parse_stat_csv(csv, "pg_rw").servers[0].check_unreachable is unreachable


def test_not_haproxy_csv_is_a_backend_error():
    with pytest.raises(BackendError, match="not HAProxy CSV"):
        parse_stat_csv("Unknown command.\n")
