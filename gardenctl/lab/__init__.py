"""The local lab: a real 3-member etcd, 3 Patroni nodes with PostgreSQL, and HAProxy, on loopback.

It is both the user's demo (`gardenctl lab up`) and the test bed. Like `ops/`, it never prints or prompts: it
reports progress through a callback and raises GardenErrors.

Ports derive from one base (default 15400):

=============  ============================
base + 0..2    etcd client (etcd0..etcd2)
base + 10..12  etcd peer
base + 20..22  Patroni REST (node0..node2)
base + 30..32  PostgreSQL
base + 40      HAProxy read-write (``GET /primary``)
base + 41      HAProxy read-only (``GET /replica``)
base + 42      HAProxy stats page (``/stats``)
=============  ============================
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat as statmode
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from gardenctl import yamltext
from gardenctl.errors import GardenError, OperationFailed, PreconditionFailed, UsageError
from gardenctl.stack import Credentials, StackNode, StackSpec, Timing, etcd_args, haproxy_config, patroni_config
from gardenctl.wait import REAL_CLOCK, Clock, wait_until

DEFAULT_BASE_PORT = 15400
NODES = 3
SCOPE = "gardenos-lab"
STATE_FILE = "lab.json"


def default_lab_dir() -> Path:
    """Root runs Patroni as an unprivileged user, which must reach the lab dir: keep it out of /root."""
    if os.environ.get("GARDENCTL_LAB_DIR"):
        return Path(os.environ["GARDENCTL_LAB_DIR"])
    if os.geteuid() == 0:
        return Path("/var/lib/gardenctl/lab")
    from gardenctl.config import default_state_dir

    return default_state_dir() / "lab"


@dataclass(frozen=True, slots=True)
class LabOptions:
    lab_dir: Path
    base_port: int = DEFAULT_BASE_PORT
    synchronous_mode: bool = False
    pg_bindir: str | None = None
    run_as: str | None = None  # None: the current user, or 'postgres' when running as root
    scope: str = SCOPE


@dataclass(frozen=True, slots=True)
class Ports:
    base: int

    def etcd_client(self, i: int) -> int:
        return self.base + i

    def etcd_peer(self, i: int) -> int:
        return self.base + 10 + i

    def rest(self, i: int) -> int:
        return self.base + 20 + i

    def pg(self, i: int) -> int:
        return self.base + 30 + i

    @property
    def rw(self) -> int:
        return self.base + 40

    @property
    def ro(self) -> int:
        return self.base + 41

    @property
    def stats(self) -> int:
        return self.base + 42

    def all(self) -> list[tuple[int, str]]:
        out = []
        for i in range(NODES):
            out += [(self.etcd_client(i), f"etcd{i} client"), (self.etcd_peer(i), f"etcd{i} peer")]
            out += [(self.rest(i), f"node{i} Patroni REST"), (self.pg(i), f"node{i} PostgreSQL")]
        out += [(self.rw, "HAProxy read-write"), (self.ro, "HAProxy read-only"), (self.stats, "HAProxy stats")]
        return out


@dataclass
class ProcRecord:
    name: str
    kind: str  # etcd | patroni | haproxy
    cmd: list[str]
    log: str
    cwd: str
    user: str | None = None
    pid: int | None = None
    start_ticks: int | None = None
    data_dir: str | None = None


@dataclass
class LabState:
    lab_dir: str
    base_port: int
    scope: str
    synchronous_mode: bool
    run_as: str | None
    python: str
    pg_bindir: str
    created_at: float
    processes: dict[str, ProcRecord] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2)

    @staticmethod
    def from_json(text: str) -> "LabState":
        data = json.loads(text)
        procs = {k: ProcRecord(**v) for k, v in data.pop("processes", {}).items()}
        return LabState(**data, processes=procs)


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    name: str
    kind: str
    pid: int | None
    running: bool
    log: str
    postgres_pid: int | None = None
    postgres_running: bool | None = None


@dataclass(frozen=True, slots=True)
class LabStatus:
    __kind__ = "LabStatus"
    lab_dir: str
    exists: bool
    base_port: int | None
    processes: tuple[ProcessStatus, ...] = ()

    @property
    def running(self) -> bool:
        return bool(self.processes) and all(p.running for p in self.processes)

    @property
    def any_running(self) -> bool:
        return any(p.running for p in self.processes)


@dataclass(frozen=True, slots=True)
class LabUpResult:
    __kind__ = "LabUp"
    lab_dir: str
    already_running: bool
    seconds: float
    moments: tuple[tuple[str, float], ...]
    context: dict[str, Any]
    rw_address: str
    ro_address: str


# ------------------------------------------------------------------------------------------------ processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    after = text[text.rindex(")") + 2 :].split()
    return after[0], int(after[19])


def pid_alive(pid: int | None, start_ticks: int | None = None) -> bool:
    """Running and the same process we started (PIDs get reused). A zombie counts as stopped."""
    if not pid:
        return False
    _reap(pid)
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return start_ticks is None or stat[1] == start_ticks


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def postmaster_pid(data_dir: str | None) -> int | None:
    if not data_dir:
        return None
    try:
        first = Path(data_dir, "postmaster.pid").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    pid = int(first) if first.strip().isdigit() else None
    if pid and _is_postgres(pid, data_dir):
        return pid
    return None


def _is_postgres(pid: int, data_dir: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not cmdline or not cmdline[0]:
        return False
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return os.path.basename(cmdline[0].decode(errors="replace")) in ("postgres", "postmaster") or data_dir.encode() in b" ".join(cmdline)


def patroni_python() -> str:
    """The interpreter that runs Patroni: this one, with symlinked directories resolved (a ``.venv`` link into
    /var/lib/gardenctl) but not the final link, which would leave the virtualenv."""
    return os.path.join(os.path.realpath(os.path.dirname(sys.executable)), os.path.basename(sys.executable))


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


_DIR_BLOCKED = 3
# Run as the user Patroni runs as: exit 3 naming the first ancestor of the lab directory it cannot enter, else import
# Patroni (the exit code and traceback say why that fails).
_RUNNABLE_PROBE = """
import os, sys
path = sys.argv[1]
parts = [p for p in path.split("/") if p]
for i in range(len(parts) + 1):
    ancestor = "/" + "/".join(parts[:i])
    if not os.path.exists(ancestor):
        break
    if not os.access(ancestor, os.X_OK):
        print("blocked " + ancestor)
        sys.exit(3)
