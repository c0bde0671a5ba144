"""Collect every layer of one cluster concurrently into a `StatusReport`, and judge it with the rule engine.

Patroni (``GET /cluster`` + ``GET /config``, and every member's own ``GET /patroni``), etcd (member list, each
member's own status, alarms) and HAProxy (``show stat``) are asked at the same time, each request bounded by the per-endpoint timeout. A layer that does not
answer becomes a `Probe` with ``error`` while the others still render: one slow component never blocks the view.

Workers are daemon threads, so a backend that hangs past the deadline cannot keep the process alive (a cron check
exits on time). Nothing here prints; ``progress`` is not needed because collection takes one round trip.

Optional layers
---------------
Later features add sections to a context (``hetzner``, ``kubernetes``) and want them in ``status``/``check``. They
register an `OptionalLayer` in `OPTIONAL_LAYERS` (or call `register_optional_layer`). The layer's module is imported
only when its config section is present, so ``status`` on a context without it never imports hcloud/kubernetes.
The module must provide::

    def collect(cluster: ClusterConfig, *, timeout: float) -> Any
        # runs in a worker thread; raise a GardenError when the layer cannot be read (-> Probe.error);
        # import heavy libraries inside this function, never at module level

and may register rules with `gardenctl.ops.rules.rule(..., needs=("<field>",))` at import time. The value lands in
the `StatusReport` field named by ``OptionalLayer.field`` (``hetzner`` / ``k3s``). For the table view the value may
implement ``__rich__()``; JSON/YAML come from its dataclass fields.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from gardenctl.errors import GardenError
from gardenctl.model import EtcdCluster, Finding, HAProxyState, PatroniCluster, Probe, StatusReport

if TYPE_CHECKING:  # pragma: no cover
    from gardenctl.backends.etcd import EndpointStatus
    from gardenctl.config import ClusterConfig
    from gardenctl.model import EtcdAlarm, EtcdMember


# ------------------------------------------------------------------------------------------------ adapter interfaces


class PatroniSource(Protocol):
    def get_cluster(self, *, with_config: bool = True, every_endpoint: bool = False) -> PatroniCluster: ...


class EtcdSource(Protocol):
    endpoints: tuple[str, ...]

    def list_members(self) -> "tuple[EtcdMember, ...]": ...

    def get_status(self, endpoint: str) -> "EndpointStatus": ...

    def list_alarms(self) -> "tuple[EtcdAlarm, ...]": ...


class HAProxySource(Protocol):
    def get_state(self) -> HAProxyState: ...


@dataclass
class Sources:
    """The adapters `collect` asks. Real ones come from `gardenctl.ops.clients`; tests pass hand-written fakes
    implementing the same methods. A None source means "not collected"."""

    patroni: PatroniSource | None = None
    etcd: EtcdSource | None = None
    haproxy: HAProxySource | None = None

    def close(self) -> None:
        for source in (self.patroni, self.etcd, self.haproxy):
            close = getattr(source, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing an HTTP pool must never hide the result
                    pass


def sources_for(cluster: "ClusterConfig", *, timeout: float | None = None) -> Sources:
    """Real adapters for the context. Raises `ConfigError` when an etcd or HAProxy secret is missing (Patroni is only
    read, which needs no password)."""
    from gardenctl.ops.clients import etcd_client, haproxy_client, patroni_client

    return Sources(
        patroni=patroni_client(cluster, timeout=timeout, read_only=True),
        etcd=etcd_client(cluster, timeout=timeout),
        haproxy=haproxy_client(cluster, timeout=timeout),
    )


# ------------------------------------------------------------------------------------------------ optional layers


@dataclass(frozen=True, slots=True)
class OptionalLayer:
    field: str  # the StatusReport field that receives the Probe
    config_key: str  # the ClusterConfig attribute that switches the layer on
    module: str  # imported lazily, only when the section is present; provides collect(cluster, *, timeout)
    # How long to wait for the layer at least (a cloud API is slower than a LAN); None: like the core layers.
    min_deadline_seconds: float | None = None


OPTIONAL_LAYERS: dict[str, OptionalLayer] = {
    # hetzner_status.collect waits up to max(timeout, 5 s) per API request, two requests.
    "hetzner": OptionalLayer(field="hetzner", config_key="hetzner", module="gardenctl.ops.hetzner_status", min_deadline_seconds=10.5),
    "k3s": OptionalLayer(field="k3s", config_key="kubernetes", module="gardenctl.ops.k3s_status"),
}


def register_optional_layer(layer: OptionalLayer) -> None:
    """Add or replace an optional layer. Its ``field`` must exist on `StatusReport`."""
    if layer.field not in StatusReport.__dataclass_fields__:
        raise ValueError(f"StatusReport has no field {layer.field!r} for optional layer {layer.module}")
    OPTIONAL_LAYERS[layer.field] = layer


def optional_layers_for(cluster: "ClusterConfig") -> dict[str, Callable[..., Any]]:
    """``{field: collect}`` of the optional layers whose config section is present. Importing a layer module also
    registers its rules. A layer whose module does not exist (yet) is skipped."""
    found: dict[str, Callable[..., Any]] = {}
    for layer in OPTIONAL_LAYERS.values():
        if getattr(cluster, layer.config_key, None) is None:
            continue
        try:
            module = importlib.import_module(layer.module)
        except ModuleNotFoundError as exc:
            if exc.name == layer.module:
                continue
            raise
        fn = getattr(module, "collect", None)
        if callable(fn):
            found[layer.field] = fn
    return found


def _layer_deadline(name: str, started: float, per_endpoint: float) -> float:
    layer = OPTIONAL_LAYERS.get(name)
    seconds = layer_deadline_seconds(per_endpoint)
    if layer is not None and layer.min_deadline_seconds is not None:
        seconds = max(seconds, layer.min_deadline_seconds)
    return started + seconds


# ------------------------------------------------------------------------------------------------ daemon tasks


class _Task:
    """Run ``fn`` in a daemon thread; wait for it with a deadline. A task still running at the deadline is
    abandoned (daemon: it cannot keep the process alive)."""

    def __init__(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.elapsed_ms: float | None = None
        self._done = threading.Event()
        self._start = time.perf_counter()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(fn, args), name=f"status-{name}", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self.value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self.error = exc
        finally:
            self.elapsed_ms = (time.perf_counter() - self._start) * 1000
            self._done.set()

    def wait(self, deadline: float) -> bool:
        return self._done.wait(max(deadline - time.monotonic(), 0.0))

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def probe(self, deadline: float, what: str) -> Probe[Any]:
        if not self.wait(deadline):
            waited = max(deadline - self._started, 0.0)
            return Probe(None, f"{what}: no answer within {waited:.1f}s", round((time.perf_counter() - self._start) * 1000, 1))
        if self.error is not None:
            if isinstance(self.error, GardenError):
                return Probe(None, self.error.message, self.elapsed_ms, down=isinstance(self.error, ServiceDown))
            raise self.error  # a bug, not an unreachable backend
        return Probe(self.value, None, self.elapsed_ms)


# ------------------------------------------------------------------------------------------------ etcd


def _collect_etcd(source: EtcdSource, quota_bytes: int | None, timeout: float, deadline: float) -> EtcdCluster:
    """Members, each member's own status and the alarms, all at once.

    Listing alarms goes through raft, so without quorum it hangs until etcd's own request deadline (about 7 s);
    it gets one per-endpoint timeout and is then reported as unknown (``alarms_error``) instead of delaying the view.
    Member list and status are served locally by each member and still answer."""
    from gardenctl.backends.etcd import join_cluster

    started = time.monotonic()
    members_task = _Task("etcd-members", source.list_members)
    alarms_task = _Task("etcd-alarms", source.list_alarms)
    status_tasks = {url: _Task("etcd-status", source.get_status, url) for url in source.endpoints}
    if not members_task.wait(deadline):
        raise _Unanswered(f"etcd: no endpoint listed the members within {timeout:g}s")
    if members_task.error is not None:
        raise members_task.error
    members = members_task.value
    for member in members:
        for url in member.client_urls:
            url = url.rstrip("/")
            if url not in status_tasks:
                status_tasks[url] = _Task("etcd-status", source.get_status, url)
    statuses = []
    errors: dict[str, str] = {}
    for url, task in status_tasks.items():
        if not task.wait(deadline):
            errors[url] = f"no answer within {timeout:g}s"
        elif task.error is not None:
            if not isinstance(task.error, GardenError):
                raise task.error
            errors[url] = task.error.message.split(": ", 2)[-1]
        else:
            statuses.append(task.value)
    errors.update({u + "/": e for u, e in list(errors.items())})
    alarms: tuple[Any, ...] = ()
    alarms_error = None
    if not alarms_task.wait(min(deadline, started + timeout + 0.25)):
        alarms_error = f"no answer within {timeout:g}s (listing alarms needs quorum)"
    elif alarms_task.error is not None:
        if not isinstance(alarms_task.error, GardenError):
            raise alarms_task.error
        alarms_error = alarms_task.error.message
    else:
        alarms = alarms_task.value
    cluster = join_cluster(members, statuses, errors, alarms, quota_bytes)
    return replace(cluster, alarms_error=alarms_error)


def _collect_patroni(source: PatroniSource) -> PatroniCluster:
    """/cluster and /config from the first member that answers, and every configured endpoint's own GET /patroni,
    so a member that is down or demoted is marked while the DCS still lists it as it was."""
    return source.get_cluster(every_endpoint=True)


class ServiceDown(GardenError):
    """A layer that does not answer and whose clients are refused too (see `_collect_haproxy`)."""


def _collect_haproxy(source: HAProxySource, rw_address: str | None, timeout: float) -> HAProxyState:
    """HAProxy's ``show stat``. When the stats socket or page does not answer, one TCP connect to the read-write
    address tells an unreadable HAProxy (clients still served) from a dead one (clients refused: CRITICAL)."""
    try:
        return source.get_state()
    except GardenError as exc:
        if not rw_address:
            raise
        refused = _connect_error(rw_address, timeout)
        if refused is None:
            raise
        raise ServiceDown(
            f"{exc.message.removeprefix('haproxy: ')}, and the read-write address {rw_address} refuses clients too "
            f"({refused}): HAProxy is down, no client reaches PostgreSQL through it"
        ) from exc


def _connect_error(address: str, timeout: float) -> str | None:
    """None when a TCP connection to ``host:port`` opens; else why not."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
            return None
    except ValueError:
        return None  # not host:port - the config check reports it; no judgement here
    except OSError as exc:
        return "connection refused" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or type(exc).__name__)


