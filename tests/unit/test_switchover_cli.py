"""`gardenctl switchover | failover | history` run as a user would (a new process, no TTY), against Patroni's and
etcd's REST APIs served on loopback from the in-memory fake. Exit codes, refusals, --dry-run, json, the journal.

The read-write address points at a closed port, so the routing check fails here (it is overridable): paths that
need a real PostgreSQL behind HAProxy to converge are covered by tests/lab/test_switchover.py."""

from __future__ import annotations

import re

import json
from datetime import datetime, timedelta, timezone

import pytest

from gardenctl import journal
from gardenctl.errors import ExitCode
from tests.conftest import run_cli
from tests.unit import fakes_patroni as fp
from tests.unit.fakes_patroni import ActionAnswer, LoopbackServer


@pytest.fixture
def served(tmp_path):
    servers = []

    def start(fake: fp.FakePatroni, **config_kw) -> tuple[LoopbackServer, callable]:
        server = LoopbackServer(fake).start()
        servers.append(server)
        config = tmp_path / "config.yaml"
        config.write_text(server.config_yaml(**config_kw))
        state = tmp_path / "state"

        def cli(*args: str):
            return run_cli(*args, config=config, env={"GARDENCTL_STATE_DIR": str(state), "HOME": str(tmp_path)}, timeout=60)

        cli.state = state  # type: ignore[attr-defined]
        return server, cli

    yield start
    for s in servers:
        s.stop()


def first_error_line(result) -> str:
    return next(line for line in result.stderr.splitlines() if line.startswith("Error: "))


def test_dry_run_shows_the_plan_and_changes_nothing(served):
    fake = fp.healthy_cluster()
    _, cli = served(fake)
    result = cli("switchover", "--dry-run", "--force")
    assert result.exit_code == 0, result
    assert "Preflight for: switch over from node-a to node-b now" in result.stdout
    assert "read-write routing    FORCED" in result.stdout
    assert "dry run: the preflight passed; nothing was changed" in result.stderr
    assert fake.posts == []
    assert journal.read(cli.state) == []  # a dry run is not an operation


def test_dry_run_with_a_failed_check_exits_7_with_the_reasons(served):
    fake = fp.healthy_cluster()
    _, cli = served(fake)
    result = cli("switchover", "--dry-run", "--candidate", "node-c")
    assert result.exit_code == ExitCode.REFUSED, result
    assert first_error_line(result) == "Error: switchover refused by the preflight (1 failed check: read-write routing); nothing was changed"
    assert re.search(r"^  read-write routing: 127.0.0.1:9: \S", result.stderr, re.M) and "postgres: 127.0.0.1:9" not in result.stderr, result.stderr
    assert "hint: the checks marked overridable can be overridden with --force" in result.stderr
    assert "Traceback" not in result.stderr
    assert fake.posts == []


def test_without_a_tty_and_without_yes_it_refuses_instead_of_waiting(served):
    fake = fp.healthy_cluster()
    _, cli = served(fake)
    result = cli("switchover", "--candidate", "node-b", "--force", "--reason", "INC-42")
    assert result.exit_code == ExitCode.REFUSED, result
    assert first_error_line(result) == "Error: not confirmed: standard input is not a terminal, so gardenctl cannot ask"
    assert "re-run with --yes" in result.stderr
    assert fake.posts == []
    [entry] = journal.read(cli.state)
    assert (entry.command, entry.outcome, entry.changed, entry.reason, entry.context) == ("switchover", "refused", False, "INC-42", "fake")
    assert entry.command_line.endswith("switchover --candidate node-b --force --reason INC-42")
    assert cli("switchover", "--candidate", "node-b", "--reason", "kernel update").exit_code == ExitCode.REFUSED
    assert journal.read(cli.state)[-1].command_line.endswith("--reason 'kernel update'")


