"""What runs while a drill breaks things: SQL probes through HAProxy and watchers of Patroni and HAProxy.

- `SqlProbe` (write): numbered INSERTs at a fixed rate through the read-write port, each answered with the server's
  own address and timeline (``RETURNING inet_server_addr(), inet_server_port()`` and the timeline from the current
  WAL file name). A few worker connections take the attempts in turn, so one hung connection does not stop the
  probe; every attempt is bounded by ``statement_timeout``, new connections by ``connect_timeout``, and a watchdog
  closes the socket of an attempt that still has no answer two seconds after its statement timeout.
- `SqlProbe` (read): the same on the read-only port with a SELECT.
- `PatroniWatcher`: ``GET /cluster`` every 0.2 s and every member's own ``GET /patroni`` every 0.15 s.
- `HAProxyWatcher`: the read-write and read-only backends' UP servers every 0.2 s.

All record what they saw with times from one monotonic clock (seconds since the drill started); nothing is
judged here (see measure.py).
"""

from __future__ import annotations

import math
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from gardenctl.errors import GardenError
from gardenctl.ops.drill.measure import Attempt, RoleSample

TABLE = "gardenctl_drill.probe"
SYNC_CANCEL = "canceling wait for synchronous replication"
WATCHDOG_GRACE_SECONDS = 2.0
IDLE_SECONDS = 1.0  # an extra worker idle this long closes its connection and ends

INSERT_SQL = (
    f"INSERT INTO {TABLE} (run_id, id) VALUES (%s, %s) "
    "RETURNING host(inet_server_addr()), inet_server_port(), "
    "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
)
READ_SQL = "SELECT host(inet_server_addr()), inet_server_port(), pg_is_in_recovery()"


def short_error(exc: BaseException) -> str:
    """One informative line: libpq's "connection to server at ... failed: <reason>" keeps just the reason."""
    cause = exc.__cause__ if isinstance(exc, GardenError) and exc.__cause__ is not None else exc
    text = str(cause).strip() or type(cause).__name__
    first = text.splitlines()[0].strip()
    if "failed: " in first:
        first = first.split("failed: ", 1)[1]
    if first.startswith("postgres: "):
        first = first[len("postgres: ") :]
    return first[:160]


def ensure_probe_table(endpoint: Any) -> None:
    """Create the probe table (idempotent) through the read-write endpoint."""
    from gardenctl.backends.postgres import connect

    import psycopg

    conn = connect(endpoint)
    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS gardenctl_drill")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (run_id text NOT NULL, id bigint NOT NULL, "
            "at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run_id, id))"
        )
    except psycopg.Error as exc:
        from gardenctl.errors import BackendError

        raise BackendError(f"postgres: {endpoint.where}: cannot create the drill's probe table: {short_error(exc)}") from exc
    finally:
        conn.close()


def read_probe_ids(endpoint: Any, run_id: str) -> set[int]:
    """Every probe id of ``run_id`` present on ``endpoint`` (the new primary, reached directly)."""
    from gardenctl.backends.postgres import connect

    import psycopg

    conn = connect(endpoint, statement_timeout_ms=30000)
    try:
        rows = conn.execute(f"SELECT id FROM {TABLE} WHERE run_id = %s", (run_id,)).fetchall()
    except psycopg.Error as exc:
        from gardenctl.errors import BackendError

        raise BackendError(f"postgres: {endpoint.where}: cannot read the probe rows: {short_error(exc)}") from exc
    finally:
        conn.close()
    return {int(r[0]) for r in rows}


def delete_probe_rows(endpoint: Any, run_id: str) -> None:
    from gardenctl.backends.postgres import connect

    import psycopg

    conn = connect(endpoint, statement_timeout_ms=30000)
    try:
        conn.execute(f"DELETE FROM {TABLE} WHERE run_id = %s", (run_id,))
    except psycopg.Error:
        pass
    finally:
        conn.close()