import patroni, psycopg
"""


def _port_owner(what: str) -> str:
    """The lab process a port of `Ports.all` belongs to: "etcd0 client" -> etcd0, "HAProxy stats" -> haproxy."""
    return "haproxy" if what.startswith("HAProxy") else what.split()[0]


def find_pg_bindir(explicit: str | None = None) -> str:
    """``--pg-bindir``, then ``pg_config --bindir``, then the newest /usr/lib/postgresql/*/bin with initdb."""
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    else:
        pg_config = shutil.which("pg_config")
        if pg_config:
            try:
                out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=5).stdout.strip()
                if out:
                    candidates.append(out)
            except (OSError, subprocess.SubprocessError):
                pass
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name), reverse=True)
        candidates += [str(p) for p in versions]
    for cand in candidates:
        if all(Path(cand, exe).is_file() for exe in ("initdb", "postgres", "pg_ctl")):
            return cand
    if explicit:
        raise PreconditionFailed(f"no PostgreSQL server binaries (initdb, postgres, pg_ctl) in {explicit}")
    raise PreconditionFailed(
        "PostgreSQL server binaries not found (looked at pg_config --bindir and /usr/lib/postgresql/*/bin)",
        hint="install them (Debian: apt-get install postgresql-15) or pass --pg-bindir DIR",
    )


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in name.split("."))
    except ValueError:
        return (0,)


# ------------------------------------------------------------------------------------------------ the lab