def test_sync_standby_rule_refuses_before_any_request_f02(served):
    fake = fp.sync_cluster()
    _, cli = served(fake)
    result = cli("switchover", "--candidate", "node-c", "--yes", "--force")
    assert result.exit_code == ExitCode.REFUSED, result
    assert "synchronous standby: synchronous_mode is on and node-c is not a synchronous standby; the sync standby is node-b" in result.stderr
    assert "synchronous standby   FAIL " in result.stdout
    assert fake.posts == []
    assert journal.read(cli.state)[-1].details["failed_checks"] == ["synchronous standby"]


def test_412_is_shown_not_retried_and_journaled(served):
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(412, "candidate name does not match with sync_standby")]
    _, cli = served(fake)
    result = cli("switchover", "--candidate", "node-b", "--yes", "--force")
    assert result.exit_code == ExitCode.REFUSED, result
    assert first_error_line(result) == "Error: Patroni refused the switchover (HTTP 412): candidate name does not match with sync_standby"
    assert "Switchover did not converge (refused)" in result.stdout
    assert len(fake.posts) == 1
    entry = journal.read(cli.state)[-1]
    assert (entry.outcome, entry.changed) == ("refused", True)
    assert entry.details["patroni_status"] == 412
    assert [m.label for m in entry.moments] == ["request sent", "Patroni answered"]


def test_503_status_unknown_without_change_times_out_exit_9_f03(served):
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(503, "Switchover status unknown")]
    fake.leader_change_after_polls = None
    _, cli = served(fake)
    result = cli("switchover", "--candidate", "node-b", "--yes", "--force", "--timeout", "1", "-o", "json")
    assert result.exit_code == ExitCode.TIMEOUT, result
    assert "still in progress, polling without sending anything again" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["kind"] == "SwitchoverResult" and doc["version"] == 1
    assert (doc["outcome"], doc["converged"], doc["exit_code"], doc["request_sent"]) == ("timed_out", False, 9, True)
    assert doc["patroni_status"] == 503 and doc["leader_before"] == "node-a"
    assert "node-a leader/running tl4" in doc["last_seen"]
    assert len(fake.posts) == 1
    assert journal.read(cli.state)[-1].outcome == "timed_out"


def test_json_plan_has_checks_and_members(served):
    _, cli = served(fp.cluster_with_lagging_replica())
    result = cli("switchover", "--dry-run", "--force", "-o", "json")
    assert result.exit_code == 0, result
    doc = json.loads(result.stdout)
    assert doc["kind"] == "SwitchoverPlan" and doc["ok"] is True
    assert doc["candidate"] == "node-c" and doc["leader"] == "node-a"
    checks = {c["name"]: c for c in doc["preflight"]["checks"]}
    assert checks["candidate lag"] == {"name": "candidate lag", "ok": True, "detail": "0 B (limit 1048576 B, maximum_lag_on_failover)", "overridable": False}
    assert [c["name"] for c in doc["preflight"]["overridden"]] == ["read-write routing"]
    lags = {m["name"]: m["lag_bytes"] for m in doc["members"]}
    assert lags == {"node-a": None, "node-b": 52428800, "node-c": 0}


def test_paused_cluster_refuses_an_unnamed_switchover_f05(served):
    fake = fp.paused_cluster()
    _, cli = served(fake)
    result = cli("switchover", "--yes", "--force")
    assert result.exit_code == ExitCode.REFUSED, result
    assert "maintenance mode: the cluster is paused (maintenance mode): Patroni accepts only a switchover to a named candidate" in result.stderr
    assert fake.posts == []


def test_scheduled_switchover_exits_0_saying_when(served):
    fake = fp.healthy_cluster()
    fake.answers = [ActionAnswer(202, "Switchover scheduled")]
    _, cli = served(fake)
    at = (datetime.now(timezone.utc) + timedelta(hours=3)).replace(microsecond=0)
    result = cli("switchover", "--at", at.isoformat(), "--candidate", "node-c", "--yes")
    assert result.exit_code == 0, result
    assert f"Switchover scheduled: switchover from node-a to node-c scheduled for {at:%Y-%m-%d %H:%M:%S} UTC" in result.stdout
    assert fake.posts[0].body["scheduled_at"] == at.isoformat()
    assert journal.read(cli.state)[-1].outcome == "scheduled"


