"""`gardenctl status` on the real lab: the joined view of a healthy cluster, and an unreachable component that is
shown as such while the rest still renders. The `lab` fixture leaves the lab healthy."""

from __future__ import annotations

import json
import socket

import pytest
import yaml

from tests.conftest import run_cli

pytestmark = pytest.mark.lab


def test_status_of_the_healthy_lab(lab):
    result = lab.cli("status", "-o", "json")
    assert result.exit_code == 0, result
    doc = json.loads(result.stdout)
    assert (doc["kind"], doc["version"], doc["severity"]) == ("StatusReport", 1, "OK")
    members = doc["patroni"]["members"]
    leaders = [m for m in members if m["role"] == "leader"]
    assert len(leaders) == 1 and leaders[0]["state"] == "running"
    leader = leaders[0]["name"]
    replicas = [m for m in members if m["role"] == "replica"]
    assert len(replicas) == 2 and all(m["state"] == "streaming" for m in replicas)
    assert all(isinstance(m["lag_bytes"], int) for m in replicas)
    assert len({m["timeline"] for m in members}) == 1
    etcd = doc["etcd"]["members"]
    assert len(etcd) == 3 and all(m["healthy"] for m in etcd)
    assert sum(m["is_leader"] for m in etcd) == 1
    assert all(isinstance(m["id"], str) and format(int(m["id"]), "x") == m["id_hex"] for m in etcd)
    assert doc["etcd"]["failures_tolerated"] == 1 and doc["etcd"]["alarms"] == [] and doc["etcd"]["alarms_error"] is None
    rw = [s for s in doc["haproxy"]["servers"] if s["backend"] == "pg_rw"]
    assert [s["name"] for s in rw if s["status"] == "UP"] == [leader]
    # replicas answer /primary with 503; while HAProxy runs a check (every 0.5 s) the code is not known yet
    others = [s for s in rw if s["name"] != leader]
    assert all(s["check_status"] == "L7STS" and s["check_code"] == (None if s["check_in_progress"] else 503) for s in others), others
    assert doc["haproxy"]["rw_target"] == leader
    assert {f["severity"] for f in doc["findings"]} == {"OK"}

    table = lab.cli("status", env={"COLUMNS": "160"})
    assert table.exit_code == 0, table
    assert f"HAProxy  read-write -> {leader}" in table.stdout
    assert "2 of 2 replicas streaming" in table.stdout
    narrow = lab.cli("status", env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines())
    assert f"OK: leader {leader}, 2/2 replicas streaming, etcd 3/3 healthy, rw -> {leader}" in narrow.stdout


def test_status_with_an_unreachable_etcd_endpoint_renders_the_rest(lab, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    raw = yaml.safe_load(lab.config_path.read_text())
    raw["clusters"]["lab"]["etcd"]["endpoints"] = [f"http://127.0.0.1:{dead}"]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = run_cli("status", "-o", "json", config=config, env={"GARDENCTL_STATE_DIR": str(tmp_path / "state")})
    assert result.exit_code == 3, result
    doc = json.loads(result.stdout)
    assert doc["etcd"]["reachable"] is False
    assert f"127.0.0.1:{dead}: connection refused" in doc["etcd"]["error"]
    assert doc["patroni"]["reachable"] is True and len(doc["patroni"]["members"]) == 3
    assert doc["haproxy"]["reachable"] is True and doc["haproxy"]["rw_target"]
    assert [f["rule"] for f in doc["findings"] if f["severity"] == "UNKNOWN"] == ["etcd_reachable"]
    table = run_cli("status", config=config, env={"GARDENCTL_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "160"})
    assert table.exit_code == 3
    assert "etcd: unreachable - etcd: no endpoint answered" in table.stdout
    assert "Patroni  scope gardenos-lab" in table.stdout
