"""`lab down --purge` removes the contexts of the purged lab (they would point at secrets that no longer exist)."""
from __future__ import annotations

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