@pytest.mark.parametrize(
    "at,fragment",
    [("2031-05-01T10:00:00", "has no time zone"), ("2001-05-01T10:00:00+00:00", "is in the past"), ("next tuesday", "is not an ISO 8601 time")],
)
def test_bad_at_is_a_usage_error(served, at, fragment):
    fake = fp.healthy_cluster()
    _, cli = served(fake)
    result = cli("switchover", "--at", at, "--yes")
    assert result.exit_code == ExitCode.USAGE, result
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert fake.posts == []


def test_failover_needs_a_candidate(served):
    _, cli = served(fp.healthy_cluster())
    result = cli("failover", "--yes")
    assert result.exit_code == ExitCode.USAGE
    assert "--candidate" in result.stderr


def test_failover_to_an_unknown_member_is_refused(served):
    fake = fp.cluster_with_dead_leader()
    _, cli = served(fake)
    result = cli("failover", "--candidate", "node-x", "--yes")
    assert result.exit_code == ExitCode.REFUSED, result
    assert "candidate: 'node-x' is not a member of the cluster (members: node-a, node-b, node-c)" in result.stderr
    assert "REST API" in result.stdout and "down" in result.stdout  # node-a's API shown as down in the topology
    assert fake.posts == []


def test_patroni_down_exits_5_and_history_still_works(served):
    fake = fp.healthy_cluster()
    server, cli = served(fake)
    assert cli("switchover", "--candidate", "node-b").exit_code == ExitCode.REFUSED  # one journal entry
    fake.down = True
    result = cli("switchover", "--candidate", "node-b", "--yes")
    assert result.exit_code == ExitCode.UNREACHABLE, result
    assert first_error_line(result).startswith("Error: patroni: no member answered GET /cluster")
    history = cli("history")
    assert history.exit_code == 0, history
    assert "Patroni: unreachable" in history.stdout
    assert "switchover node-a -> node-b" in history.stdout  # refused by the preflight: the plan named the leader
    assert "switchover ? -> node-b" in history.stdout  # Patroni never answered: no leader known
    doc = json.loads(cli("history", "-o", "json").stdout)
    assert doc["kind"] == "History" and doc["patroni_reachable"] is False
    assert [e["outcome"] for e in doc["journal"]] == ["refused", "error"]
    assert doc["timeline"] == []


def test_history_merges_journal_and_patroni_timeline(served):
    fake = fp.healthy_cluster()
    fake.history_raw = [
        [1, 25165984, "no recovery target specified", "2020-01-01T10:00:00+00:00", "node-b"],
        [2, 50331744, "no recovery target specified", "2999-01-01T10:00:00+00:00", "node-a"],
    ]
    _, cli = served(fake)
    cli("switchover", "--candidate", "node-b")
    doc = json.loads(cli("history", "-o", "json").stdout)
    assert doc["patroni_reachable"] is True
    assert [e["source"] for e in doc["events"]] == ["patroni", "gardenctl", "patroni"]
    assert doc["events"][0]["what"] == "timeline 1 -> 2: node-b promoted"
    assert doc["events"][0]["detail"] == "timeline 1 ended at LSN 0/18000A0 (no recovery target specified)"
    limited = json.loads(cli("history", "-o", "json", "--limit", "1").stdout)
    assert [e["source"] for e in limited["events"]] == ["patroni"]


def test_history_without_any_config_shows_the_journal_only(tmp_path):
    state = tmp_path / "state"
    journal.record(state, journal.new_entry("switchover", who="a@b", context="prod", command_line="gardenctl switchover"))
    result = run_cli("history", env={"GARDENCTL_STATE_DIR": str(state), "XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert result.exit_code == 0, result
    assert "History for all contexts" in result.stdout and "switchover" in result.stdout
    assert "no config file at" in result.stderr
