"""SSH adapter: the system ``ssh`` client through subprocess, never a password prompt.

Every call is one ``ssh`` process with explicit options, so what gardenctl does is what an operator would type:
``BatchMode=yes`` (fail instead of prompting), ``ConnectTimeout``, an explicit identity file with
``IdentitiesOnly=yes``, an explicit known-hosts file with ``StrictHostKeyChecking`` (``yes`` by default;
``accept-new`` only when configured), and ``-F /dev/null`` unless a config file is named, so a stray
``~/.ssh/config`` cannot change behaviour.

Failures become GardenErrors: `SshUnreachable` (refused, timed out, no route, unknown host), `SshAuthFailed`
(the key was not accepted), `SshHostKeyError` (unknown or changed host key), `RemoteCommandFailed` (the command ran
and exited non-zero: exit status and the tail of its stderr), `SshTimeout` (the command did not finish in time).

Used by drills (systemctl on the database hosts) and reusable for installation work: `SshClient.run` takes a
command with environment and stdin, `put` writes a remote file atomically, `get` reads one.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gardenctl.errors import BackendError, BackendUnreachable, ConfigError

DEFAULT_SSH = "ssh"


class SshUnreachable(BackendUnreachable):
    """The SSH connection could not be made (refused, timed out, no route, name not resolved, closed early)."""


class SshTimeout(BackendUnreachable):
    """The remote command did not finish within its time limit (the ssh process was killed)."""


class SshAuthFailed(BackendError):
    """The server refused our key (or wanted a password, which gardenctl never gives)."""


class SshHostKeyError(BackendError):
    """The server's host key is unknown or has changed."""


def _sudo_hint(remote: str, status: int, stderr: str, target: SshTarget) -> str | None:
    """What to do when ``sudo -n`` itself is the failure: not installed, or it wants a password."""
    if not remote.startswith("sudo -n "):
        return None
    lowered = stderr.lower()
    who = target.user or "the SSH user"
    if status == 127 and "sudo" in lowered and "not found" in lowered:
        return f"sudo is not installed on {target.host}: install it (apt-get install sudo) or log in as root and set sudo: false"
    if "password is required" in lowered or "a terminal is required" in lowered:
        return f"gardenctl never types passwords: give {who} passwordless sudo on {target.host} (NOPASSWD in /etc/sudoers.d/)"
    return None


class RemoteCommandFailed(BackendError):
    """The remote command ran and exited with a non-zero status."""

    def __init__(self, message: str, *, exit_status: int, stderr_tail: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint, details=stderr_tail, code=str(exit_status))
        self.exit_status = exit_status
        self.stderr_tail = stderr_tail


@dataclass(frozen=True, slots=True)
class SshTarget:
    """How to reach one host. ``name`` is what messages call it (the node name)."""

    host: str
    user: str | None = None
    port: int = 22
    identity_file: str | None = None
    known_hosts_file: str | None = None
    strict_host_key_checking: str = "yes"  # yes | accept-new
    connect_timeout_seconds: int = 5
    sudo: bool = False
    config_file: str | None = None
    name: str | None = None
    extra_options: tuple[str, ...] = field(default=())

    @property
    def where(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.where})" if self.name else self.where


@dataclass(frozen=True, slots=True)
class RemoteResult:
    command: str
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode(errors="replace")


_AUTH = ("permission denied", "too many authentication failures", "no supported authentication methods")
_HOSTKEY = ("host key verification failed", "remote host identification has changed", "host key for", "no matching host key")
_UNREACHABLE = (
    "connection refused",
    "connection timed out",
    "operation timed out",
    "no route to host",
    "network is unreachable",
    "could not resolve hostname",
    "name or service not known",
    "temporary failure in name resolution",
    "connection closed by",
    "connection reset by",
    "kex_exchange_identification",
    "broken pipe",
)


def _tail(text: str, lines: int = 5) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()][-lines:]


