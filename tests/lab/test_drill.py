"""`gardenctl drill` on the real lab: each test breaks it on purpose and leaves it healthy (the drill recovers it;
the `lab` fixture checks)."""

from __future__ import annotations

import json

import pytest

from gardenctl import journal

pytestmark = pytest.mark.lab


def figures(run: dict) -> dict[str, dict]:
    return {f["name"]: f for f in run["figures"]}


def leader(lab) -> str:  # noqa: ANN001
    client = lab.patroni()
    try:
        return client.get_cluster(with_config=False).leader.name
    finally:
        client.close()


def test_switchover_drill_passes_and_is_recorded(lab):
    before = leader(lab)
    result = lab.cli("drill", "run", "switchover", "--yes", "-o", "json", timeout=240)
    assert result.exit_code == 0, result
    doc = json.loads(result.stdout)
    assert doc["kind"] == "DrillReport" and doc["passed"] is True
    run = doc["runs"][0]
    figs = figures(run)
    assert run["leader_before"] == before and run["leader_after"] != before
    assert run["recovered"] is True and run["aborted"] is None
    assert figs["acked_writes_lost"]["value"] == 0 and figs["acked_writes_lost"]["passed"] is True
    assert figs["split_brain"]["value"] == 0
    assert figs["leader_changes"]["value"] == 1
    assert 0 < figs["write_unavailable_seconds"]["value"] <= figs["write_unavailable_seconds"]["limit"]
    assert figs["seconds_to_new_leader"]["value"] is not None
    assert figs["leader_change_seconds"]["value"] is not None and figs["seconds_to_new_primary"]["value"] is not None
    assert figs["writes_acknowledged"]["value"] > 20
    # progress went to stderr, step by step
    assert "switchover requested:" in result.stderr and "new-leader: reached " in result.stderr and "s after the fault (this step waited " in result.stderr
    assert "run 1/1: PASS" in result.stderr
    hist = json.loads(lab.cli("drill", "history", "-o", "json", "--playbook", "switchover").stdout)
    assert hist["runs"][-1]["run_id"] == run["run_id"]
    assert hist["runs"][-1]["figures"]["acked_writes_lost"] == 0
    entry = journal.read(lab.state_dir)[-1]
    assert (entry.command, entry.outcome, entry.changed) == ("drill", "succeeded", True)
    assert entry.details["runs"][0]["run_id"] == run["run_id"]


def test_kill_leader_drill_passes_with_figures_printed_and_a_report(lab, tmp_path):
    before = leader(lab)
    report = tmp_path / "kill-leader.md"
    probes = tmp_path / "probes.jsonl"
    result = lab.cli("drill", "run", "kill-leader", "--yes", "--report", str(report), "--probe-log", str(probes), timeout=300)
    assert result.exit_code == 0, result
    out = result.stdout
    assert out.splitlines()[0].startswith("kill-leader run 1: PASS")
    for label in ("write-unavailable window (longest gap)", "time to a new leader in Patroni", "acknowledged writes lost", "split brain (two writers at once)"):
        assert label in out
    assert out.rstrip().splitlines()[-1] == "PASS: 1 of 1 run(s) of kill-leader passed"
    assert "SIGKILL patroni" in result.stderr and f"on {before} (the leader)" in result.stderr
    text = report.read_text()
    assert text.startswith("# Drill kill-leader on lab: PASS")
    attempts = [json.loads(line) for line in probes.read_text().splitlines()]
    writes = [a for a in attempts if a["probe"] == "write"]
    assert writes and {a["probe"] for a in attempts} == {"write", "read"}
    assert any(not a["ok"] and a["error"] for a in writes)  # the outage is in the log, with its errors
    acked = [a for a in writes if a["ok"]]
    assert len({a["server"] for a in acked}) == 2 and len({a["timeline"] for a in acked}) == 2  # old and new primary
    assert "| time to a new leader in Patroni |" in text
    hist = json.loads(lab.cli("drill", "history", "-o", "json", "--playbook", "kill-leader").stdout)
    row = hist["runs"][-1]
    assert row["passed"] is True
    assert row["figures"]["seconds_to_new_leader"] > 0
    assert row["figures"]["split_brain"] == 0


