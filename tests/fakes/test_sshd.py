"""The loopback sshd fixture itself: it accepts only its key, puts the systemctl shim first in PATH, and the shim
records calls and keeps unit state like systemd answers."""

from __future__ import annotations

import subprocess

import pytest

from tests.fakes.sshd import available, start_sshd

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")


def ssh(server, *command: str, key=None) -> subprocess.CompletedProcess:  # noqa: ANN001
    argv = [
        "ssh", "-F", "/dev/null", "-T",
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-i", str(key or server.key), "-p", str(server.port), "-l", server.user, "127.0.0.1", *command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_sshd_fixture_records_systemctl_and_keeps_unit_state(tmp_path):
    server = start_sshd(tmp_path / "sshd")
    try:
        assert ssh(server, "command -v systemctl").stdout.strip() == str(server.dir / "bin" / "systemctl")
        assert ssh(server, "systemctl is-active etcd.service").returncode == 3
        assert ssh(server, "systemctl start etcd.service haproxy.service").returncode == 0
        done = ssh(server, "systemctl is-active etcd.service")
        assert (done.returncode, done.stdout) == (0, "active\n")
        assert server.unit_state("haproxy.service") == "active"
        assert ssh(server, "systemctl kill --signal=SIGKILL etcd.service").returncode == 0
        assert server.unit_state("etcd.service") == "inactive"
        server.fail_unit("patroni.service")
        failed = ssh(server, "systemctl stop patroni.service")
        assert (failed.returncode, failed.stderr.strip()) == (5, "Failed to stop patroni.service: Unit patroni.service not found.")
        assert server.systemctl_calls() == [
            "is-active etcd.service",
            "start etcd.service haproxy.service",
            "is-active etcd.service",
            "kill --signal=SIGKILL etcd.service",
            "stop patroni.service",
        ]
        denied = ssh(server, "true", key=server.bad_key)
        assert denied.returncode == 255 and "Permission denied" in denied.stderr
    finally:
        server.stop()
    assert server.proc.poll() is not None