class Lab:
    """One lab directory. ``progress`` receives one line per step; nothing is printed here."""

    def __init__(self, lab_dir: Path, *, progress: Callable[[str], None] | None = None, clock: Clock = REAL_CLOCK) -> None:
        self.dir = Path(lab_dir)
        self.progress = progress or (lambda _msg: None)
        self.clock = clock

    # -- state
    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    def load_state(self) -> LabState | None:
        try:
            return LabState.from_json(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            raise GardenError(f"lab state file {self.state_path} is damaged: {exc}", hint=f"{self.cli('down --purge')} removes the lab") from exc

    def save_state(self, state: LabState) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(state.to_json())
        os.replace(tmp, self.state_path)

    def require_state(self) -> LabState:
        state = self.load_state()
        if state is None:
            raise PreconditionFailed(f"no lab in {self.dir}", hint=self.cli("up"))
        return state

    # -- status
    def status(self) -> LabStatus:
        state = self.load_state()
        if state is None:
            return LabStatus(lab_dir=str(self.dir), exists=False, base_port=None)
        rows = []
        for rec in state.processes.values():
            pm = postmaster_pid(rec.data_dir) if rec.kind == "patroni" else None
            rows.append(
                ProcessStatus(
                    name=rec.name,
                    kind=rec.kind,
                    pid=rec.pid,
                    running=pid_alive(rec.pid, rec.start_ticks),
                    log=rec.log,
                    postgres_pid=pm,
                    postgres_running=(pm is not None) if rec.kind == "patroni" else None,
                )
            )
        return LabStatus(lab_dir=str(self.dir), exists=True, base_port=state.base_port, processes=tuple(rows))

    # -- preflight
    def _run_as(self, options: LabOptions) -> str | None:
        if options.run_as:
            return options.run_as
        if os.geteuid() == 0:
            return "postgres"
        return None

    def preflight(
        self, options: LabOptions, *, running: set[str] | None = None, state: LabState | None = None
    ) -> tuple[str, str | None, dict[str, str]]:
        """Check binaries, the unprivileged user, that it can reach the lab directory and run the Python that will run
        Patroni, and the ports (but those of ``running``, this lab's processes that are up). Returns (pg_bindir, run_as,
        tools)."""
        tools: dict[str, str] = {}
        missing: list[str] = []
        packages: list[str] = []
        for tool, package in (("etcd", "etcd-server"), ("haproxy", "haproxy")):
            path = shutil.which(tool)
            if path:
                tools[tool] = path
            else:
                missing.append(tool)
                packages.append(package)
        try:
            pg_bindir = find_pg_bindir(options.pg_bindir)
        except PreconditionFailed as exc:
            if not missing:
                raise
            pg_missing: PreconditionFailed | None = exc
        else:
            pg_missing = None
        if missing:  # everything that is missing in one message, with one install line
            message = f"{' and '.join(missing)} not found on PATH"
            if pg_missing is not None:
                message += "; " + pg_missing.message
                packages.append("postgresql")
            raise PreconditionFailed(message, hint=f"install {'them' if len(packages) > 1 else 'it'} (Debian: apt-get install {' '.join(packages)}; ./scripts/setup does it)")
        run_as = self._run_as(options)
        if run_as is not None:
            if os.geteuid() != 0:
                raise PreconditionFailed(f"--run-as {run_as} needs root")
            try:
                pwd.getpwnam(run_as)
            except KeyError as exc:
                raise PreconditionFailed(
                    f"PostgreSQL refuses to run as root and there is no user {run_as!r} to run it as",
                    hint=f"create one (useradd --system --home-dir /var/lib/postgresql {run_as}) or pass --run-as USER",
                ) from exc
        self._check_runnable(run_as)
        ports = Ports(options.base_port).all()
        # The ports of this lab's own running processes are busy on purpose; so is the port of a PostgreSQL whose
        # Patroni died (Patroni takes it over when it starts).
        ours = {what for _, what in ports if _port_owner(what) in (running or set())}
        if state is not None:
            ours |= {f"{n} PostgreSQL" for n, r in state.processes.items() if r.kind == "patroni" and postmaster_pid(r.data_dir)}
        busy = [f"{port} ({what})" for port, what in ports if what not in ours and port_in_use(port)]
        if busy:
            raise PreconditionFailed(
                f"port{'s' if len(busy) > 1 else ''} already in use: {', '.join(busy)}",
                hint=f"stop what uses them ({self.cli('down')}?) or choose another range with --base-port (now {options.base_port})",
            )
        return pg_bindir, run_as, tools

    def _check_runnable(self, run_as: str | None) -> None:
        """As the user (and groups) Patroni will run as: it can enter the lab directory (every existing ancestor
        searchable; a directory under /root, mode 0700, is the usual trap) and import Patroni with this Python."""
        cmd = [patroni_python(), "-c", _RUNNABLE_PROBE, str(self.dir.absolute())]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=30, **self._user_kwargs(run_as), env=self._env(run_as))
        except PermissionError as exc:
            result = subprocess.CompletedProcess(cmd, 126, "", str(exc))
        except OSError as exc:
            result = subprocess.CompletedProcess(cmd, 126, "", str(exc))
        if result.returncode == 0:
            return
        if result.returncode == _DIR_BLOCKED and result.stdout.startswith("blocked "):
            ancestor = result.stdout[len("blocked "):].strip()
            who = run_as or pwd.getpwuid(os.geteuid()).pw_name
            raise PreconditionFailed(
                f"user {who!r}, which runs PostgreSQL, cannot enter {ancestor} (mode {statmode.S_IMODE(os.stat(ancestor).st_mode):04o}), "
                f"so it cannot reach the lab directory {self.dir}",
                hint=f"give --dir a place {who} can reach (the default is {default_lab_dir()}; /tmp works too), "
                f"or chmod o+x {shlex.quote(ancestor)}",
            )
        err = (result.stderr or "").strip().splitlines()
        last = err[-1] if err else f"exit {result.returncode}"
        if "No module named" in last and "patroni" in last:
            raise PreconditionFailed(
                f"Patroni is not installed for {patroni_python()}",
                hint="pip install 'gardenctl[lab]' (brings Patroni 4.x from PyPI)",
            )
        if run_as:
            raise PreconditionFailed(
                f"user {run_as!r} cannot run Patroni with {patroni_python()}: {last}",
                hint=(
                    "PostgreSQL must run unprivileged, so that user needs read access to the Python that runs gardenctl "
                    "(a virtualenv under /root is not readable by others). Install gardenctl into a virtualenv made from a "
                    "system Python outside /root, e.g. `/usr/bin/python3 -m venv /opt/gardenctl && "
                    "/opt/gardenctl/bin/pip install '.[lab]'`, or use ./scripts/demo which does that"
                ),
            )
        raise PreconditionFailed(f"cannot run Patroni with {patroni_python()}: {last}")

    def _user_kwargs(self, run_as: str | None) -> dict[str, Any]:
        if run_as is None or os.geteuid() != 0:
            return {}
        pw = pwd.getpwnam(run_as)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _env(self, run_as: str | None, home: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PATRONI"))}
        if run_as is not None and os.geteuid() == 0:
            env["HOME"] = home or "/tmp"
            env["USER"] = env["LOGNAME"] = run_as
        env["PYTHONUNBUFFERED"] = "1"
        env["LC_ALL"] = env["LANG"] = "C.UTF-8"
        return env

    # -- up
    def up(self, options: LabOptions, *, timeout_seconds: float = 120.0) -> LabUpResult:
        start = self.clock.now()
        moments: list[tuple[str, float]] = []

        def mark(label: str) -> None:
            moments.append((label, round(self.clock.now() - start, 2)))
            self.progress(f"[{moments[-1][1]:5.1f}s] {label}")

        existing = self.load_state()
        running_now: set[str] = set()
        if existing is not None:
            status = self.status()
            if status.any_running and (existing.base_port, existing.synchronous_mode) != (options.base_port, options.synchronous_mode):
                raise PreconditionFailed(
                    f"the lab in {self.dir} is running with base port {existing.base_port} and synchronous_mode "
                    f"{existing.synchronous_mode}; this asks for base port {options.base_port} and synchronous_mode "
                    f"{options.synchronous_mode}",
                    hint=f"{self.cli('down --purge')} first, or give a second lab its own --dir",
                )
            if status.running:
                self.progress(f"lab in {self.dir} is already running")
                spec = self._spec(existing)
                return LabUpResult(str(self.dir), True, 0.0, (), self.context(existing), f"127.0.0.1:{spec.haproxy_rw_port}", f"127.0.0.1:{spec.haproxy_ro_port}")
            if status.any_running:
                running_now = {p.name for p in status.processes if p.running}
                stopped = [p.name for p in status.processes if not p.running]
                self.progress(f"the lab in {self.dir} is partly running: starting {', '.join(stopped)}")
            elif existing.base_port != options.base_port or existing.synchronous_mode != options.synchronous_mode:
                raise PreconditionFailed(
                    f"a stopped lab in {self.dir} was made with base port {existing.base_port} and "
                    f"synchronous_mode {existing.synchronous_mode}",
                    hint=f"{self.cli('down --purge')} to start a new one with other settings, or reuse the same flags",
                )
        pg_bindir, run_as, tools = self.preflight(options, running=running_now, state=existing)
        mark("preflight passed (binaries, user, directory, ports)")
        state = existing or self._create(options, pg_bindir, run_as, tools)
        self.save_state(state)
        spec = self._spec(state)
        started: list[str] = []

        def launch(name: str) -> None:
            before = state.processes[name].pid
            rec = self._start(state, name)
            if rec.pid != before:
                started.append(name)

        try:
            for i in range(NODES):
                launch(f"etcd{i}")
            self.save_state(state)
            self._wait_etcd(state, spec, timeout_seconds)
            mark("etcd: 3 members healthy")
            for i in range(NODES):
                launch(f"node{i}")
            launch("haproxy")
            self.save_state(state)
            self._wait_patroni(state, spec, timeout_seconds)
            mark("patroni: 1 leader running, 2 replicas streaming")
            self._wait_haproxy(state, spec, timeout_seconds)
            mark("haproxy: every server checked, exactly one UP in pg_rw")
            self._wait_routing(state, spec, timeout_seconds)
            mark("routing: read-write port reaches the primary, read-only port a replica")
        except BaseException:
            # Nothing half-started is left behind: stop what this call started (the data and logs stay for a look).
            self._roll_back(state, started)
            self.save_state(state)
            raise
        return LabUpResult(
            lab_dir=str(self.dir),
            already_running=False,
            seconds=round(self.clock.now() - start, 2),
            moments=tuple(moments),
            context=self.context(state),
            rw_address=f"127.0.0.1:{spec.haproxy_rw_port}",
            ro_address=f"127.0.0.1:{spec.haproxy_ro_port}",
        )

    def _roll_back(self, state: LabState, started: list[str]) -> None:
        if not started:
            return
        order = sorted(started, key=lambda n: {"haproxy": 0, "patroni": 1, "etcd": 2}[state.processes[n].kind])
        for name in order:
            try:
                self._stop(state.processes[name], 20)
            except GardenError:
                continue
        self.progress(f"stopped what this start had started ({', '.join(order)}); logs: {self.cli('logs NAME')}")

    def cli(self, args: str) -> str:
        """The gardenctl command for this lab: with --dir unless it is the default lab."""
        cmd = f"gardenctl lab {args}"
        try:
            default = self.dir.resolve() == default_lab_dir().resolve()
        except OSError:
            default = False
        return cmd if default else f"{cmd} --dir {shlex.quote(str(self.dir))}"

    def _create(self, options: LabOptions, pg_bindir: str, run_as: str | None, tools: dict[str, str]) -> LabState:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        secrets_dir = self.dir / "secrets"
        secrets_dir.mkdir(exist_ok=True)
        os.chmod(secrets_dir, 0o700)
        creds = {
            "superuser_password": secrets.token_urlsafe(18),
            "replication_password": secrets.token_urlsafe(18),
            "rewind_password": secrets.token_urlsafe(18),
            "rest_password": secrets.token_urlsafe(18),
        }
        for key, value in creds.items():
            path = secrets_dir / key
            path.write_text(value + "\n")
            os.chmod(path, 0o600)
        state = LabState(
            lab_dir=str(self.dir),
            base_port=options.base_port,
            scope=options.scope,
            synchronous_mode=options.synchronous_mode,
            run_as=run_as,
            python=patroni_python(),
            pg_bindir=pg_bindir,
            created_at=time.time(),
        )
        spec = self._spec(state)
        ports = Ports(options.base_port)
        for i, node in enumerate(spec.nodes):
            edir = self.dir / "etcd" / f"etcd{i}"
            edir.mkdir(parents=True, exist_ok=True)
            state.processes[f"etcd{i}"] = ProcRecord(
                name=f"etcd{i}",
                kind="etcd",
                cmd=[tools["etcd"], *etcd_args(spec, node, str(edir / "data"))],
                log=str(edir / "etcd.log"),
                cwd=str(edir),
            )
            ndir = Path(node.config_dir or "")
            ndir.mkdir(parents=True, exist_ok=True)
            cfg_path = ndir / "patroni.yml"
            cfg_path.write_text(yamltext.dump(patroni_config(spec, node)))
            os.chmod(cfg_path, 0o600)
            state.processes[node.name] = ProcRecord(
                name=node.name,
                kind="patroni",
                cmd=[patroni_python(), "-m", "patroni", str(cfg_path)],
                log=str(ndir / "patroni.log"),
                cwd=str(ndir),
                user=run_as,
                data_dir=node.data_dir,
            )
            if run_as is not None and os.geteuid() == 0:
                pw = pwd.getpwnam(run_as)
                for path in (ndir, cfg_path):
                    os.chown(path, pw.pw_uid, pw.pw_gid)
            os.chmod(ndir, 0o700)
        hdir = self.dir / "haproxy"
        hdir.mkdir(exist_ok=True)
        (hdir / "haproxy.cfg").write_text(haproxy_config(spec))
        state.processes["haproxy"] = ProcRecord(
            name="haproxy",
            kind="haproxy",
            cmd=[tools["haproxy"], "-f", str(hdir / "haproxy.cfg"), "-db"],
            log=str(hdir / "haproxy.log"),
            cwd=str(hdir),
        )
        del ports
        return state

    def _secret(self, name: str) -> str:
        return (self.dir / "secrets" / name).read_text().strip()

    def _spec(self, state: LabState) -> StackSpec:
        ports = Ports(state.base_port)
        nodes = tuple(
            StackNode(
                name=f"node{i}",
                host="127.0.0.1",
                pg_port=ports.pg(i),
                rest_port=ports.rest(i),
                etcd_client_port=ports.etcd_client(i),
                etcd_peer_port=ports.etcd_peer(i),
                etcd_name=f"etcd{i}",
                data_dir=str(self.dir / "patroni" / f"node{i}" / "data"),
                config_dir=str(self.dir / "patroni" / f"node{i}"),
                unix_socket_dir=str(self.dir / "patroni" / f"node{i}"),
            )
            for i in range(NODES)
        )
        creds = Credentials(
            superuser_password=self._secret("superuser_password"),
            replication_password=self._secret("replication_password"),
            rewind_password=self._secret("rewind_password"),
            rest_password=self._secret("rest_password"),
        )
        return StackSpec(
            scope=state.scope,
            nodes=nodes,
            credentials=creds,
            timing=Timing(),
            bin_dir=state.pg_bindir,
            synchronous_mode=state.synchronous_mode,
            haproxy_rw_port=ports.rw,
            haproxy_ro_port=ports.ro,
            haproxy_stats_port=ports.stats,
            haproxy_stats_socket=str(self.dir / "haproxy" / "haproxy.sock"),
            etcd_cluster_token=f"{state.scope}-{int(state.created_at)}",
        )

    def context(self, state: LabState) -> dict[str, Any]:
        """The config-file entry for this lab (written by `gardenctl lab up`)."""
        ports = Ports(state.base_port)
        return {
            "scope": state.scope,
            "lab-dir": str(self.dir),
            "patroni": {
                "endpoints": [f"http://127.0.0.1:{ports.rest(i)}" for i in range(NODES)],
                "username": "patroni",
                "password-file": str(self.dir / "secrets" / "rest_password"),
            },
            "etcd": {"endpoints": [f"http://127.0.0.1:{ports.etcd_client(i)}" for i in range(NODES)]},
            "haproxy": {
                "stats-socket": str(self.dir / "haproxy" / "haproxy.sock"),
                "rw-backend": "pg_rw",
                "ro-backend": "pg_ro",
                "rw-address": f"127.0.0.1:{ports.rw}",
                "ro-address": f"127.0.0.1:{ports.ro}",
            },
            "postgres": {
                "user": "postgres",
                "dbname": "postgres",
                "password-file": str(self.dir / "secrets" / "superuser_password"),
            },
        }

    # -- processes
    def _start(self, state: LabState, name: str) -> ProcRecord:
        rec = state.processes[name]
        if pid_alive(rec.pid, rec.start_ticks):
            return rec
        log = open(rec.log, "ab")  # noqa: SIM115 - handed to the child
        if rec.user and os.geteuid() == 0:
            pw = pwd.getpwnam(rec.user)
            os.chown(rec.log, pw.pw_uid, pw.pw_gid)
        try:
            proc = subprocess.Popen(
                rec.cmd,
                cwd=rec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self._env(rec.user, home=rec.cwd),
                **self._user_kwargs(rec.user),
            )
        except OSError as exc:
            raise OperationFailed(f"cannot start {name}: {exc.strerror or exc}") from exc
        finally:
            log.close()
        rec.pid = proc.pid
        stat = _proc_stat(proc.pid)
        rec.start_ticks = stat[1] if stat else None
        self.progress(f"started {name} (pid {proc.pid})")
        return rec

    def start(self, name: str) -> ProcRecord:
        """(Re)start one lab process by name: etcd0..2, node0..2, haproxy."""
        state = self.require_state()
        if name not in state.processes:
            raise UsageError(f"no lab process named {name!r} (known: {', '.join(sorted(state.processes))})")
        rec = self._start(state, name)
        self.save_state(state)
        return rec

    def signal(self, name: str, sig: int, *, postgres_too: bool = False) -> list[int]:
        """Send ``sig`` to one lab process (and, for a Patroni node, optionally to its postmaster). Returns the PIDs hit."""
        state = self.require_state()
        rec = state.processes.get(name)
        if rec is None:
            raise UsageError(f"no lab process named {name!r} (known: {', '.join(sorted(state.processes))})")
        hit = []
        pm = postmaster_pid(rec.data_dir) if postgres_too else None
        if pid_alive(rec.pid, rec.start_ticks):
            os.kill(rec.pid, sig)  # type: ignore[arg-type]
            hit.append(rec.pid)
        if pm:
            try:
                os.kill(pm, sig)
                hit.append(pm)
            except ProcessLookupError:
                pass
        return hit  # type: ignore[return-value]

    def stop_process(self, name: str, *, timeout_seconds: float = 30.0) -> None:
        state = self.require_state()
        self._stop(state.processes[name], timeout_seconds)

    def _stop(self, rec: ProcRecord, timeout_seconds: float) -> None:
        if pid_alive(rec.pid, rec.start_ticks):
            try:
                os.kill(rec.pid, signal.SIGTERM)  # type: ignore[arg-type]
            except ProcessLookupError:
                pass
            deadline = self.clock.now() + timeout_seconds
            while pid_alive(rec.pid, rec.start_ticks) and self.clock.now() < deadline:
                self.clock.sleep(0.1)
            if pid_alive(rec.pid, rec.start_ticks):
                os.kill(rec.pid, signal.SIGKILL)  # type: ignore[arg-type]
                wait_until(lambda: not pid_alive(rec.pid, rec.start_ticks), timeout=10, interval=0.1, what=f"{rec.name} to die", clock=self.clock)
        if rec.kind == "patroni":
            # A killed Patroni leaves its postmaster behind; stop it too (fast shutdown, then immediate).
            pm = postmaster_pid(rec.data_dir)
            for sig, wait_s in ((signal.SIGINT, 15.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
                if not pm or not _proc_alive(pm):
                    break
                try:
                    os.kill(pm, sig)
                except ProcessLookupError:
                    break
                deadline = self.clock.now() + wait_s
                while _proc_alive(pm) and self.clock.now() < deadline:
                    self.clock.sleep(0.1)

    # -- down
    def down(self, *, purge: bool = False) -> list[str]:
        """Stop exactly what the lab started, by PID: HAProxy, the Patroni nodes (in parallel), then etcd one at a time."""
        state = self.load_state()
        stopped: list[str] = []
        if state is not None:
            order = [r for r in state.processes.values() if r.kind == "haproxy"]
            order += [r for r in state.processes.values() if r.kind == "patroni"]
            def said(rec: ProcRecord) -> None:
                self.progress(f"stopped {rec.name}" if rec.name in stopped else f"{rec.name} was not running")

            for rec in order[:1]:
                if pid_alive(rec.pid, rec.start_ticks):
                    stopped.append(rec.name)
                self._stop(rec, 10)
                said(rec)
            nodes = order[1:]
            for rec in nodes:
                if pid_alive(rec.pid, rec.start_ticks):
                    stopped.append(rec.name)
                    os.kill(rec.pid, signal.SIGTERM)  # type: ignore[arg-type]
            for rec in nodes:
                self._stop(rec, 40)
                said(rec)
            for rec in (r for r in state.processes.values() if r.kind == "etcd"):
                if pid_alive(rec.pid, rec.start_ticks):
                    stopped.append(rec.name)
                self._stop(rec, 10)
                said(rec)
            leftovers = [r.name for r in state.processes.values() if pid_alive(r.pid, r.start_ticks)]
            leftovers += [f"postgres of {r.name}" for r in state.processes.values() if r.kind == "patroni" and postmaster_pid(r.data_dir)]
            if leftovers:
                raise OperationFailed(f"could not stop: {', '.join(leftovers)}")
        if purge and self.dir.exists():
            if state is None and not (self.dir / STATE_FILE).exists() and any(self.dir.iterdir()):
                raise PreconditionFailed(f"{self.dir} does not look like a lab directory (no {STATE_FILE}); not deleting it")
            shutil.rmtree(self.dir)
            self.progress(f"removed {self.dir}")
        return stopped

    # -- readiness
    def _wait_etcd(self, state: LabState, spec: StackSpec, timeout: float) -> None:
        from gardenctl.backends.etcd import EtcdClient

        client = EtcdClient([n.etcd_client_url for n in spec.nodes])

        def check() -> tuple[bool, str]:
            self._assert_running(state, "etcd")
            healthy = [n.etcd_member for n in spec.nodes if client.is_healthy(n.etcd_client_url)]
            return len(healthy) == NODES, f"healthy etcd members: {', '.join(healthy) or 'none'}"

        try:
            wait_until(check, timeout=timeout, interval=0.2, what="3 healthy etcd members", clock=self.clock)
        finally:
            client.close()

    def _wait_patroni(self, state: LabState, spec: StackSpec, timeout: float) -> None:
        from gardenctl.backends.patroni import PatroniClient
        from gardenctl.ops.member_state import own_state_problems

        client = PatroniClient([f"http://127.0.0.1:{n.rest_port}" for n in spec.nodes])

        def check() -> tuple[bool, str]:
            self._assert_running(state, "patroni")
            try:
                cluster = client.get_cluster(with_config=False)
            except GardenError as exc:
                return False, exc.message
            leaders = [m for m in cluster.members if m.is_leader and m.state == "running"]
            streaming = [m for m in cluster.members if m.is_streaming]
            seen = ", ".join(f"{m.name}={m.role}/{m.state}" for m in cluster.members) or "no members yet"
            if len(leaders) != 1 or len(streaming) != NODES - 1:
                return False, seen
            if len({m.timeline for m in cluster.members}) != 1:  # a member key not yet rewritten after a promotion
                return False, seen + " (timelines differ)"
            # The DCS keeps a restarted node's old "streaming" until its key expires: ask every node itself.
            own = own_state_problems(client, cluster, require_streaming=True)
            return not own, "; ".join(own) or seen

        try:
            wait_until(check, timeout=timeout, interval=0.3, what="1 leader and 2 streaming replicas", clock=self.clock)
        finally:
            client.close()

    def _wait_haproxy(self, state: LabState, spec: StackSpec, timeout: float) -> None:
        from gardenctl.backends.haproxy import HAProxyClient

        client = HAProxyClient(stats_socket=spec.haproxy_stats_socket)

        def check() -> tuple[bool, str]:
            self._assert_running(state, "haproxy")
            try:
                hs = client.get_state()
            except GardenError as exc:
                return False, exc.message
            rw = hs.servers_of("pg_rw")
            checked = all(s.check_status and s.check_status not in ("INI",) and not s.check_in_progress for s in hs.servers)
            up = [s.name for s in rw if s.is_up]
            return checked and len(up) == 1 and len(rw) == NODES, f"pg_rw UP: {', '.join(up) or 'none'}"

        wait_until(check, timeout=timeout, interval=0.2, what="HAProxy to route pg_rw to exactly one server", clock=self.clock)

    def _wait_routing(self, state: LabState, spec: StackSpec, timeout: float) -> None:
        from gardenctl.backends.postgres import Endpoint, where_am_i

        password = spec.credentials.superuser_password

        def check() -> tuple[bool, str]:
            try:
                rw = where_am_i(Endpoint("127.0.0.1", spec.haproxy_rw_port, password=password, connect_timeout_seconds=2))
                ro = where_am_i(Endpoint("127.0.0.1", spec.haproxy_ro_port, password=password, connect_timeout_seconds=2))
            except GardenError as exc:
                return False, exc.message
            return (not rw.in_recovery and ro.in_recovery), f"rw in_recovery={rw.in_recovery}, ro in_recovery={ro.in_recovery}"

        wait_until(check, timeout=timeout, interval=0.3, what="read-write port to reach a primary and read-only a replica", clock=self.clock)

    def _assert_running(self, state: LabState, kind: str) -> None:
        for rec in state.processes.values():
            if rec.kind == kind and rec.pid and not pid_alive(rec.pid, rec.start_ticks):
                tail = _tail(rec.log, 5)
                raise OperationFailed(f"{rec.name} exited during start-up; last lines of {rec.log}:", details=tail)

    # -- logs
    def log_path(self, name: str) -> Path:
        state = self.require_state()
        if name not in state.processes:
            raise UsageError(f"no lab process named {name!r} (known: {', '.join(sorted(state.processes))})")
        return Path(state.processes[name].log)

    def spec(self) -> StackSpec:
        return self._spec(self.require_state())


def _proc_alive(pid: int) -> bool:
    _reap(pid)
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _tail(path: str, lines: int) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(size - 8192, 0))
            data = fh.read().decode(errors="replace")
    except OSError:
        return []
    return data.splitlines()[-lines:]
