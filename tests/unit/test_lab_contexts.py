"""`lab down --purge` removes the contexts of the purged lab (they would point at secrets that no longer exist)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli


def lab_cluster(lab_dir) -> dict:
    """The shape `lab up` writes (Lab.context), password files inside the lab directory."""
    return {
        "scope": "gardenos-lab",
        "lab-dir": str(lab_dir),
        "patroni": {"endpoints": ["http://127.0.0.1:15421"], "username": "patroni", "password-file": str(lab_dir / "secrets" / "rest_password")},
        "etcd": {"endpoints": ["http://127.0.0.1:15401"]},
        "haproxy": {"stats-socket": str(lab_dir / "haproxy" / "haproxy.sock"), "rw-address": "127.0.0.1:15440", "ro-address": "127.0.0.1:15441"},
        "postgres": {"user": "postgres", "dbname": "postgres", "password-file": str(lab_dir / "secrets" / "superuser_password")},
    }


def test_purge_removes_the_labs_contexts_and_keeps_the_others(tmp_path):
    gone_dir = tmp_path / "lab"  # never started, or already purged: the command has nothing to stop
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "current-context": "lab",
        "clusters": {"lab": lab_cluster(gone_dir), "lab-copy": lab_cluster(gone_dir), "other": lab_cluster(tmp_path / "elsewhere")},
    }))
    result = run_cli("lab", "down", "--purge", "--dir", str(gone_dir), config=config)
    assert result.exit_code == 0, result
    assert f"context 'lab' removed from {config}" in result.stderr and "context 'lab-copy' removed" in result.stderr
    after = yaml.safe_load(config.read_text())
    assert set(after["clusters"]) == {"other"} and "current-context" not in after
    # the only context was the lab's: then `status` says to start one, not "cannot read .../rest_password"
    config.write_text(yaml.safe_dump({"current-context": "lab", "clusters": {"lab": lab_cluster(gone_dir)}}))
    assert run_cli("lab", "down", "--purge", "--dir", str(gone_dir), config=config).exit_code == 0
    assert yaml.safe_load(config.read_text()) == {"clusters": {}}
    status = run_cli("status", config=config)
    assert status.exit_code == 4, status
    assert status.stderr.splitlines() == [
        f"Error: {config}: no clusters in it",
        "hint: run `gardenctl lab up` to start a local lab and create a 'lab' context, or add a cluster (README: Configuration)",
    ]


def test_plain_down_keeps_the_context(tmp_path):
    gone_dir = tmp_path / "lab"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"current-context": "lab", "clusters": {"lab": lab_cluster(gone_dir)}}))
    result = run_cli("lab", "down", "--dir", str(gone_dir), config=config)
    assert result.exit_code == 0, result
    assert yaml.safe_load(config.read_text())["current-context"] == "lab"


def test_a_malformed_config_is_left_alone_with_a_warning(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("clusters: [\n")
    result = run_cli("lab", "down", "--purge", "--dir", str(tmp_path / "lab"), config=config)
    assert result.exit_code == 0, result
    assert "warning: contexts of the purged lab not removed:" in result.stderr and "malformed YAML" in result.stderr
    assert config.read_text() == "clusters: [\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only: then every user's default lab is /var/lib/gardenctl/lab")
def test_the_shared_default_lab_is_not_touched_from_a_config_that_does_not_know_it(tmp_path):
    from gardenctl.lab import Lab, LabState, default_lab_dir

    shared = Path("/var/lib/gardenctl/lab")
    env = {"GARDENCTL_LAB_DIR": ""}
    if shared.exists():
        pytest.skip(f"{shared} exists (a real lab): not touching it")
    assert default_lab_dir() == shared
    lab = Lab(shared)
    shared.mkdir(parents=True)
    try:
        lab.save_state(LabState(lab_dir=str(shared), base_port=15400, scope="gardenos-lab", synchronous_mode=False,
                                run_as="postgres", python=sys.executable, pg_bindir="/usr/lib/postgresql/15/bin", created_at=0.0))
        theirs = tmp_path / "theirs.yaml"  # another user's config: no context for the shared lab
        theirs.write_text(yaml.safe_dump({"clusters": {"other": lab_cluster(tmp_path / "elsewhere")}}))
        for args in (("lab", "down", "--purge"), ("lab", "up", "--base-port", "15900")):
            result = run_cli(*args, config=theirs, env=env)
            assert result.exit_code == 7, result
            assert result.stderr.splitlines()[0] == (
                f"Error: the lab in {shared} is not in your config ({theirs} has no context pointing at it): it may be another user's"
            ), result.stderr
            assert (shared / "lab.json").exists()
        mine = tmp_path / "mine.yaml"
        mine.write_text(yaml.safe_dump({"current-context": "lab", "clusters": {"lab": lab_cluster(shared)}}))
        result = run_cli("lab", "down", "--purge", config=mine, env=env)
        assert result.exit_code == 0, result
        assert not shared.exists()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