class _Worker:
    def __init__(self, probe: "SqlProbe", index: int) -> None:
        self.probe = probe
        self.index = index
        self.conn: Any = None
        self.busy_since: float | None = None
        self.abandoned = False
        self.sync_cancelled = False
        self.thread = threading.Thread(target=self.loop, name=f"drill-{probe.mode}-{index}", daemon=True)

    def loop(self) -> None:
        p = self.probe
        while True:
            try:
                job = p.jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                if p.retire(self):
                    break
                continue
            if job is None:
                break
            self.run_one(job)
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is discarded anyway
                pass
            self.conn = None

    def _on_notice(self, diag: Any) -> None:
        if SYNC_CANCEL in (getattr(diag, "message_primary", "") or ""):
            self.sync_cancelled = True

    def run_one(self, attempt_id: int) -> None:
        import psycopg

        from gardenctl.backends.postgres import connect

        p = self.probe
        started = p.now()
        self.busy_since = started
        self.abandoned = False
        self.sync_cancelled = False
        try:
            if self.conn is None:
                self.conn = connect(p.endpoint, statement_timeout_ms=int(p.attempt_timeout_seconds * 1000))
                self.conn.add_notice_handler(self._on_notice)
            if p.mode == "write":
                row = self.conn.execute(INSERT_SQL, (p.run_id, attempt_id)).fetchone()
                if self.sync_cancelled:
                    raise _Unconfirmed()
                result = Attempt(attempt_id, started, p.now(), True, server=f"{row[0]}:{row[1]}", timeline=row[2], in_recovery=False)
            else:
                row = self.conn.execute(READ_SQL).fetchone()
                result = Attempt(attempt_id, started, p.now(), True, server=f"{row[0]}:{row[1]}", in_recovery=bool(row[2]))
        except _Unconfirmed:
            result = Attempt(attempt_id, started, p.now(), False, error="commit not confirmed by the synchronous standby (committed locally only)")
            self.close()
        except (psycopg.Error, GardenError, OSError) as exc:
            error = short_error(exc)
            if self.abandoned:
                error = f"no answer within {p.attempt_timeout_seconds + WATCHDOG_GRACE_SECONDS:g}s (closed by the watchdog)"
            result = Attempt(attempt_id, started, p.now(), False, error=error)
            self.close()
        finally:
            self.busy_since = None
        p.record(result)

    def kick(self) -> None:
        """Watchdog: shut the socket of a hung attempt so the blocked call returns with an error."""
        conn = self.conn
        if conn is None:
            return
        self.abandoned = True
        try:
            fd = conn.pgconn.socket
            sock = socket.socket(fileno=os.dup(fd))
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            pass


class _Unconfirmed(Exception):
    pass


