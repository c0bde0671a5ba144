"""`gardenctl lab` on the real lab."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.lab


def test_lab_status_lists_every_process_running(lab):
    result = lab.cli("lab", "status", "--dir", str(lab.lab.dir), "-o", "json")
    assert result.exit_code == 0, result
    doc = json.loads(result.stdout)
    assert doc["kind"] == "LabStatus"
    names = sorted(p["name"] for p in doc["processes"])
    assert names == ["etcd0", "etcd1", "etcd2", "haproxy", "node0", "node1", "node2"]
    assert all(p["running"] for p in doc["processes"])
    assert all(p["postgres_running"] for p in doc["processes"] if p["kind"] == "patroni")


def test_lab_up_on_running_lab_reports_and_exits_zero(lab):
    result = lab.cli("lab", "up", "--dir", str(lab.lab.dir), "--base-port", str(lab.lab.require_state().base_port))
    assert result.exit_code == 0, result
    assert "already running" in result.stdout


def test_lab_up_without_flags_keeps_the_running_labs_settings(lab):
    # the lab fixture runs on a non-default base port: `lab up` without --base-port must not ask for 15400
    result = lab.cli("lab", "up", "--dir", str(lab.lab.dir))
    assert result.exit_code == 0, result
    assert "already running" in result.stdout


def test_lab_up_with_another_base_port_on_a_running_lab_is_refused(lab):
    base = lab.lab.require_state().base_port
    result = lab.cli("lab", "up", "--dir", str(lab.lab.dir), "--base-port", str(base + 100))
    assert result.exit_code == 7, result
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"Error: the lab in {lab.lab.dir} is running with base port {base}"), result.stderr
    assert f"asks for base port {base + 100}" in first and "Traceback" not in result.stderr


def test_lab_logs_of_an_unknown_process_is_a_usage_error(lab):
    result = lab.cli("lab", "logs", "nosuch", "--dir", str(lab.lab.dir))
    assert result.exit_code == 2, result
    assert result.stderr.splitlines()[0] == "Error: no lab process named 'nosuch' (known: etcd0, etcd1, etcd2, haproxy, node0, node1, node2)"


def test_lab_up_starts_what_is_stopped_in_a_partly_running_lab(lab):
    lab.lab.stop_process("etcd1")
    lab.lab.stop_process("haproxy")
    result = lab.cli("lab", "up", "--dir", str(lab.lab.dir), timeout=180)
    assert result.exit_code == 0, result
    assert "partly running: starting etcd1, haproxy" in result.stderr, result.stderr
    status = lab.lab.status()
    assert status.running, [(p.name, p.running) for p in status.processes]


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only: PostgreSQL then runs as another user")
def test_lab_up_in_a_directory_postgres_cannot_reach_is_refused_before_anything_starts(lab):
    private = Path(tempfile.mkdtemp(prefix="gardenctl-private-"))  # mode 0700, owned by root: like /root
    target = private / "lab"
    request_cleanup = private.rmdir
    result = lab.cli("lab", "up", "--dir", str(target), "--base-port", "17300")
    assert result.exit_code == 7, result
    first = result.stderr.splitlines()[0]
    assert first == (
        f"Error: user 'postgres', which runs PostgreSQL, cannot enter {private} (mode 0700), "
        f"so it cannot reach the lab directory {target}"
    ), result.stderr
    assert not target.exists(), "nothing may be created"
    request_cleanup()


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only: the node's config is made unreadable for the postgres user")
def test_a_failed_lab_up_stops_everything_it_started_and_hints_with_its_dir(tmp_path):
    from gardenctl.lab import Lab, LabOptions

    lab_dir = Path("/var/lib/gardenctl") / f"test-failing-lab-{os.getpid()}"
    other = Lab(lab_dir)
    try:
        other.up(LabOptions(lab_dir=lab_dir, base_port=17200), timeout_seconds=180)
        other.down()
        config = lab_dir / "patroni" / "node1" / "patroni.yml"
        assert config.exists()
        os.chmod(config, 0o000)  # node1's Patroni cannot read its config: it exits at start-up
        result = run_cli("lab", "up", "--dir", str(lab_dir), config=tmp_path / "config.yaml", timeout=240)
        assert result.exit_code != 0, result
        assert "Traceback" not in result.stderr
        assert "node1" in result.stderr, result.stderr
        assert f"gardenctl lab logs NAME --dir {lab_dir}" in result.stderr, result.stderr
        status = other.status()
        assert not status.any_running, [(p.name, p.running) for p in status.processes]
    finally:
        other.down(purge=True)


def test_lab_commands_without_dir_point_at_the_current_contexts_lab(lab):
    """The lab commands act on --dir (or the default); when the default holds no lab and the current context is a lab
    elsewhere, they say where it is instead of only 'no lab'."""
    from gardenctl.lab import Lab, default_lab_dir

    if Lab(default_lab_dir()).load_state() is not None:
        pytest.skip(f"a lab runs in the default directory {default_lab_dir()}: the hint is not given then")
    hint = f"hint: the current context's lab is in {lab.lab.dir}: add --dir {lab.lab.dir}"
    status = lab.cli("lab", "status")
    assert status.exit_code == 1, status
    assert status.stdout.startswith(f"No lab in {default_lab_dir()}")
    assert status.stderr.strip() == hint, status
    logs = lab.cli("lab", "logs", "node0")
    assert logs.exit_code == 7, logs
    assert logs.stderr.splitlines() == [f"Error: no lab in {default_lab_dir()}", hint], logs
    down = lab.cli("lab", "down")
    assert down.exit_code == 0 and hint in down.stderr, down
    assert lab.lab.status().running  # nothing of the context's lab was touched
