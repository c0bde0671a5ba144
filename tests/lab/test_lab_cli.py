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