class SqlProbe:
    """Attempts at a fixed ``rate`` through ``endpoint``; ``mode`` is write (INSERT) or read (SELECT)."""

    def __init__(
        self,
        endpoint: Any,
        *,
        mode: str,
        run_id: str,
        rate: float,
        now: Callable[[], float],
        workers: int = 2,
        max_workers: int = 48,
        attempt_timeout_seconds: float = 1.0,
    ) -> None:
        # libpq's minimum connect_timeout is 2 s; a probe attempt should not wait longer than it must.
        self.endpoint = replace(endpoint, connect_timeout_seconds=max(2, math.ceil(attempt_timeout_seconds)))
        self.mode = mode
        self.run_id = run_id
        self.rate = rate
        self.now = now
        self.attempt_timeout_seconds = attempt_timeout_seconds
        self.jobs: queue.Queue[int | None] = queue.Queue()
        self.min_workers = workers
        # New connections can hang for seconds while HAProxy has no server UP. Extra workers (each with its own
        # connection) keep attempts starting on schedule meanwhile, so the probe sees the moment writes work again
        # instead of waiting for its own hung attempts; they retire once idle.
        self.max_workers = max(workers, min(max_workers, int(rate * (attempt_timeout_seconds + WATCHDOG_GRACE_SECONDS)) + 2))
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._next_worker = 0
        self.peak_workers = 0
        self.attempts: list[Attempt] = []
        self.skipped: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._scheduler = threading.Thread(target=self._schedule, name=f"drill-{mode}-scheduler", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name=f"drill-{mode}-watchdog", daemon=True)
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    def record(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    def start(self) -> None:
        self.started_at = self.now()
        for _ in range(self.min_workers):
            self._spawn()
        self._scheduler.start()
        self._watchdog.start()

    def _spawn(self) -> None:
        with self._lock:
            worker = _Worker(self, self._next_worker)
            self._next_worker += 1
            self._workers.append(worker)
            self.peak_workers = max(self.peak_workers, len(self._workers))
        worker.thread.start()

    def retire(self, worker: "_Worker") -> bool:
        """An idle worker above the minimum leaves (its connection is closed by the caller)."""
        with self._lock:
            if len(self._workers) > self.min_workers and worker in self._workers:
                self._workers.remove(worker)
                return True
        return False

    def workers(self) -> list["_Worker"]:
        with self._lock:
            return list(self._workers)

    def _busy(self) -> int:
        return sum(1 for w in self.workers() if w.busy_since is not None) + self.jobs.qsize()

    def _schedule(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        attempt_id = 0
        while not self._stop.is_set():
            attempt_id += 1
            busy, size = self._busy(), len(self.workers())
            if busy >= size and size < self.max_workers:
                self._spawn()
                size += 1
            if busy >= size:
                self.skipped.append((attempt_id, self.now()))
            else:
                self.jobs.put(attempt_id)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < -interval:  # fell behind (a paused process): do not burst to catch up
                next_at = time.monotonic()
                delay = 0
            if delay > 0:
                self._stop.wait(delay)

    def _watch(self) -> None:
        limit = self.attempt_timeout_seconds + WATCHDOG_GRACE_SECONDS
        while not self._stop.is_set():
            now = self.now()
            for w in self.workers():
                since = w.busy_since
                if since is not None and now - since > limit and not w.abandoned:
                    w.kick()
            self._stop.wait(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._scheduler.join(timeout)
        # Let queued attempts finish: they were sent on schedule and their answers count.
        with self._lock:
            workers = list(self._workers)
            self.min_workers = len(workers)  # nobody retires now: each takes its None
        for _ in workers:
            self.jobs.put(None)
        deadline = time.monotonic() + timeout
        for w in workers:
            w.thread.join(max(deadline - time.monotonic(), 0.1))
        for w in workers:
            if w.thread.is_alive():
                w.kick()
        for w in workers:
            w.thread.join(3.0)
        self.stopped_at = self.now()
        self._watchdog.join(1.0)

    def snapshot(self) -> tuple[int, int, int, str | None]:
        """(attempts, succeeded, failed, last error) for the live status line."""
        with self._lock:
            rows = list(self.attempts)
        ok = sum(1 for a in rows if a.ok)
        last_error = next((a.error for a in reversed(rows) if not a.ok), None)
        return len(rows), ok, len(rows) - ok, last_error

    def recent_ok(self, seconds: float) -> bool:
        """Every attempt that finished in the last ``seconds`` succeeded, and there was at least one."""
        now = self.now()
        with self._lock:
            recent = [a for a in self.attempts if a.finished >= now - seconds]
        return bool(recent) and all(a.ok for a in recent)

    def results(self) -> list[Attempt]:
        with self._lock:
            return sorted(self.attempts, key=lambda a: a.id)


# ------------------------------------------------------------------------------------------------ watchers


@dataclass(frozen=True, slots=True)
class ClusterSample:
    at: float
    leader: str | None
    leader_running: bool
    members: tuple[tuple[str, str, str, int | None], ...]  # (name, role, state, timeline)
    paused: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RouteSample:
    at: float
    rw_up: tuple[str, ...]
    ro_up: tuple[str, ...]
    error: str | None = None


class _Poller:
    def __init__(self, name: str, interval: float, fn: Callable[[], None]) -> None:
        self.interval = interval
        self.fn = fn
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.ident is not None:  # started
            self.thread.join(5.0)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            t0 = time.monotonic()
            try:
                self.fn()
            except Exception:  # noqa: BLE001 - a watcher must outlive any single bad answer; errors are recorded by fn
                pass
            self.stop_event.wait(max(self.interval - (time.monotonic() - t0), 0.01))


class PatroniWatcher:
    """Polls ``/cluster`` (the DCS view) and each member's ``/patroni`` (its own view) concurrently."""

    def __init__(
        self, client: Any, endpoints: tuple[str, ...], now: Callable[[], float], interval: float = 0.2, member_interval: float = 0.15
    ) -> None:
        self.client = client
        self.now = now
        self.samples: list[ClusterSample] = []
        self.roles: list[RoleSample] = []
        self.role_errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pollers = [_Poller("drill-cluster", interval, self._poll_cluster)]
        for ep in endpoints:
            self._pollers.append(_Poller(f"drill-member-{ep}", member_interval, lambda ep=ep: self._poll_member(ep)))

    def _poll_cluster(self) -> None:
        try:
            cluster = self.client.get_cluster(with_config=False)
        except GardenError as exc:
            sample = ClusterSample(self.now(), None, False, (), error=short_error(exc))
        else:
            leader = cluster.leader
            sample = ClusterSample(
                self.now(),
                leader.name if leader else None,
                bool(leader and leader.state == "running"),
                tuple((m.name, m.role, m.state, m.timeline) for m in cluster.members),
                paused=cluster.paused,
            )
        with self._lock:
            self.samples.append(sample)

    def _poll_member(self, endpoint: str) -> None:
        sent = self.now()
        try:
            data = self.client.get_member_status(endpoint)
        except GardenError:
            with self._lock:
                self.role_errors[endpoint] = self.role_errors.get(endpoint, 0) + 1
            return
        received = self.now()
        name = str((data.get("patroni") or {}).get("name") or endpoint)
        # A primary being demoted keeps role "primary" with state "stopping" for seconds: it is on its way out
        # (fast shutdown ends its sessions at once), so only a running primary counts.
        primary = str(data.get("role")) in ("primary", "master") and data.get("state") == "running"
        with self._lock:
            self.roles.append(RoleSample(name, sent, received, primary))

    def start(self) -> None:
        for p in self._pollers:
            p.thread.start()

    def stop(self) -> None:
        for p in self._pollers:
            p.stop()

    def latest(self) -> ClusterSample | None:
        with self._lock:
            good = [s for s in self.samples if s.error is None]
            return good[-1] if good else None

    def all_samples(self) -> list[ClusterSample]:
        with self._lock:
            return list(self.samples)

    def all_roles(self) -> list[RoleSample]:
        with self._lock:
            return list(self.roles)


class HAProxyWatcher:
    def __init__(self, client: Any, now: Callable[[], float], interval: float = 0.2) -> None:
        self.client = client
        self.now = now
        self.samples: list[RouteSample] = []
        self._lock = threading.Lock()
        self._poller = _Poller("drill-haproxy", interval, self._poll)

    def _poll(self) -> None:
        try:
            state = self.client.get_state()
        except GardenError as exc:
            sample = RouteSample(self.now(), (), (), error=short_error(exc))
        else:
            ro = tuple(s.name for s in state.servers_of(state.ro_backend) if s.is_up) if state.ro_backend else ()
            sample = RouteSample(self.now(), tuple(s.name for s in state.rw_up), ro)
        with self._lock:
            self.samples.append(sample)

    def start(self) -> None:
        self._poller.thread.start()

    def stop(self) -> None:
        self._poller.stop()

    def latest(self) -> RouteSample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def all_samples(self) -> list[RouteSample]:
        with self._lock:
            return list(self.samples)
