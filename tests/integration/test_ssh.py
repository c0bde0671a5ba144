"""The SSH backend against a real OpenSSH server on loopback (tests/fakes/sshd.py), and the drill's SSH fault target
issuing systemctl commands through it (a recording shim stands in for systemd, which does not run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gardenctl.backends.ssh import (
    RemoteCommandFailed,
    SshAuthFailed,
    SshClient,
    SshHostKeyError,
    SshTimeout,
    SshUnreachable,
)
from gardenctl.errors import BackendError, BackendUnreachable, ConfigError, ExitCode
from gardenctl.ops.drill.faults import SshFaultTarget
from gardenctl.ops.drill.hosts import Hosts, HostNode
from tests.fakes.sshd import available, free_port, start_sshd

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def client(sshd):
    sshd.clear_calls()
    return SshClient(sshd.target())


def test_run_returns_exit_status_and_output(client):
    result = client.run(["echo", "hello world"])
    assert (result.exit_status, result.text) == (0, "hello world\n")
    assert result.command == "echo 'hello world'"


def test_run_passes_environment_and_stdin(client):
    result = client.run("printf '%s|' \"$GREETING\"; cat", env={"GREETING": "hi there"}, input=b"from stdin")
    assert result.text == "hi there|from stdin"


def test_run_without_check_returns_the_failure(client):
    result = client.run("exit 3", check=False)
    assert result.exit_status == 3 and not result.ok


def test_remote_non_zero_exit_is_reported_with_status_and_stderr_tail(client):
    with pytest.raises(RemoteCommandFailed) as info:
        client.run("echo first >&2; echo 'it broke' >&2; exit 7")
    err = info.value
    assert err.exit_status == 7
    assert err.exit_code == ExitCode.BACKEND
    assert err.message == f"ssh node0 ({client.target.where}): `sh -c 'echo first >&2; echo '\"'\"'it broke'\"'\"' >&2; exit 7'` exited 7: it broke"
    assert err.stderr_tail == ["first"]


def test_put_and_get_round_trip_atomically(client, sshd):
    remote = str(sshd.dir / "remote" / "file.txt")
    client.run(["mkdir", "-p", str(sshd.dir / "remote")])
    client.put(remote, "line 1\nline 2\n", mode=0o640)
    assert client.get(remote) == b"line 1\nline 2\n"
    assert oct(Path(remote).stat().st_mode & 0o777) == "0o640"
    assert sorted(p.name for p in (sshd.dir / "remote").iterdir()) == ["file.txt"]  # no temp file left
    local = sshd.dir / "local.bin"
    local.write_bytes(bytes(range(256)))
    client.put_file(local, remote)
    assert client.get(remote) == bytes(range(256))


def test_get_of_a_missing_file_is_a_remote_failure(client, sshd):
    with pytest.raises(RemoteCommandFailed) as info:
        client.get(str(sshd.dir / "nope"))
    assert info.value.exit_status == 1
    assert "No such file or directory" in info.value.message


def test_wrong_key_is_an_authentication_error(sshd):
    c = SshClient(sshd.target(identity_file=str(sshd.bad_key)))
    with pytest.raises(SshAuthFailed) as info:
        c.run(["true"])
    assert info.value.exit_code == ExitCode.BACKEND
    assert "authentication failed" in info.value.message
    assert "Permission denied" in info.value.message
    assert "gardenctl never asks for passwords" in (info.value.hint or "")


def test_closed_port_is_unreachable(sshd):
    c = SshClient(sshd.target(port=free_port(), connect_timeout_seconds=2))
    with pytest.raises(SshUnreachable) as info:
        c.run(["true"])
    assert isinstance(info.value, BackendUnreachable)
    assert info.value.exit_code == ExitCode.UNREACHABLE
    assert "Connection refused" in info.value.message


def test_unknown_host_key_is_refused_not_accepted(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    c = SshClient(sshd.target(known_hosts_file=str(empty)))
    with pytest.raises(SshHostKeyError) as info:
        c.run(["true"])
    assert info.value.message == f"ssh node0 ({sshd.user}@127.0.0.1:{sshd.port}): host key verification failed"
    assert "ssh-keyscan" in (info.value.hint or "")
    assert empty.read_text() == ""  # nothing was added behind the user's back


def test_accept_new_records_an_unknown_host_key(sshd, tmp_path):
    fresh = tmp_path / "known_hosts"
    c = SshClient(sshd.target(known_hosts_file=str(fresh), strict_host_key_checking="accept-new"))
    assert c.run(["true"]).ok
    assert sshd.host_key_pub.split()[1] in fresh.read_text()


def test_changed_host_key_is_refused(sshd, tmp_path):
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:{sshd.port} {Path(str(sshd.bad_key) + '.pub').read_text().split()[0]} {Path(str(sshd.bad_key) + '.pub').read_text().split()[1]}\n")
    c = SshClient(sshd.target(known_hosts_file=str(other), strict_host_key_checking="accept-new"))
    with pytest.raises(SshHostKeyError):
        c.run(["true"])


def test_missing_identity_file_is_a_config_error(sshd):
    c = SshClient(sshd.target(identity_file="/nonexistent/key"))
    with pytest.raises(ConfigError) as info:
        c.run(["true"])
    assert info.value.message == f"ssh node0 ({sshd.user}@127.0.0.1:{sshd.port}): identity file /nonexistent/key does not exist"


def test_a_command_that_does_not_finish_times_out(client):
    with pytest.raises(SshTimeout) as info:
        client.run(["sleep", "10"], timeout_seconds=1)
    assert "did not finish within 1s" in info.value.message


def test_sudo_prefix_never_prompts(sshd):
    c = SshClient(sshd.target(sudo=True))
    result = c.run(["id", "-u"], check=False)
    # As root sudo -n just runs it; as another user without NOPASSWD it fails at once instead of prompting.
    assert result.command == "sudo -n id -u"
    if sshd.user == "root":
        assert result.exit_status == 0, result.stderr_text
        assert result.text.strip() == "0"
    else:
        assert result.exit_status == 0 or "password is required" in result.stderr_text


def test_check_connection(client):
    client.check_connection()


# ------------------------------------------------------------------------------------------------ the drill's SSH target


def hosts_for(sshd) -> Hosts:  # noqa: ANN001
    target = sshd.target()
    nodes = []
    for i in range(3):
        nodes.append(
            HostNode(
                name=f"node{i}",
                ssh=target.__class__(**{**{f: getattr(target, f) for f in target.__slots__}, "name": f"node{i}"}),
                services=("patroni", "etcd", "haproxy") if i == 0 else ("patroni", "etcd"),
                etcd_name=f"etcd{i}",
                units={"patroni": "patroni.service", "etcd": "etcd.service", "haproxy": "haproxy.service", "postgresql": None},
                postgres_data_dir=str(sshd.dir / f"pgdata{i}"),
            )
        )
    return Hosts(nodes=tuple(nodes))


def test_fault_target_issues_exactly_these_systemctl_commands(sshd):
    for unit in ("patroni.service", "etcd.service", "haproxy.service"):
        sshd.set_unit(unit, "active")
    sshd.clear_calls()
    target = SshFaultTarget(hosts_for(sshd))
    assert target.problems() == []
    target.apply("kill", ("patroni", "postgres"), "node1")
    assert target.is_running("patroni", "node1") is False
    target.apply("start", ("patroni",), "node1")
    assert target.is_running("patroni", "node1") is True
    target.apply("kill", ("etcd",), "etcd2")
    target.apply("start", ("etcd",), "etcd2")
    target.apply("stop", ("haproxy",), "node0")
    target.apply("start", ("haproxy",), "node0")
    control_dir = target._control_dir
    target.close()  # ends the shared connections and removes their sockets
    assert control_dir is not None and not Path(control_dir).exists()
    assert sshd.systemctl_calls() == [
        "kill --kill-who=all --signal=SIGKILL patroni.service",
        "stop patroni.service",
        "is-active --quiet patroni.service",
        "start patroni.service",
        "is-active --quiet patroni.service",
        "kill --kill-who=all --signal=SIGKILL etcd.service",
        "stop etcd.service",
        "start etcd.service",
        "stop haproxy.service",
        "start haproxy.service",
    ]


def test_fault_target_signals_the_postmaster_by_pid_file(sshd):
    target = SshFaultTarget(hosts_for(sshd))
    data = sshd.dir / "pgdata2"
    data.mkdir(exist_ok=True)
    victim = __import__("subprocess").Popen(["sleep", "60"])
    try:
        (data / "postmaster.pid").write_text(f"{victim.pid}\n{data}\n")
        record = target.apply("kill", ("postgres",), "node2")
        assert record.detail == f'node2: kill -s KILL "$(head -n 1 {data}/postmaster.pid)"'
        assert victim.wait(5) == -9
    finally:
        target.close()
        if victim.poll() is None:
            victim.kill()


def test_fault_target_reports_a_failing_unit_with_its_exit_status(sshd):
    target = SshFaultTarget(hosts_for(sshd))
    sshd.fail_unit("etcd.service")
    try:
        with pytest.raises(RemoteCommandFailed) as info:
            target.apply("start", ("etcd",), "etcd1")
    finally:
        sshd.fail_unit("etcd.service", False)
        target.close()
    assert info.value.exit_status == 5
    assert info.value.message.endswith("`sh -c 'systemctl start etcd.service'` exited 5: Failed to start etcd.service: Unit etcd.service not found.")
    assert isinstance(info.value, BackendError)


def test_fault_target_preflight_names_unreachable_hosts(sshd):
    hosts = hosts_for(sshd)
    broken = HostNode(name="node9", ssh=sshd.target(port=free_port(), name="node9", connect_timeout_seconds=2), services=("patroni",), etcd_name="node9")
    target = SshFaultTarget(Hosts(nodes=(*hosts.nodes, broken)))
    problems = target.problems()
    target.close()
    assert len(problems) == 1
    assert problems[0].startswith(f"ssh node9 ({sshd.user}@127.0.0.1:") and "Connection refused" in problems[0]
