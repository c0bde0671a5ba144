"""The migrate-phase and db CLI surface: help that teaches, one-line errors with documented exit codes."""

from __future__ import annotations

import re

import pytest
import yaml

DEAD = {
    "patroni": {"endpoints": ["http://127.0.0.1:9"]},
    "etcd": {"endpoints": ["http://127.0.0.1:9"]},
    "haproxy": {"stats-url": "http://127.0.0.1:9/;csv", "rw-address": "127.0.0.1:9"},
}


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"current-context": "prod", "clusters": {"prod": DEAD}}))
    return path


@pytest.mark.parametrize(
    "args, words",
    [
        (["migrate-phase", "--help"], ["status", "plan", "apply", "rollback", "one verified step at a time"]),
        (["migrate-phase", "status", "--help"], ["/gardenos/<scope>/phase", "--manifests"]),
        (["migrate-phase", "plan", "--help"], ["server-side dry-run", "PersistentVolumeClaims", "--force-conflicts", "Exit codes"]),
        (["migrate-phase", "apply", "--help"], ["compare-and-set", "--timeout", "--break-lock", "--dry-run", "--yes", "9 rollouts did not finish"]),
        (["migrate-phase", "rollback", "--help"], ["previous phase", "restoring it"]),
        (["db", "--help"], ["prepare"]),
        (["db", "prepare", "--help"], ["--passwords-file", "--no-vector", "SCRAM", "1 prepared and verified EXCEPT"]),
    ],
)
def test_help_teaches(cli, args, words):
    result = cli(*args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result
    text = re.sub(r"(\w)- (\w)", r"\1-\2", " ".join(result.stdout.split()))  # help wraps after a hyphen too
    for word in words:
        assert word in text, f"{word!r} missing from {' '.join(args)}"


def test_unknown_phase_is_a_config_error_before_anything_is_asked(cli, config):
    result = cli("migrate-phase", "plan", "9", config=config)
    assert result.exit_code == 4, result
    assert result.stderr.startswith("Error: there is no phase 9 (known: 1, 2, 3, 4, 5")
    assert "Traceback" not in result.stderr


def test_etcd_down_is_exit_5_with_one_line(cli, config):
    result = cli("migrate-phase", "status", config=config)
    assert result.exit_code == 5, result
    assert result.stderr.splitlines()[0].startswith("Error: etcd: no endpoint answered")
    assert "hint:" in result.stderr


def test_manifests_flag_must_point_at_phases(cli, config, tmp_path):
    result = cli("migrate-phase", "plan", "1", "--manifests", str(tmp_path), config=config)
    assert result.exit_code == 4 and f"--manifests {tmp_path}: no phases/ directory there" in result.stderr
    env_dir = cli("migrate-phase", "plan", "1", config=config, env={"GARDENCTL_MANIFESTS_DIR": str(tmp_path)})
    assert env_dir.exit_code == 4 and "no phases/ directory" in env_dir.stderr


def test_db_prepare_needs_the_rw_address_and_a_reachable_server(cli, tmp_path):
    no_rw = dict(DEAD, haproxy={"stats-url": "http://127.0.0.1:9/;csv"})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"clusters": {"prod": no_rw}}))
    result = cli("db", "prepare", "--dry-run", config=path)
    assert result.exit_code == 4 and "haproxy.rw-address is not set" in result.stderr
    path.write_text(yaml.safe_dump({"clusters": {"prod": DEAD}}))
    down = cli("db", "prepare", "--dry-run", config=path)
    assert down.exit_code == 5 and down.stderr.count("Error:") == 1 and "127.0.0.1:9" in down.stderr
