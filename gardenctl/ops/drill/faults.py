"""One interface to break and repair the stack: `FaultTarget`.

Roles: ``patroni`` and ``postgres`` live on Patroni nodes (named by their Patroni member name), ``etcd`` on etcd
members (named by their etcd member name), ``haproxy`` on the HAProxy hosts. Actions: ``kill`` (SIGKILL, as in a
crash), ``stop`` (graceful), ``start``.

Two implementations:

- `LabFaultTarget`: the local lab, by PID (``gardenctl.lab.Lab``). ``kill`` of patroni+postgres SIGKILLs Patroni, the
  postmaster and every child of the postmaster in one sweep, as a power loss would.
- `SshFaultTarget`: real hosts over SSH, through the systemd units named in the context's ``hosts:`` section.
  ``kill`` is ``systemctl kill --signal=SIGKILL`` followed by ``systemctl stop`` so that a unit with ``Restart=``
  stays down until the drill's recover step (with ``KillMode=control-group``, the stop after a Patroni-only kill also
  stops PostgreSQL; the shipped playbooks kill both together). PostgreSQL run by Patroni has no unit of its own: it
  is signalled by the PID in ``postmaster.pid`` and Patroni starts it again.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from gardenctl.errors import GardenError, OperationFailed
from gardenctl.wait import REAL_CLOCK, Clock, wait_until

PATRONI_SIDE = ("patroni", "postgres")


def role_kind(role: str) -> str:
    """patroni and postgres share a node; etcd and haproxy are their own."""
    return "patroni" if role in PATRONI_SIDE else role


@dataclass(frozen=True, slots=True)
class FaultRecord:
    action: str
    roles: tuple[str, ...]
    node: str
    detail: str


class FaultTarget(Protocol):
    kind: str

    def describe(self) -> str:
        """One line for the plan: where faults go and how."""

    def nodes(self, role: str) -> tuple[str, ...]:
        """Names of the nodes carrying ``role`` (Patroni member names, etcd member names, HAProxy host names)."""

    def apply(self, action: str, roles: tuple[str, ...], node: str) -> FaultRecord:
        """Do ``action`` (kill | stop | start) to ``roles`` on ``node``. Raises a GardenError when it cannot."""

    def is_running(self, role: str, node: str) -> bool | None:
        """Whether ``role`` runs on ``node`` (None: cannot tell)."""

    def problems(self) -> list[str]:
        """Why faults could not be injected or repaired right now (preflight); empty when all is well."""


@dataclass
class Ledger:
    """What the drill broke and has not repaired yet, so recovery can start exactly that."""

    down: list[tuple[str, str]] = field(default_factory=list)  # (role kind, node) in the order they went down

    def note(self, record: FaultRecord) -> None:
        kind = role_kind(record.roles[0])
        key = (kind, record.node)
        if record.action in ("kill", "stop"):
            if key not in self.down:
                self.down.append(key)
        elif record.action == "start" and key in self.down:
            self.down.remove(key)

    def restore_order(self) -> list[tuple[str, str]]:
        order = {"etcd": 0, "patroni": 1, "haproxy": 2}
        return sorted(self.down, key=lambda k: order.get(k[0], 9))


def recover(target: FaultTarget, ledger: Ledger, progress: Callable[[str], None] = lambda _m: None) -> list[str]:
    """Start everything in the ledger (etcd first, then Patroni, then HAProxy). Returns the problems met."""
    problems = []
    for kind, node in ledger.restore_order():
        try:
            record = target.apply("start", ("patroni",) if kind == "patroni" else (kind,), node)
            ledger.note(record)
            progress(f"recover: {record.detail}")
        except GardenError as exc:
            problems.append(f"could not start {kind} on {node}: {exc.message}")
    return problems


# ------------------------------------------------------------------------------------------------ the lab


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(entry.name))
    return out


class LabFaultTarget:
    """Faults on the local lab by PID."""

    kind = "lab"

    def __init__(self, lab: object, *, clock: Clock = REAL_CLOCK, stop_timeout_seconds: float = 60.0) -> None:
        self.lab = lab
        self.clock = clock
        self.stop_timeout_seconds = stop_timeout_seconds

    def describe(self) -> str:
        return f"the local lab in {self.lab.dir} (signals by PID)"  # type: ignore[attr-defined]

    def _state(self):  # noqa: ANN202
        return self.lab.require_state()  # type: ignore[attr-defined]

    def nodes(self, role: str) -> tuple[str, ...]:
        kind = role_kind(role)
        return tuple(sorted(name for name, rec in self._state().processes.items() if rec.kind == kind))

    def problems(self) -> list[str]:
        try:
            state = self._state()
        except GardenError as exc:
            return [exc.message]
        if os.geteuid() != 0 and any(rec.user for rec in state.processes.values()):
            return ["the lab's Patroni runs as another user: signalling it needs root"]
        return []

    def _record(self, node: str):  # noqa: ANN202
        rec = self._state().processes.get(node)
        if rec is None:
            known = ", ".join(sorted(self._state().processes))
            raise GardenError(f"the lab has no process {node!r} (known: {known})")
        return rec

    def is_running(self, role: str, node: str) -> bool | None:
        from gardenctl.lab import pid_alive, postmaster_pid

        rec = self._record(node)
        if role == "postgres":
            return postmaster_pid(rec.data_dir) is not None
        return pid_alive(rec.pid, rec.start_ticks)

    def apply(self, action: str, roles: tuple[str, ...], node: str) -> FaultRecord:
        from gardenctl.lab import pid_alive, postmaster_pid

        rec = self._record(node)
        kind = role_kind(roles[0])
        if rec.kind != kind:
            raise GardenError(f"lab process {node!r} is {rec.kind}, not {kind}")
        if action == "start":
            if roles == ("postgres",) and pid_alive(rec.pid, rec.start_ticks):
                return FaultRecord(action, roles, node, f"PostgreSQL on {node}: left to Patroni, which restarts it")
            new = self.lab.start(node)  # type: ignore[attr-defined]
            return FaultRecord(action, roles, node, f"started {node} (pid {new.pid})")
        main_pid = rec.pid if pid_alive(rec.pid, rec.start_ticks) else None
        pm = postmaster_pid(rec.data_dir) if kind == "patroni" else None
        if action == "kill":
            targets: list[tuple[str, int]] = []
            if "postgres" in roles and pm:
                targets += [("postgres child", c) for c in _children(pm)] + [("postmaster", pm)]
            if kind != "patroni" or "patroni" in roles:
                if main_pid:
                    targets.insert(0, (kind, main_pid))
            if not targets:
                return FaultRecord(action, roles, node, f"nothing to kill: {'+'.join(roles)} on {node} already down")
            for _what, pid in targets:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            main = ", ".join(f"{w} {p}" for w, p in targets if w != "postgres child")
            children = sum(1 for w, _ in targets if w == "postgres child")
            extra = f" and {children} postgres children" if children else ""
            return FaultRecord(action, roles, node, f"SIGKILL {main}{extra} on {node}")
        # stop: graceful, then wait for the process to be gone
        if "patroni" in roles or kind != "patroni":
            if not main_pid:
                return FaultRecord(action, roles, node, f"nothing to stop: {node} already down")
            os.kill(main_pid, signal.SIGTERM)
            start = self.clock.now()
            wait_until(
                lambda: not pid_alive(rec.pid, rec.start_ticks),
                timeout=self.stop_timeout_seconds,
                interval=0.1,
                what=f"{node} to stop after SIGTERM",
                clock=self.clock,
            )
            return FaultRecord(action, roles, node, f"SIGTERM {kind} {main_pid} on {node}; exited after {self.clock.now() - start:.1f}s")
        if not pm:
            return FaultRecord(action, roles, node, f"nothing to stop: PostgreSQL on {node} already down")
        os.kill(pm, signal.SIGINT)  # fast shutdown
        return FaultRecord(action, roles, node, f"SIGINT (fast shutdown) postmaster {pm} on {node}")


# ------------------------------------------------------------------------------------------------ SSH + systemd


class SshFaultTarget:
    """Faults on real hosts: systemctl over SSH, as named in the context's ``hosts:`` section."""

    kind = "ssh"

    def __init__(self, hosts: object, *, client_factory: Callable[[object], object] | None = None) -> None:
        self.hosts = hosts
        self._control_dir: str | None = None
        self._factory = client_factory or self._shared_client
        self._clients: dict[str, object] = {}

    def _shared_client(self, target: object) -> object:
        """One multiplexed SSH connection per host for the whole drill: the preflight opens it, faults reuse it."""
        import tempfile

        from gardenctl.backends.ssh import SshClient

        if self._control_dir is None:
            self._control_dir = tempfile.mkdtemp(prefix="gardenctl-ssh-")
        return SshClient(target, control_dir=self._control_dir)  # type: ignore[arg-type]

    def close(self) -> None:
        import shutil

        for client in self._clients.values():
            close = getattr(client, "close", None)
            if close is not None:
                close()
        self._clients.clear()
        if self._control_dir:
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None

    def describe(self) -> str:
        names = ", ".join(n.name for n in self.hosts.nodes)  # type: ignore[attr-defined]
        return f"hosts over SSH ({names}) through systemd units"

    def _client(self, node_name: str):  # noqa: ANN202
        node = self.hosts.node(node_name)  # type: ignore[attr-defined]
        if node is None:
            raise GardenError(f"no node {node_name!r} in the hosts: section")
        if node_name not in self._clients:
            self._clients[node_name] = self._factory(node.ssh)
        return self._clients[node_name]

    def _host_of(self, kind: str, node: str):  # noqa: ANN202
        if kind == "etcd":
            host = self.hosts.by_etcd_name(node)  # type: ignore[attr-defined]
            if host is None:
                raise GardenError(f"no node runs etcd member {node!r} (hosts: section, etcd-name)")
            return host
        host = self.hosts.node(node)  # type: ignore[attr-defined]
        if host is None or kind not in host.services:
            raise GardenError(f"no node {node!r} with service {kind} in the hosts: section")
        return host

    def nodes(self, role: str) -> tuple[str, ...]:
        kind = role_kind(role)
        hosts = self.hosts.with_service(kind)  # type: ignore[attr-defined]
        return tuple(h.etcd_name if kind == "etcd" else h.name for h in hosts)

    def command(self, action: str, roles: tuple[str, ...], node: str) -> tuple[str, str]:
        """(host name, shell command) for one fault. Pure, so the exact commands are testable."""
        kind = role_kind(roles[0])
        host = self._host_of(kind, node)
        units = [host.unit("patroni")] if kind == "patroni" else [host.unit(kind)]
        pg_unit = host.unit("postgresql")
        pidfile = f"{host.postgres_data_dir.rstrip('/')}/postmaster.pid"
        signal_pg = 'kill -s {sig} "$(head -n 1 ' + _q(pidfile) + ')"'
        if kind == "patroni":
            if roles == ("postgres",):
                if pg_unit:
                    units = [pg_unit]
                elif action == "kill":
                    return host.name, signal_pg.format(sig="KILL")
                elif action == "stop":
                    return host.name, signal_pg.format(sig="INT")
                else:
                    return host.name, f"systemctl start {_q(host.unit('patroni'))}"
            elif "postgres" in roles and pg_unit:
                units.append(pg_unit)
        joined = " ".join(_q(u) for u in units)
        if action == "start":
            return host.name, f"systemctl start {joined}"
        if action == "stop":
            return host.name, f"systemctl stop {joined}"
        who = "main" if kind == "patroni" and "postgres" not in roles else "all"
        return host.name, f"systemctl kill --kill-who={who} --signal=SIGKILL {joined} && systemctl stop {joined}"

    def apply(self, action: str, roles: tuple[str, ...], node: str) -> FaultRecord:
        host_name, cmd = self.command(action, roles, node)
        self._client(host_name).run(cmd)  # type: ignore[attr-defined]
        return FaultRecord(action, roles, node, f"{host_name}: {cmd}")

    def is_running(self, role: str, node: str) -> bool | None:
        kind = role_kind(role)
        host = self._host_of(kind, node)
        unit = host.unit("postgresql") if role == "postgres" and host.unit("postgresql") else host.unit("patroni" if kind == "patroni" else kind)
        try:
            result = self._client(host.name).run(["systemctl", "is-active", "--quiet", unit], check=False)  # type: ignore[attr-defined]
        except GardenError:
            return None
        return result.exit_status == 0

    def problems(self) -> list[str]:
        out = []
        for host in self.hosts.nodes:  # type: ignore[attr-defined]
            try:
                self._client(host.name).check_connection()  # type: ignore[attr-defined]
            except GardenError as exc:
                out.append(exc.message)
        return out


def _q(text: str | None) -> str:
    import shlex

    if not text:
        raise OperationFailed("a systemd unit name is missing in the hosts: section")
    return shlex.quote(text)
