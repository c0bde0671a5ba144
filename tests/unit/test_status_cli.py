"""`gardenctl status` and `gardenctl check` run as a user would (a new process, no TTY), against fake servers on
loopback: Patroni REST APIs and etcd gateways over real HTTP, HAProxy's stats socket over a real unix socket.
Exact output per format, exit codes, and what must not be imported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, run_cli
from tests.unit.fixtures.health import ETCD_IDS, Loopback, Scenario, load_json, pcluster, pmember, routed_csv

HEALTHY_WIDE = """\
fake (scope pg-main)  <time>  OK

Patroni  scope pg-main, via http://127.0.0.1:<port>, <n> ms
maintenance mode: off   scheduled switchover: none
MEMBER  HOST:PORT       ROLE     STATE      TL  LAG  RECEIVE LAG  REPLAY LAG  PENDING RESTART  TAGS
node-a  10.0.0.11:5432  leader   running    4   -    -            -
node-b  10.0.0.12:5432  replica  streaming  4   0 B  0 B          0 B
node-c  10.0.0.13:5432  replica  streaming  4   0 B  0 B          0 B

etcd  quorum 2 of 3 voters, 3 healthy, tolerates 1; alarms: none; quota 2.0 GiB, <n> ms
ID                NAME    CLIENT URL              LEADER  HEALTHY  TERM  INDEX  DB / QUOTA
aaaaaaaaaaaaaaaa  etcd-a  http://127.0.0.1:<port>  leader  yes      25    136    48.0 KiB (0%)
123456789abcdef0  etcd-b  http://127.0.0.1:<port>          yes      25    136    48.0 KiB (0%)
5555555555555555  etcd-c  http://127.0.0.1:<port>          yes      25    136    48.0 KiB (0%)

HAProxy  read-write -> node-a; <n> ms
BACKEND  SERVER  ADDRESS         STATUS  LAST CHECK     LAST CHANGE  SESSIONS  NOTE
pg_rw    node-a  10.0.0.11:5432  UP      L7OK 200 2ms   60s          0         receives writes
pg_rw    node-b  10.0.0.12:5432  DOWN    L7STS 503 2ms  60s          0         standing by
pg_rw    node-c  10.0.0.13:5432  DOWN    L7STS 503 2ms  60s          0         standing by
pg_ro    node-a  10.0.0.11:5432  DOWN    L7STS 503 2ms  60s          0         standing by
pg_ro    node-b  10.0.0.12:5432  UP      L7OK 200 2ms   60s          0         receives reads
pg_ro    node-c  10.0.0.13:5432  UP      L7OK 200 2ms   60s          0         receives reads

Findings  worst: OK
SEVERITY  RULE                         MESSAGE
OK        patroni_leader               node-a leads (leader, timeline 4)
OK        patroni_replication          2 of 2 replicas streaming
OK        patroni_lag                  replication lag within thresholds (largest 0 B)
OK        patroni_failover_candidates  2 eligible failover candidates: node-b, node-c
OK        haproxy_rw                   read-write (pg_rw) routes to node-a, the leader
OK        haproxy_ro                   read-only (pg_ro) routes to node-b, node-c
OK        etcd_members                 3 of 3 etcd members healthy
OK        etcd_quorum                  etcd quorum (3 of 3 voters healthy, quorum 2); tolerates 1 more failure
"""

DEGRADED_NARROW = """\
fake  <time>  CRITICAL

PATRONI  pg-main  maintenance ON (automatic failover off)  switchover none
MEMBER  ROLE     STATE         TL  LAG recv/replay  RESTART
node-a  leader   running       7   -
node-b  replica  start failed  -   unknown
node-c  replica  stopped       -   unknown

ETCD  2/3 voters healthy, quorum 2, tolerates 0; 1 ALARM
ALARM NOSPACE on aaaaaaaaaaaaaaaa (etcd-a)
NAME                   ID                LEADER  HEALTHY  DB
etcd-a                 aaaaaaaaaaaaaaaa  leader  yes      48.0 KiB (0%)
etcd-b                 123456789abcdef0          yes      48.0 KiB (0%)
unstarted (10.0.0.23)  5555555555555555          NO       unknown