class _Unanswered(GardenError):
    pass


# ------------------------------------------------------------------------------------------------ collect


def layer_deadline_seconds(timeout: float) -> float:
    """How long `collect` waits for a layer: two sequential requests (etcd members then a member's status;
    Patroni /cluster then /config) plus scheduling slack."""
    return 2 * timeout + 0.5


def collect(
    cluster: "ClusterConfig",
    *,
    timeout: float | None = None,
    sources: Sources | None = None,
    now: datetime | None = None,
    paused_since: Callable[[bool | None], datetime | None] | datetime | None = None,
    evaluate: bool = True,
    optional_layers: bool = True,
) -> StatusReport:
    """Ask every layer of ``cluster`` at once and return the joined `StatusReport` with its findings.

    ``timeout`` is per endpoint (default: the context's ``request-timeout-seconds``). ``sources`` replaces the real
    adapters (tests). ``paused_since`` is when maintenance mode was first seen (a datetime), or a callback that
    receives the observed pause state (None when Patroni did not answer) and returns it (see `PauseTracker`).
    Raises `ConfigError` when a secret cannot be resolved; an unreachable layer never raises."""
    from gardenctl.ops.clients import effective_timeout

    per_endpoint = effective_timeout(cluster, timeout)
    own_sources = sources is None
    sources = sources if sources is not None else sources_for(cluster, timeout=per_endpoint)
    extra = optional_layers_for(cluster) if optional_layers else {}
    started = time.monotonic()
    deadline = started + layer_deadline_seconds(per_endpoint)
    try:
        tasks: dict[str, _Task] = {}
        if sources.patroni is not None:
            tasks["patroni"] = _Task("patroni", _collect_patroni, sources.patroni)
        if sources.etcd is not None:
            tasks["etcd"] = _Task("etcd", _collect_etcd, sources.etcd, cluster.etcd.quota_bytes, per_endpoint, deadline)
        if sources.haproxy is not None:
            tasks["haproxy"] = _Task("haproxy", _collect_haproxy, sources.haproxy, cluster.haproxy.rw_address, per_endpoint)
        for name, fn in extra.items():
            tasks[name] = _Task(name, _call_layer, fn, cluster, per_endpoint)
        probes = {name: task.probe(_layer_deadline(name, started, per_endpoint), name) for name, task in tasks.items()}
    finally:
        if own_sources:
            sources.close()
    report = StatusReport(
        context=cluster.name,
        collected_at=_utc(now or datetime.now(timezone.utc)),
        patroni=probes.get("patroni", Probe(None, "not collected")),
        etcd=probes.get("etcd", Probe(None, "not collected")),
        haproxy=probes.get("haproxy", Probe(None, "not collected")),
        hetzner=probes.get("hetzner"),
        k3s=probes.get("k3s"),
    )
    if not evaluate:
        return report
    since = paused_since
    if callable(since):
        pat = report.patroni.value if report.patroni.ok else None
        since = since(pat.paused if pat is not None else None)
    return judge(report, cluster, paused_since=since)