def test_haproxy_restart_drill_never_sends_a_write_to_a_replica(lab):
    # `balance first` picks node0 whenever it counts as UP, and a freshly started HAProxy counts every server UP until
    # its check answers: with the leader elsewhere a restart can send writes to node0 (how often depends on how fast
    # Patroni answers; tests/integration/test_haproxy_rw_routing.py shows it deterministically). The drill must count
    # any such write, and the rendered reject rule must keep their number at 0.
    if leader(lab) == "node0":
        moved = lab.cli("switchover", "--candidate", "node1", "--yes", timeout=120)
        assert moved.exit_code == 0, moved
    assert leader(lab) != "node0"
    result = lab.cli("drill", "run", "haproxy-restart", "--yes", "--repeat", "2", "-o", "json", timeout=300)
    doc = json.loads(result.stdout)
    for run in doc["runs"]:
        figs = figures(run)
        assert run["recovered"] is True
        assert figs["leader_changes"]["value"] == 0
        assert figs["write_unavailable_seconds"]["value"] > 0  # every connection through HAProxy was cut
        assert figs["writes_misrouted"]["value"] == 0, run["notes"]
    assert result.exit_code == (0 if doc["passed"] else 8), result


def test_drill_refuses_a_paused_cluster_and_changes_nothing(lab):
    """F05."""
    client = lab.patroni()
    try:
        before = client.get_cluster(with_config=False).leader.name
        client.set_paused(True)
        result = lab.cli("drill", "run", "kill-leader", "--yes", "--force")
        assert result.exit_code == 7, result
        assert "Error: drill kill-leader refused: not paused: maintenance mode is on: Patroni does not fail over while paused" in result.stderr
        assert client.get_cluster(with_config=False).leader.name == before
        entry = journal.read(lab.state_dir)[-1]
        assert (entry.command, entry.outcome, entry.changed) == ("drill", "refused", False)
    finally:
        client.set_paused(False)


def test_drill_refuses_an_unhealthy_cluster_unless_forced(lab):
    client = lab.patroni()
    try:
        replica = next(m.name for m in client.get_cluster(with_config=False).members if not m.is_leader)
    finally:
        client.close()
    lab.lab.stop_process(replica)
    result = lab.cli("drill", "run", "switchover", "--dry-run")
    assert result.exit_code == 7, result
    assert "Error: drill switchover refused: replicas streaming: not streaming: " in result.stderr
    assert "hint: --force runs it anyway on an unhealthy cluster" in result.stderr


def test_ctrl_c_during_a_drill_recovers_records_the_run_and_leaves_no_probe_rows(lab):
    import os
    import signal
    import subprocess
    import sys
    import time

    from gardenctl.backends.postgres import connect
    from gardenctl.ops.clients import postgres_endpoint
    from gardenctl.ops.drill import history

    env = {k: v for k, v in os.environ.items() if not k.startswith("GARDENCTL_")}
    env.update({"GARDENCTL_STATE_DIR": str(lab.state_dir), "NO_COLOR": "1", "COLUMNS": "160"})
    before = len(history.read(lab.state_dir).runs)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gardenctl", "--config", str(lab.config_path), "drill", "run", "kill-leader", "--yes"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True,
    )
    seen = ""
    deadline = time.monotonic() + 90
    while "fault:" not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += proc.stderr.readline()
    assert proc.poll() is None, seen
    time.sleep(3)  # in the middle of the outage
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    err = seen + err
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    runs = history.read(lab.state_dir).runs
    assert len(runs) == before + 1, err
    run = runs[-1]
    assert run.interrupted and not run.passed and run.recovered, run
    entry = journal.read(lab.state_dir)[-1]
    assert entry.outcome == "aborted" and entry.message.startswith("interrupted during run 1"), entry
    with connect(postgres_endpoint(lab.cluster, "rw")) as conn:
        left = conn.execute("SELECT count(*) FROM gardenctl_drill.probe WHERE run_id = %s", (run.run_id,)).fetchone()[0]
    assert left == 0