def shell_command(command: str | Sequence[str], *, env: Mapping[str, str] | None = None, sudo: bool = False) -> str:
    """The one string the remote shell runs. A list is quoted word by word; a string is a shell snippet run by
    ``sh -c``. ``env`` goes through ``env NAME=value`` (visible in the remote process list: pass secrets on stdin)."""
    if isinstance(command, str):
        argv: list[str] = ["sh", "-c", command]
    else:
        argv = [str(a) for a in command]
        if not argv:
            raise ValueError("empty command")
    if env:
        for key in env:
            if not key or not (key[0].isalpha() or key[0] == "_") or not all(c.isalnum() or c == "_" for c in key):
                raise ConfigError(f"ssh: invalid environment variable name {key!r}")
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
    if sudo:
        argv = ["sudo", "-n", *argv]
    return shlex.join(argv)


class SshClient:
    """Runs commands on one host. Construct with explicit settings; nothing is read from the environment."""

    def __init__(
        self,
        target: SshTarget,
        *,
        ssh_binary: str = DEFAULT_SSH,
        timeout_seconds: float = 60.0,
        control_dir: str | None = None,
    ) -> None:
        """``control_dir``: share one SSH connection between calls (ControlMaster), so a command after the first
        starts in milliseconds instead of a full handshake - a drill's fault lands when it says it does. Call
        `close` to end the shared connection."""
        if target.strict_host_key_checking not in ("yes", "accept-new"):
            raise ConfigError(f"ssh: strict-host-key-checking must be yes or accept-new, not {target.strict_host_key_checking!r}")
        self.target = target
        self.ssh_binary = ssh_binary
        self.timeout_seconds = timeout_seconds
        self.control_dir = control_dir

    # -- the one chokepoint
    def argv(self, remote_command: str) -> list[str]:
        t = self.target
        args = [self.ssh_binary, "-F", os.path.expanduser(t.config_file) if t.config_file else "/dev/null", "-T"]
        options = {
            "BatchMode": "yes",
            "ConnectTimeout": str(int(t.connect_timeout_seconds)),
            "StrictHostKeyChecking": t.strict_host_key_checking,
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "LogLevel": "ERROR",
            "ServerAliveInterval": "5",
            "ServerAliveCountMax": "3",
        }
        if t.known_hosts_file:
            options["UserKnownHostsFile"] = os.path.expanduser(t.known_hosts_file)
            options["GlobalKnownHostsFile"] = "/dev/null"
        if t.identity_file:
            options["IdentitiesOnly"] = "yes"
        if self.control_dir:
            options["ControlMaster"] = "auto"
            options["ControlPath"] = os.path.join(self.control_dir, "%C")
            options["ControlPersist"] = "300"
        for key, value in options.items():
            args += ["-o", f"{key}={value}"]
        for extra in t.extra_options:
            args += ["-o", extra]
        if t.identity_file:
            args += ["-i", os.path.expanduser(t.identity_file)]
        args += ["-p", str(t.port)]
        if t.user:
            args += ["-l", t.user]
        args += ["--", t.host, remote_command]
        return args

    def _preflight(self) -> None:
        t = self.target
        if t.identity_file and not Path(os.path.expanduser(t.identity_file)).is_file():
            raise ConfigError(f"ssh {t.label}: identity file {t.identity_file} does not exist")
        if t.known_hosts_file and t.strict_host_key_checking == "yes" and not Path(os.path.expanduser(t.known_hosts_file)).is_file():
            raise ConfigError(
                f"ssh {t.label}: known-hosts file {t.known_hosts_file} does not exist",
                hint=f"create it after checking the host key: ssh-keyscan -p {t.port} {t.host} >> {t.known_hosts_file}",
            )

    def run(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input: bytes | str | None = None,
        sudo: bool | None = None,
        check: bool = True,
        timeout_seconds: float | None = None,
    ) -> RemoteResult:
        """Run ``command`` on the host and return its exit status and output.

        ``sudo`` (default: the target's setting) prefixes ``sudo -n``: never a password prompt. With ``check``
        (the default) a non-zero exit raises `RemoteCommandFailed`. Connection problems always raise.
        """
        self._preflight()
        remote = shell_command(command, env=env, sudo=self.target.sudo if sudo is None else sudo)
        data = input.encode() if isinstance(input, str) else input
        limit = timeout_seconds or self.timeout_seconds
        try:
            proc = subprocess.run(
                self.argv(remote),
                input=data,
                stdin=None if data is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=limit,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ConfigError(f"ssh client {self.ssh_binary!r} not found", hint="install it (Debian: apt-get install openssh-client)") from exc
        except subprocess.TimeoutExpired as exc:
            raise SshTimeout(f"ssh {self.target.label}: `{_short(remote)}` did not finish within {limit:g}s") from exc
        result = RemoteResult(command=remote, exit_status=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)
        if proc.returncode == 255:
            self._raise_transport(result)
        if check and proc.returncode != 0:
            tail = _tail(result.stderr_text) or _tail(result.text)
            last = f": {tail[-1]}" if tail else ""
            raise RemoteCommandFailed(
                f"ssh {self.target.label}: `{_short(remote)}` exited {proc.returncode}{last}",
                exit_status=proc.returncode,
                stderr_tail=tail[:-1] if tail else [],
                hint=_sudo_hint(remote, proc.returncode, result.stderr_text, self.target),
            )
        return result

    def _raise_transport(self, result: RemoteResult) -> None:
        text = result.stderr_text
        lowered = text.lower()
        tail = _tail(text)
        reason = tail[-1] if tail else "ssh exited 255 without a message"
        label = self.target.label
        if any(p in lowered for p in _HOSTKEY):
            raise SshHostKeyError(
                f"ssh {label}: host key verification failed",
                hint=(
                    f"check the host's key fingerprint, then add it to {self.target.known_hosts_file or '~/.ssh/known_hosts'} "
                    f"(ssh-keyscan -p {self.target.port} {self.target.host}); if the host was rebuilt, remove the old entry first"
                ),
                details=tail,
            )
        if any(p in lowered for p in _AUTH):
            raise SshAuthFailed(
                f"ssh {label}: authentication failed ({reason})",
                hint=(
                    f"check that the public key of {self.target.identity_file or 'your identity file'} is in "
                    f"~{self.target.user or ''}/.ssh/authorized_keys on {self.target.host}; gardenctl never asks for passwords"
                ),
            )
        if any(p in lowered for p in _UNREACHABLE) or lowered.startswith("ssh:") or not text.strip():
            raise SshUnreachable(f"ssh {label}: {reason}", hint="check the address and port in the hosts: section and that sshd runs")
        # 255 from the remote command itself.
        raise RemoteCommandFailed(
            f"ssh {label}: `{_short(result.command)}` exited 255: {reason}", exit_status=255, stderr_tail=tail[:-1]
        )

    def close(self) -> None:
        """End the shared connection (with ``control_dir``); harmless when there is none."""
        if not self.control_dir:
            return
        argv = self.argv("true")
        argv = [a for a in argv[: argv.index("--")]] + ["-O", "exit", self.target.host]
        try:
            subprocess.run(argv, capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            pass

    # -- conveniences built on run()
    def check_connection(self) -> None:
        """Log in and run ``true``: raises what a real command would."""
        self.run(["true"], sudo=False)

    def put(self, remote_path: str, data: bytes | str, *, mode: int = 0o644, sudo: bool | None = None) -> None:
        """Write ``data`` to ``remote_path`` atomically (temp file in the same directory, chmod, rename)."""
        tmp = f"{remote_path}.gardenctl-tmp"
        script = (
            f"umask 077 && cat > {shlex.quote(tmp)} && chmod {mode:o} {shlex.quote(tmp)} && "
            f"mv -f {shlex.quote(tmp)} {shlex.quote(remote_path)}"
        )
        self.run(script, input=data if isinstance(data, bytes) else data.encode(), sudo=sudo)

    def put_file(self, local_path: str | Path, remote_path: str, *, mode: int | None = None, sudo: bool | None = None) -> None:
        path = Path(local_path)
        try:
            data = path.read_bytes()
            file_mode = mode if mode is not None else path.stat().st_mode & 0o777
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        self.put(remote_path, data, mode=file_mode, sudo=sudo)

    def get(self, remote_path: str, *, sudo: bool | None = None) -> bytes:
        """The bytes of a remote file; `RemoteCommandFailed` if it cannot be read."""
        return self.run(["cat", "--", remote_path], sudo=sudo).stdout


def _short(command: str, limit: int = 120) -> str:
    return command if len(command) <= limit else command[: limit - 3] + "..."