def _call_layer(fn: Callable[..., Any], cluster: "ClusterConfig", timeout: float) -> Any:
    return fn(cluster, timeout=timeout)


def judge(report: StatusReport, cluster: "ClusterConfig", *, paused_since: datetime | None = None) -> StatusReport:
    """The report with its findings from every rule (thresholds from the context)."""
    from gardenctl.ops.rules import evaluate

    findings: tuple[Finding, ...] = evaluate(
        report,
        cluster.thresholds,
        report.collected_at,
        paused_since=paused_since,
        patroni_endpoints=cluster.patroni.endpoints,
        patroni_scope=cluster.scope,
    )
    return replace(report, findings=findings)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


# ------------------------------------------------------------------------------------------------ maintenance age


class PauseTracker:
    """Remembers when gardenctl first saw a context in maintenance mode.

    Patroni does not record when ``pause`` was set (``/cluster`` only says ``"pause": true``; the etcd config key
    has a revision, not a time), so the age of a pause is unknowable from the cluster. ``status`` and ``check``
    write the first sighting to ``<state dir>/maintenance-first-seen.json``; the rule then says "for at least N min"
    and turns CRITICAL after ``thresholds.maintenance-critical-minutes``. A pause that started before the first
    ``check`` run is older than reported; run ``check`` from cron to keep the lower bound tight. When the state dir
    cannot be written, the age is reported as unknown (WARNING only).
    """

    FILE = "maintenance-first-seen.json"

    def __init__(self, state_dir: Path, context: str, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = Path(state_dir) / self.FILE
        self.context = context
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save(self, data: dict[str, str]) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=str(self.path.parent))
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
            os.replace(tmp, self.path)
            return True
        except OSError:
            return False

    def observe(self, paused: bool | None) -> datetime | None:
        """Record the observed state; return when the current pause was first seen (None if not paused or unknown)."""
        data = self._load()
        if paused is None:  # Patroni did not answer: keep what we knew
            return _parse_time(data.get(self.context))
        if not paused:
            if self.context in data:
                del data[self.context]
                self._save(data)
            return None
        seen = _parse_time(data.get(self.context))
        if seen is not None:
            return seen
        now = _utc(self.clock())
        data[self.context] = now.isoformat()
        return now if self._save(data) else None

    __call__ = observe


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        return None