HAPROXY  read-write -> node-a
BACKEND  SERVER  STATUS  CHECK      NOTE
pg_rw    node-a  UP      L7OK 200   receives writes
pg_rw    node-b  DOWN    L4CON      REST API unreachable
pg_rw    node-c  MAINT   L7STS 503  administrative
pg_ro    node-a  DOWN    L7STS 503  standing by
pg_ro    node-b  DOWN    L4CON      REST API unreachable
pg_ro    node-c  DOWN    L7STS 503  standing by

FINDINGS  worst: CRITICAL
SEV   MESSAGE
CRIT  no replica is streaming (2 replicas): nothing to fail over to
CRIT  no eligible failover candidate (node-b: state is 'start failed', not
      streaming, lag is unknown, timeline is unknown; node-c: state is
      'stopped', not streaming, lag is unknown, timeline is unknown)
CRIT  etcd alarm NOSPACE on member aaaaaaaaaaaaaaaa (etcd-a): the database
      reached its quota; etcd rejects every write, so Patroni cannot renew its
      leader key
WARN  node-b failed to start (state 'start failed'): not replicating
WARN  node-c is 'stopped', not streaming
WARN  maintenance mode on for at least 0 min (first seen <time>;
      CRITICAL after 60 min): automatic failover is off
WARN  read-only (pg_ro): no server UP: read-only clients cannot connect
WARN  pg_rw/node-b is DOWN: its Patroni REST API is unreachable (L4CON): the
      node or Patroni may be down
WARN  pg_rw/node-c is in MAINT (administrative): set by an operator, not by a
      health check
WARN  pg_ro/node-b is DOWN: its Patroni REST API is unreachable (L4CON): the
      node or Patroni may be down
WARN  etcd member 5555555555555555 (unstarted (10.0.0.23)) was added but never
      started
