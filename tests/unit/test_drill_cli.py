"""`gardenctl drill` as a user runs it, where no cluster is needed: list, bad playbooks, history, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gardenctl.ops.drill import history
from tests.unit.test_drill_runner import a_run

CONFIG = """\
current-context: prod
clusters:
  prod:
    patroni: {endpoints: ["http://127.0.0.1:9"]}
    etcd: {endpoints: ["http://127.0.0.1:9"]}
    haproxy: {stats-url: "http://127.0.0.1:9/stats", rw-address: "127.0.0.1:9"}
"""


def test_drill_list_shows_every_shipped_playbook(cli, isolated_home):
    result = cli("drill", "list", env=isolated_home)
    assert result.exit_code == 0, result
    names = [line.split()[0] for line in result.stdout.splitlines()[1:] if line and not line.startswith(" ")]
    assert {"switchover", "kill-leader", "stop-leader", "kill-replica", "etcd-member-loss", "etcd-quorum-loss", "haproxy-restart"} <= set(names)
    assert result.stdout.splitlines()[0].split() == ["NAME", "SOURCE", "SUMMARY"]


def test_drill_list_json_from_another_directory(isolated_home, tmp_path):
    """The shipped playbooks are found wherever gardenctl runs from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARDENCTL_")}
    env.update(isolated_home)
    proc = subprocess.run([sys.executable, "-m", "gardenctl", "drill", "list", "-o", "json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "DrillPlaybookList"
    entry = next(p for p in doc["playbooks"] if p["name"] == "kill-leader")
    assert entry["source"] == "builtin" and entry["error"] is None
    assert Path(entry["path"]).name == "kill-leader.yaml"


def test_a_users_invalid_playbook_is_listed_and_exits_4(cli, isolated_home):
    drills = Path(isolated_home["XDG_CONFIG_HOME"]) / "gardenctl" / "drills"
    drills.mkdir(parents=True)
    (drills / "mine.yaml").write_text("name: mine\nsummary: x\nsteps:\n  - wait: healthy\n")
    result = cli("drill", "list", env=isolated_home)
    assert result.exit_code == 4, result
    assert "invalid" in result.stdout
    assert result.stderr.strip().splitlines()[0] == f"Error: 1 playbook(s) are invalid: {drills / 'mine.yaml'}:3: steps: no step breaks anything (add a fault: kill|stop or a switchover step)"


def test_unknown_playbook_is_a_config_error(cli, isolated_home):
    result = cli("drill", "run", "kill-everything", "--yes", env=isolated_home)
    assert result.exit_code == 4, result
    assert result.stderr.splitlines()[0].startswith("Error: no drill playbook named 'kill-everything' (known: etcd-member-loss, ")
    assert result.stderr.splitlines()[-1] == "hint: gardenctl drill list"
    assert result.stdout == ""


def test_bad_playbook_file_names_file_line_and_key(cli, isolated_home, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsummary: x\nsteps:\n  - fault: kill\n    role: patroni\n    target: leader\nthresholds:\n  max-lost: 0\n")
    result = cli("drill", "run", "--playbook", str(bad), "--yes", env=isolated_home)
    assert result.exit_code == 4, result
    assert result.stderr.splitlines()[0].startswith(f"Error: {bad}:8: thresholds.max-lost: unknown threshold (known: max-write-unavailable-seconds, ")
    assert "Traceback" not in result.stderr


def test_context_without_lab_or_hosts_is_refused(cli, isolated_home, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    result = cli("drill", "run", "switchover", "--yes", config=config, env=isolated_home)
    assert result.exit_code == 7, result
    assert result.stderr.splitlines()[0] == "Error: context prod: gardenctl cannot break anything here: it has neither lab-dir nor a hosts: section"


def test_history_empty_and_filled(cli, isolated_home, tmp_path):
    state = tmp_path / "state"
    env = {**isolated_home, "GARDENCTL_STATE_DIR": str(state)}
    empty = cli("drill", "history", env=env)
    assert empty.exit_code == 0, empty
    assert empty.stdout.startswith("No drill runs recorded in ")
    history.append(state, a_run(True, 1))
    history.append(state, a_run(False, 2))
    table = cli("drill", "history", env=env)
    assert table.exit_code == 0, table
    lines = table.stdout.splitlines()
    assert lines[0].split()[:6] == ["STARTED", "(UTC)", "CONTEXT", "PLAYBOOK", "MODE", "RESULT"]
    assert lines[1].split()[:6] == ["2030-01-02", "03:04:05", "lab", "switchover", "async", "PASS"]
    assert lines[2].split()[5] == "FAIL" and lines[2].split()[-1] == "acked_writes_lost"
    doc = json.loads(cli("drill", "history", "-o", "json", "--playbook", "switchover", env=env).stdout)
    assert doc["kind"] == "DrillHistory"
    assert [r["passed"] for r in doc["runs"]] == [True, False]
    assert doc["runs"][1]["figures"]["acked_writes_lost"] == 3.0


def test_every_drill_command_has_help(cli):
    for args in (("drill", "--help"), ("drill", "run", "--help"), ("drill", "list", "--help"), ("drill", "history", "--help")):
        result = cli(*args)
        assert result.exit_code == 0, result
        assert "Usage:" in result.stdout
    run_help = cli("drill", "run", "--help").stdout
    for option in ("--repeat", "--report", "--force", "--yes", "--rate", "--playbook", "--failsafe", "--dry-run"):
        assert option in run_help
    assert "Exit codes: 0 every threshold held" in run_help


def test_unreachable_patroni_is_exit_5_like_switchover(cli, isolated_home, tmp_path):
    lab_dir = tmp_path / "lab"  # a lab context whose processes are not running: nothing answers on port 9
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace("  prod:\n", f"  prod:\n    lab-dir: {lab_dir}\n"))
    result = cli("drill", "run", "switchover", "--yes", config=config, env=isolated_home)
    assert result.exit_code == 5, result
    error = next(line for line in result.stderr.splitlines() if line.startswith("Error: "))
    assert error == "Error: patroni: no member answered GET /cluster: http://127.0.0.1:9/cluster: connection refused", result.stderr


def test_drill_run_without_a_name_is_a_usage_error(cli, isolated_home):
    result = cli("drill", "run", "--yes", env=isolated_home)
    assert result.exit_code == 2, result
    assert result.stderr.splitlines()[0] == "Error: name a playbook (gardenctl drill list shows them) or pass --playbook FILE"
