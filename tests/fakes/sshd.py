"""A real OpenSSH server on a loopback port, for testing gardenctl's SSH path without any real host.

`start_sshd(directory)` generates everything throwaway inside ``directory``: an ed25519 host key, a client key
(authorized) and a second client key (not authorized), an sshd_config that allows only public-key login for the
current user, a known_hosts file with the host key, and a bin/ directory that sshd puts first in the PATH of every
session (``SetEnv PATH=...``).

There is no systemd here, so bin/ holds a **recording shim** for ``systemctl``: every call is appended to
``systemctl.log`` (one line per call, the arguments joined by spaces) and the unit state is kept in files
(units/<unit>: active | inactive): ``start`` makes a unit active, ``stop`` and ``kill`` inactive, ``is-active``
answers 0 or 3 like systemd. ``fail_unit(unit)`` makes every call on that unit fail with exit 5 and a systemd-like
message on stderr.

Needs /usr/sbin/sshd (Debian: openssh-server) and ssh-keygen. Privilege separation wants /run/sshd to exist when
sshd runs as root; it is created (empty, 0755) if missing, as the Debian service would.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"

SHIM = r"""#!/bin/sh
# Recording systemctl shim for tests: logs the call, keeps unit state in files.
dir="__DIR__"
printf '%s\n' "$*" >> "$dir/systemctl.log"
verb=""
quiet=0
units=""
for arg in "$@"; do
  case "$arg" in
    --quiet|-q) quiet=1 ;;
    --*) ;;
    *) if [ -z "$verb" ]; then verb="$arg"; else units="$units $arg"; fi ;;
  esac
done
status=0
for unit in $units; do
  if [ -e "$dir/fail/$unit" ]; then
    echo "Failed to $verb $unit: Unit $unit not found." >&2
    exit 5
  fi
  state=$(cat "$dir/units/$unit" 2>/dev/null || echo inactive)
  case "$verb" in
    start|restart) echo active > "$dir/units/$unit" ;;
    stop|kill) echo inactive > "$dir/units/$unit" ;;
    is-active)
      [ "$quiet" = 1 ] || echo "$state"
      [ "$state" = active ] || status=3 ;;
    *) echo "shim: unsupported verb $verb" >&2; exit 1 ;;
  esac
done
exit $status
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True, capture_output=True)


@dataclass
class Sshd:
    dir: Path
    port: int
    user: str
    key: Path  # authorized client key
    bad_key: Path  # a key the server does not know
    known_hosts: Path
    host_key_pub: str
    proc: subprocess.Popen | None = None
    host: str = "127.0.0.1"
    log: Path = field(default=Path("/dev/null"))

    def target(self, **overrides):  # noqa: ANN003, ANN201
        from gardenctl.backends.ssh import SshTarget

        values = {
            "host": self.host,
            "user": self.user,
            "port": self.port,
            "identity_file": str(self.key),
            "known_hosts_file": str(self.known_hosts),
            "connect_timeout_seconds": 5,
            "name": "node0",
        }
        values.update(overrides)
        return SshTarget(**values)

    @property
    def systemctl_log(self) -> Path:
        return self.dir / "systemctl.log"

    def systemctl_calls(self) -> list[str]:
        try:
            return self.systemctl_log.read_text().splitlines()
        except FileNotFoundError:
            return []

    def clear_calls(self) -> None:
        self.systemctl_log.unlink(missing_ok=True)

    def set_unit(self, unit: str, state: str) -> None:
        (self.dir / "units" / unit).write_text(state + "\n")

    def unit_state(self, unit: str) -> str:
        try:
            return (self.dir / "units" / unit).read_text().strip()
        except FileNotFoundError:
            return "inactive"

    def fail_unit(self, unit: str, fail: bool = True) -> None:
        path = self.dir / "fail" / unit
        if fail:
            path.write_text("")
        else:
            path.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def available() -> str | None:
    """Why a real sshd cannot run here, or None."""
    if not Path(SSHD).is_file():
        return f"{SSHD} not installed (Debian: apt-get install openssh-server)"
    if not shutil.which("ssh-keygen") or not shutil.which("ssh"):
        return "ssh / ssh-keygen not installed"
    return None


def start_sshd(directory: Path, *, timeout: float = 10.0) -> Sshd:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for sub in ("bin", "units", "fail"):
        (directory / sub).mkdir(exist_ok=True)
    host_key = directory / "ssh_host_ed25519_key"
    key = directory / "client_key"
    bad_key = directory / "other_key"
    _keygen(host_key, "gardenctl-test-host")
    _keygen(key, "gardenctl-test-client")
    _keygen(bad_key, "gardenctl-test-stranger")
    (directory / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    shim = directory / "bin" / "systemctl"
    shim.write_text(SHIM.replace("__DIR__", str(directory)))
    os.chmod(shim, 0o755)
    user = getpass.getuser()
    port = free_port()
    log = directory / "sshd.log"
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {directory / 'sshd.pid'}",
                f"AuthorizedKeysFile {directory / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                f"AllowUsers {user}",
                "StrictModes no",
                "UsePAM no",
                "PrintMotd no",
                "PrintLastLog no",
                f"SetEnv PATH={directory / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"sshd -t rejected the test config: {check.stderr.strip()}")
    proc = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(log)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host_pub = Path(f"{host_key}.pub").read_text().split()
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    server = Sshd(dir=directory, port=port, user=user, key=key, bad_key=bad_key, known_hosts=known_hosts, host_key_pub=f"{host_pub[0]} {host_pub[1]}", proc=proc, log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"sshd did not answer on 127.0.0.1:{port} within {timeout}s")