WARN  etcd tolerates no further failure (2 of 3 voters healthy, quorum 2)
OK: 2 other checks passed
"""

CHECK_HEALTHY = """\
OK - leader node-a, 2/2 replicas streaming, etcd 3/3 healthy, rw -> node-a
OK: [patroni_leader] node-a leads (leader, timeline 4)
OK: [patroni_replication] 2 of 2 replicas streaming
OK: [patroni_lag] replication lag within thresholds (largest 0 B)
OK: [patroni_failover_candidates] 2 eligible failover candidates: node-b, node-c
OK: [haproxy_rw] read-write (pg_rw) routes to node-a, the leader
OK: [haproxy_ro] read-only (pg_ro) routes to node-b, node-c
OK: [etcd_members] 3 of 3 etcd members healthy
OK: [etcd_quorum] etcd quorum (3 of 3 voters healthy, quorum 2); tolerates 1 more failure
"""


def normalise(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", "<time>", text)
    text = re.sub(r"\d+ ms\b", "<n> ms", text)
    return re.sub(r"127\.0\.0\.1:\d{5}", "127.0.0.1:<port>", text)


def degraded() -> Scenario:
    """F01 members, paused (F05), a NOSPACE alarm on etcd-a (F08), an unstarted etcd member (F09), HAProxy with a
    REST API unreachable and a server in MAINT (F06/F07)."""
    s = Scenario(cluster=load_json("patroni/f01_unknown_lag.json"))
    s.cluster["pause"] = True
    s.alarms = [(ETCD_IDS[0], "NOSPACE")]
    s.etcd[2].started = False
    s.etcd[2].name = None
    s.haproxy = routed_csv(
        "node-a",
        ("node-a", "node-b", "node-c"),
        overrides={
            ("pg_rw", "node-b"): ("DOWN", "L4CON", ""),
            ("pg_ro", "node-b"): ("DOWN", "L4CON", ""),
            ("pg_rw", "node-c"): ("MAINT", "L7STS", 503),
            ("pg_ro", "node-c"): ("DOWN", "L7STS", 503),
        },
    )
    return s


@pytest.fixture
def loop(tmp_path):
    with Loopback(Scenario()) as lb:
        lb.state = tmp_path / "state"
        yield lb


def cli(lb: Loopback, *args: str, columns: int = 160, **env: str):
    return run_cli(*args, config=lb.config_path, env={"COLUMNS": str(columns), "GARDENCTL_STATE_DIR": str(lb.state), **env})


# ------------------------------------------------------------------------------------------------ status


def test_status_table_wide_exact(loop):
    result = cli(loop, "status")
    assert result.exit_code == 0, result
    assert result.stderr == ""
    assert normalise(result.stdout) == HEALTHY_WIDE


def test_status_narrow_pane_degraded_exact(loop):
    loop.apply(degraded())
    result = cli(loop, "status", columns=80)
    assert result.exit_code == 2, result
    out = normalise(result.stdout)
    assert all(len(line) <= 80 for line in out.splitlines())
    assert out == DEGRADED_NARROW


def test_status_json_shape_unknown_is_null_and_ids_exact(loop):
    loop.apply(degraded())
    result = cli(loop, "status", "-o", "json")
    assert result.exit_code == 2, result
    doc = json.loads(result.stdout)
    assert (doc["kind"], doc["version"], doc["context"], doc["severity"]) == ("StatusReport", 1, "fake", "CRITICAL")
    members = {m["name"]: m for m in doc["patroni"]["members"]}
    assert {k: members["node-a"][k] for k in ("role", "state", "timeline", "lag_bytes")} == {"role": "leader", "state": "running", "timeline": 7, "lag_bytes": None}
    assert {k: members["node-c"][k] for k in ("state", "timeline", "lag_bytes", "receive_lag_bytes", "replay_lag_bytes")} == {
        "state": "stopped",
        "timeline": None,
        "lag_bytes": None,
        "receive_lag_bytes": None,
        "replay_lag_bytes": None,
    }
    assert doc["patroni"]["paused"] is True and doc["patroni"]["reachable"] is True
    etcd = doc["etcd"]
    assert [(m["id"], m["id_hex"], m["name"], m["healthy"], m["is_leader"]) for m in etcd["members"]] == [
        ("12297829382473034410", "aaaaaaaaaaaaaaaa", "etcd-a", True, True),
        ("1311768467463790320", "123456789abcdef0", "etcd-b", True, False),
        ("6148914691236517205", "5555555555555555", None, False, False),
    ]  # uint64 ids as decimal strings (type-stable, exact in jq/JavaScript), like etcd's own JSON gateway
    assert etcd["alarms"] == [{"member_id": "12297829382473034410", "alarm": "NOSPACE"}]
    assert (etcd["quorum"], etcd["has_quorum"], etcd["failures_tolerated"]) == (2, True, 0)
    assert doc["haproxy"]["rw_target"] == "node-a"
    assert [(s["backend"], s["name"], s["status"]) for s in doc["haproxy"]["servers"]][:3] == [("pg_rw", "node-a", "UP"), ("pg_rw", "node-b", "DOWN"), ("pg_rw", "node-c", "MAINT")]
    severities = [f["severity"] for f in doc["findings"]]
    assert severities.count("CRITICAL") == 3
    assert all(set(f) == {"rule", "severity", "message", "layer", "subject", "hint"} for f in doc["findings"])


def test_status_yaml_has_the_same_document(loop):
    result = cli(loop, "status", "-o", "yaml")
    assert result.exit_code == 0, result
    doc = yaml.safe_load(result.stdout)
    assert doc["kind"] == "StatusReport"
    assert [m["name"] for m in doc["patroni"]["members"]] == ["node-a", "node-b", "node-c"]
    assert doc["etcd"]["members"][0]["id"] == str(ETCD_IDS[0])  # the same string as in JSON


def test_status_with_an_unreachable_etcd_shows_it_and_renders_the_rest(loop):
    loop.write_config(etcd={"endpoints": ["http://127.0.0.1:9"]})
    result = cli(loop, "status", "--timeout", "1")
    assert result.exit_code == 3, result
    out = normalise(result.stdout)
    assert "etcd: unreachable - etcd: no endpoint answered: http://127.0.0.1:9: connection refused" in out
    assert "node-b  10.0.0.12:5432  replica  streaming" in out
    assert "HAProxy  read-write -> node-a" in out
    assert "UNKNOWN   etcd_reachable" in out


@pytest.mark.parametrize(
    "mutate,code",
    [
        (lambda s: s.cluster.update(pause=True), 1),
        (lambda s: s.cluster.update(members=s.cluster["members"][1:]), 2),
        (lambda s: setattr(s, "patroni_down", "down"), 3),
    ],
)
def test_status_exit_code_is_the_worst_finding(loop, mutate, code):
    mutate(loop.scenario)
    result = cli(loop, "status", "-o", "json")
    assert result.exit_code == code, result
    assert json.loads(result.stdout)["severity"] == ["OK", "WARNING", "CRITICAL", "UNKNOWN"][code]


def test_status_watch_without_a_terminal_prints_each_refresh(loop):
    result = cli(loop, "status", "--watch", "0.5", "--count", "2", columns=80)
    assert result.exit_code == 0, result
    assert result.stdout.count("FINDINGS  worst: OK") == 2
    assert "refresh 2/2 every 0.5s" in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())


@pytest.mark.parametrize(
    "args,message",
    [
        (("status", "--count", "2"), "--count only makes sense with --watch"),
        (("status", "--watch", "1", "-o", "json"), "--watch shows the live table view"),
        (("status", "--watch", "0.1"), "must be at least 0.5"),
    ],
)
def test_status_usage_errors(loop, args, message):
    result = cli(loop, *args)
    assert result.exit_code == 2, result
    assert message in result.stderr
    assert result.stdout == ""


def test_status_without_config_is_a_config_error(tmp_path):
    result = run_cli("status", config=tmp_path / "missing.yaml")
    assert result.exit_code == 4
    assert result.stderr.startswith(f"Error: no config file at {tmp_path / 'missing.yaml'}")
    assert "hint: check the path given with --config / GARDENCTL_CONFIG" in result.stderr  # named by hand: a typo?
    assert "Traceback" not in result.stderr


def test_no_color_means_no_colour_codes(loop):
    plain = cli(loop, "status", FORCE_COLOR="1")
    assert "\x1b[" not in plain.stdout  # run_cli sets NO_COLOR=1
    coloured = run_cli("status", config=loop.config_path, env={"NO_COLOR": "", "FORCE_COLOR": "1", "TERM": "xterm", "GARDENCTL_STATE_DIR": str(loop.state)})
    assert "\x1b[32m" in coloured.stdout or "\x1b[" in coloured.stdout


# ------------------------------------------------------------------------------------------------ check


def test_check_healthy_exact(loop):
    result = cli(loop, "check")
    assert result.exit_code == 0, result
    assert result.stdout == CHECK_HEALTHY
    assert result.stderr == ""


def test_check_quiet_prints_only_when_not_ok(loop):
    quiet = cli(loop, "check", "--quiet")
    assert (quiet.exit_code, quiet.stdout) == (0, "")
    loop.scenario.cluster["pause"] = True
    noisy = cli(loop, "check", "--quiet")
    assert noisy.exit_code == 1
    assert noisy.stdout.splitlines()[0] == "WARNING - maintenance mode on for at least 0 min (first seen " + noisy.stdout.split("first seen ")[1].split(";")[0] + "; CRITICAL after 60 min): automatic failover is off"


def test_check_summary_speaks_only_for_the_selected_rules(loop):
    only_etcd = cli(loop, "check", "--only", "etcd_*")
    assert (only_etcd.exit_code, only_etcd.stdout.splitlines()[0]) == (0, "OK - etcd 3/3 healthy")
    no_routing = cli(loop, "check", "--skip", "haproxy_*")
    assert no_routing.stdout.splitlines()[0] == "OK - leader node-a, 2/2 replicas streaming, etcd 3/3 healthy"
    nothing = cli(loop, "check", "--skip", "*")
    assert (nothing.exit_code, nothing.stdout.splitlines()[0]) == (3, "UNKNOWN - no rule selected: --only/--skip left nothing to check")


def test_check_critical_with_perfdata(loop):
    loop.apply(degraded())
    result = cli(loop, "check", "--perfdata")
    assert result.exit_code == 2, result
    first, *rest = result.stdout.splitlines()
    summary, perf = first.split(" | ")
    assert summary == "CRITICAL - no replica is streaming (2 replicas): nothing to fail over to; 2 more critical; 9 warnings"
    assert perf.split()[:3] == ["lag_node-b=U;1048576;16777216;0", "lag_node-c=U;1048576;16777216;0", "replicas_streaming=0;;;0;2"]
    assert rest[0] == "CRITICAL: [patroni_replication] no replica is streaming (2 replicas): nothing to fail over to"
    assert "  hint: recover in this order: etcdctl compact <current revision>, etcdctl defrag on each member, then etcdctl alarm disarm (gardenctl does not run these for you)" in rest


def test_check_json_is_stable(loop):
    result = cli(loop, "check", "-o", "json")
    assert result.exit_code == 0, result
    doc = json.loads(result.stdout)
    assert list(doc) == ["kind", "version", "context", "status", "summary", "checked_at", "duration_ms", "findings", "rules", "perfdata", "exit_code"]
    assert (doc["kind"], doc["status"], doc["exit_code"], doc["context"]) == ("CheckResult", "OK", 0, "fake")
    assert {r["rule"] for r in doc["rules"]} >= {"patroni_leader", "etcd_quorum", "haproxy_rw"}


def test_check_prometheus_textfile(loop, tmp_path):
    target = tmp_path / "gardenctl.prom"
    loop.apply(degraded())
    result = cli(loop, "check", "--quiet", "--prometheus", str(target))
    assert result.exit_code == 2, result
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    assert [s.value for s in families["gardenctl_check_status"].samples] == [2.0]
    assert any(s.labels["rule"] == "etcd_alarms" and s.value == 2.0 for s in families["gardenctl_check_rule_status"].samples)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "state") == ["gardenctl.prom"]  # no temporary file left


def test_check_prometheus_unwritable_is_unknown(loop, tmp_path):
    result = cli(loop, "check", "--prometheus", str(tmp_path / "no" / "such" / "dir.prom"))
    assert result.exit_code == 3, result
    assert result.stdout.startswith("UNKNOWN - cannot write --prometheus file ")


@pytest.mark.parametrize(
    "args,first",
    [
        (("check", "--only", "leader"), "UNKNOWN - unknown rule: leader"),
        (("check", "--context", "nope"), "UNKNOWN - unknown context 'nope' in "),
        (("check", "--bogus"), "UNKNOWN - usage: No such option: --bogus"),
        (("check", "--timeout", "0"), "UNKNOWN - usage: Invalid value for '--timeout': must be at least 0.1 (see gardenctl check --help)"),
        (("check", "-o", "xml"), "UNKNOWN - usage: Invalid value for '--output' / '-o': 'xml' is not one of 'text', 'json'."),
    ],
)
def test_check_problems_of_the_check_itself_are_unknown(loop, args, first):
    result = cli(loop, *args)
    assert result.exit_code == 3, result
    assert result.stdout.startswith(first)
    assert "Traceback" not in result.stdout + result.stderr


def test_check_unknown_rule_hint_lists_the_names(loop):
    result = cli(loop, "check", "--skip", "nope")
    assert result.stdout.splitlines()[1].startswith("  hint: known rules: patroni_reachable, etcd_reachable,")


def test_check_bad_config_is_unknown(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("clusters:\n  x:\n    patroni: {endpoints: nope}\n")
    result = run_cli("check", config=bad)
    assert result.exit_code == 3
    assert result.stdout.startswith(f"UNKNOWN - {bad}:3: clusters.x.patroni.endpoints: expected a list, got a string")


def test_check_only_and_skip(loop):
    loop.scenario.cluster["pause"] = True
    result = cli(loop, "check", "--skip", "patroni_maintenance")
    assert result.exit_code == 0, result
    only = cli(loop, "check", "--only", "patroni_maintenance,etcd_*")
    assert only.exit_code == 1
    rules = [line.split("]")[0] for line in only.stdout.splitlines()[1:] if not line.startswith("  hint:")]
    assert rules == ["WARNING: [patroni_maintenance", "OK: [etcd_members", "OK: [etcd_quorum"]


def test_check_list_rules(loop):
    result = cli(loop, "check", "--list-rules")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert "patroni_leader" in names and "etcd_alarms" in names and "haproxy_rw" in names
    assert all(len(line.split(None, 1)) == 2 for line in result.stdout.splitlines())


@pytest.mark.parametrize("command", ["status", "check"])
def test_help_teaches(command):
    result = run_cli(command, "--help")
    assert result.exit_code == 0
    assert "Exit code" in result.stdout
    for option in ("--timeout", "--context", "--config"):
        assert option in result.stdout


# ------------------------------------------------------------------------------------------------ imports


@pytest.mark.parametrize("args", [("check",), ("check", "--prometheus", "{tmp}/x.prom"), ("status", "-o", "json"), ("status",)])
def test_status_and_check_never_import_kubernetes_or_hcloud(loop, tmp_path, args):
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gardenctl", "--config", str(loop.config_path), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "GARDENCTL_STATE_DIR": str(loop.state), "HOME": str(tmp_path)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    heavy = sorted(m for m in imported if m.split(".")[0] in ("kubernetes", "hcloud", "psycopg", "psycopg_binary"))
    assert heavy == []
    assert "gardenctl.ops.status" in imported


def test_status_and_check_read_patroni_without_its_password(loop):
    # A monitoring host has the config but not the secret used for switchovers: Patroni serves GET without one.
    loop.write_config(patroni={"endpoints": list(loop.patroni_urls), "username": "patroni", "password-env": "GARDENCTL_TEST_UNSET_PW"})
    assert cli(loop, "check").stdout == CHECK_HEALTHY
    status = cli(loop, "status", "-o", "json")
    assert status.exit_code == 0, status
    assert json.loads(status.stdout)["patroni"]["scope"] == "pg-main"
    # ... while a command that changes something still needs it, and says which one is missing.
    switchover = cli(loop, "switchover", "--yes")
    assert switchover.exit_code == 4, switchover
    assert "patroni password: environment variable GARDENCTL_TEST_UNSET_PW is not set" in switchover.stderr.splitlines()[0]


def test_status_watch_ended_with_ctrl_c_exits_130(loop):
    import signal
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("GARDENCTL_")}
    env.update({"COLUMNS": "120", "GARDENCTL_STATE_DIR": str(loop.state), "NO_COLOR": "1"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "gardenctl", "--config", str(loop.config_path), "status", "--watch", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True,
    )
    deadline = time.monotonic() + 30
    first = ""
    while "Ctrl-C to quit" not in first and time.monotonic() < deadline and proc.poll() is None:
        first += proc.stdout.readline()
    assert "Ctrl-C to quit" in first, "the first refresh never came"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------ a member's own REST API


def test_a_member_whose_rest_api_refuses_is_marked_although_the_dcs_lists_it(tmp_path):
    """node-b's Patroni is gone (its port refuses) while /cluster - served by the others from the DCS - still lists
    it as streaming, as for up to ttl after a SIGKILL. status marks it; check does not count it as streaming."""
    with Loopback(Scenario(), dead_patroni=(1,)) as lb:
        lb.state = tmp_path / "state"
        status = cli(lb, "status", "-o", "json")
        assert status.exit_code == 1, status
        doc = json.loads(status.stdout)
        members = {m["name"]: m for m in doc["patroni"]["members"]}
        assert members["node-b"]["state"] == "streaming"
        assert members["node-b"]["api_error"] == "connection refused"
        assert members["node-a"]["api_error"] is None and members["node-c"]["api_error"] is None
        assert members["node-a"]["self_report"] == {"role": "primary", "state": "running", "replication_state": None, "timeline": 4}
        assert members["node-c"]["self_report"]["replication_state"] == "streaming"
        assert members["node-b"]["self_report"] is None  # it could not be asked
        assert doc["patroni"]["unanswered"] == {lb.patroni_urls[1]: "connection refused"}
        table = cli(lb, "status")
        row = next(line for line in table.stdout.splitlines() if line.startswith("node-b"))
        assert "streaming? API down" in row
        check = cli(lb, "check")
        assert check.exit_code == 1, check
        assert check.stdout.splitlines()[0].startswith(
            "WARNING - node-b's REST API does not answer (connection refused): node or Patroni down?"
        )
        assert "OK: [patroni_failover_candidates] 1 eligible failover candidate: node-c" in check.stdout


def test_a_hanging_member_is_given_one_request_timeout_not_more():
    """A member that accepts the connection and never answers: the others' answer is used, the silent one is named
    after one request timeout."""
    import socket
    import time

    from gardenctl.backends.http import HttpSettings
    from gardenctl.backends.patroni import PatroniClient

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (the kernel does), never reads or answers
    hung = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        with Loopback(Scenario(), patroni_nodes=2) as lb:
            client = PatroniClient([*lb.patroni_urls, hung], HttpSettings(timeout_seconds=0.5))
            try:
                started = time.monotonic()
                cluster = client.get_cluster(every_endpoint=True)
                waited = time.monotonic() - started
                fast = client.get_cluster()
            finally:
                client.close()
    finally:
        silent.close()
    assert cluster.unanswered == {hung: "no answer within 0.5s"} or cluster.unanswered == {hung: "timed out"}, cluster.unanswered
    assert waited < 3.0  # bounded by the request timeout (0.5 s), not by the hanging member
    assert [m.api_error for m in cluster.members] == [None, None, None]  # no member has that api_url: nothing marked
    assert fast.unanswered == {}  # without every_endpoint (switchover, drills) the first answer is enough


def test_every_endpoint_is_asked_even_when_the_first_answer_is_quick():
    """The first answer must not drop the requests not yet sent: they would look like silent members (seen once in
    30 status runs on the lab before the fix; with 30 fast endpoints it happened in 7 of 10 reads)."""
    from gardenctl.backends.http import HttpSettings
    from gardenctl.backends.patroni import PatroniClient

    with Loopback(Scenario(), patroni_nodes=30) as lb:
        for _ in range(5):
            client = PatroniClient(lb.patroni_urls, HttpSettings(timeout_seconds=2))
            try:
                cluster = client.get_cluster(every_endpoint=True)
            finally:
                client.close()
            assert cluster.unanswered == {}
            assert [m.api_error for m in cluster.members] == [None, None, None]


def test_haproxy_down_is_critical_when_its_read_write_address_refuses_too(loop, tmp_path):
    """The stats socket and the read-write port both refuse: HAProxy is down and no client gets through - CRITICAL,
    not the UNKNOWN of a stats socket that merely cannot be read."""
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead_port = free.getsockname()[1]
    gone = tmp_path / "gone.sock"
    loop.write_config(haproxy={"stats-socket": str(gone), "rw-backend": "pg_rw", "rw-address": f"127.0.0.1:{dead_port}"})
    result = cli(loop, "check")
    assert result.exit_code == 2, result
    first = result.stdout.splitlines()[0]
    assert first.startswith("CRITICAL - HAProxy stats did not answer: "), first
    assert f"and the read-write address 127.0.0.1:{dead_port} refuses clients too (connection refused): HAProxy is down" in first
    # the stats socket unreadable while the read-write port still serves: unknown, as before
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(4)
        loop.write_config(haproxy={"stats-socket": str(gone), "rw-backend": "pg_rw", "rw-address": f"127.0.0.1:{listening.getsockname()[1]}"})
        unknown = cli(loop, "check")
    assert unknown.exit_code == 3, unknown
    assert unknown.stdout.startswith("UNKNOWN - HAProxy stats did not answer: ")
