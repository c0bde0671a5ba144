"""`gardenctl lab` on the real lab."""

from __future__ import annotations

import json

import pytest

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
