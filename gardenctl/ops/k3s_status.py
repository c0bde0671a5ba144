"""The K3s layer of ``gardenctl status`` / ``check``: nodes, and the GardenOS workloads with their replicas and restarts.

Switched on by a ``kubernetes:`` section in the context (keys as in `gardenctl.ops.k9s.kubernetes_settings`:
``kubeconfig``, ``context``, ``namespace``). Registered with the status engine as the optional layer ``k3s``
(`gardenctl.ops.status.OPTIONAL_LAYERS`): this module is imported only for contexts with that section, and it never
imports the ``kubernetes`` package - it reads the API with plain httpx (`gardenctl.backends.kube.KubeReader`), four
GET requests: ``/version``, ``/api/v1/nodes``, Deployments and StatefulSets labelled
``app.kubernetes.io/part-of=gardenos`` in the namespace, and their Pods.

Rules (an SRE's reading of the K3s view):

- ``k3s_nodes_ready``: every node Ready -> OK; a node NotReady (Ready False/Unknown) -> WARNING, the cluster still
  schedules elsewhere; no node Ready at all (or no node) -> CRITICAL. Memory/disk/PID pressure -> WARNING. A cordoned
  node is administrative: shown, not alarming by itself.
- ``k3s_workloads_ready``: a workload with 0 ready of N>0 desired -> CRITICAL (that service is down); fewer ready than
  desired -> WARNING (degraded, still serving); a rollout past its progress deadline -> WARNING; scaled to 0 -> shown;
  no GardenOS workload at all -> WARNING (nothing deployed, or the wrong namespace / label).
- ``k3s_pods_restarting``: a container waiting in CrashLoopBackOff / image pull errors / config errors, or restarted
  within the last hour -> WARNING (restarts long ago are only shown: the count is cumulative over a pod's life).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterable

from gardenctl.model import Finding, Severity
from gardenctl.ops.rules import RuleInput, rule

if TYPE_CHECKING:  # pragma: no cover
    from gardenctl.backends.kube import KubeReader
    from gardenctl.config import ClusterConfig

PART_OF_SELECTOR = "app.kubernetes.io/part-of=gardenos"
RECENT_RESTART = timedelta(hours=1)
BAD_WAITING_REASONS = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "CreateContainerError", "InvalidImageName", "RunContainerError"}
)
PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")

OK, WARNING, CRITICAL = Severity.OK, Severity.WARNING, Severity.CRITICAL


# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True, slots=True)
class K3sNode:
    name: str
    ready: bool | None  # None: the Ready condition is missing
    ready_reason: str | None = None
    ready_message: str | None = None
    roles: tuple[str, ...] = ()
    kubelet_version: str | None = None
    internal_ip: str | None = None
    unschedulable: bool = False
    pressure: tuple[str, ...] = ()

    @property
    def status_text(self) -> str:
        # kubectl shows NotReady for Ready=False and Ready=Unknown; a node without the condition is Unknown.
        text = "Ready" if self.ready else ("NotReady" if self.ready is False else "Unknown")
        if self.unschedulable:
            text += ",SchedulingDisabled"
        return text


@dataclass(frozen=True, slots=True)
class PodProblem:
    pod: str
    container: str
    reason: str
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class K3sWorkload:
    kind: str
    namespace: str
    name: str
    desired: int
    ready: int
    updated: int | None = None
    available: int | None = None
    restarts: int = 0
    last_restart_at: datetime | None = None
    pods: int = 0
    problems: tuple[PodProblem, ...] = ()
    progress_deadline_exceeded: bool = False
    phase_added: str | None = None

    @property
    def short_kind(self) -> str:
        return {"Deployment": "deploy", "StatefulSet": "sts"}.get(self.kind, self.kind.lower())

    @property
    def subject(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class K3sState:
    """What the K3s API said. ``collected_at`` is when the pods were read (restart ages are relative to it)."""

    context: str
    server: str
    namespace: str
    version: str | None
    nodes: tuple[K3sNode, ...]
    workloads: tuple[K3sWorkload, ...]
    collected_at: datetime

    @property
    def summary(self) -> str:
        ready = sum(1 for n in self.nodes if n.ready)
        wl_ready = sum(1 for w in self.workloads if w.ready >= w.desired)
        return f"{ready}/{len(self.nodes)} nodes Ready, {wl_ready}/{len(self.workloads)} workloads ready"

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.table import Table
        from rich.text import Text

        compact = options.max_width < 100
        head = Text(f"{self.version or '?'}  context {self.context}")
        if not compact:
            head.append(f"  {self.server}  namespace {self.namespace}", style="dim")
        yield head
        nodes = Table(box=None, pad_edge=False, show_edge=False)
        cols = ("NODE", "STATUS", "ROLES", "VERSION", "IP") if not compact else ("NODE", "STATUS", "ROLES")
        for col in cols:
            nodes.add_column(col, no_wrap=col in ("NODE", "IP"))
        for n in self.nodes:
            style = "" if n.ready else "red"
            status = Text(n.status_text + (f" ({', '.join(n.pressure)})" if n.pressure else ""), style=style or ("yellow" if n.pressure else ""))
            row: list[Any] = [Text(n.name), status, Text(",".join(n.roles) or "<none>")]
            if not compact:
                row += [Text(n.kubelet_version or "?"), Text(n.internal_ip or "-")]
            nodes.add_row(*row)
        if not self.nodes:
            nodes.add_row("(no nodes)", "", "")
        yield nodes
        if not self.workloads:
            yield Text(f"no GardenOS workloads ({PART_OF_SELECTOR}) in namespace {self.namespace}", style="yellow")
            return
        table = Table(box=None, pad_edge=False, show_edge=False)
        cols = ("WORKLOAD", "READY", "UP-TO-DATE", "RESTARTS", "PHASE") if not compact else ("WORKLOAD", "READY", "RESTARTS")
        for col in cols:
            table.add_column(col, no_wrap=True)
        for w in self.workloads:
            if w.desired > 0 and w.ready == 0:
                style = "red"
            elif w.ready < w.desired:
                style = "yellow"
            else:
                style = ""
            restarts = str(w.restarts)
            if w.problems:
                restarts += f" ({w.problems[0].reason})"
            row: list[Any] = [Text(f"{w.short_kind}/{w.name}"), Text(f"{w.ready}/{w.desired}", style=style)]
            if not compact:
                row.append("-" if w.updated is None else str(w.updated))
            row.append(Text(restarts, style="yellow" if w.problems else ""))
            if not compact:
                row.append(Text(w.phase_added or "-"))
            table.add_row(*row)
        yield table


# ------------------------------------------------------------------------------------------------ parsing


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_node(item: dict[str, Any]) -> K3sNode:
    meta = item.get("metadata") or {}
    status = item.get("status") or {}
    spec = item.get("spec") or {}
    labels = meta.get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    ready: bool | None = None
    reason = message = None
    pressure = []
    for cond in status.get("conditions") or []:
        if not isinstance(cond, dict):
            continue
        if cond.get("type") == "Ready":
            ready = cond.get("status") == "True"
            reason, message = cond.get("reason"), cond.get("message")
        elif cond.get("type") in PRESSURE_CONDITIONS and cond.get("status") == "True":
            pressure.append(str(cond["type"]))
    ip = next((a.get("address") for a in status.get("addresses") or [] if isinstance(a, dict) and a.get("type") == "InternalIP"), None)
    return K3sNode(
        name=str(meta.get("name", "?")),
        ready=ready,
        ready_reason=reason,
        ready_message=message,
        roles=tuple(roles),
        kubelet_version=(status.get("nodeInfo") or {}).get("kubeletVersion"),
        internal_ip=ip,
        unschedulable=bool(spec.get("unschedulable", False)),
        pressure=tuple(pressure),
    )


def _selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    match = (selector or {}).get("matchLabels") or {}
    if not match and not (selector or {}).get("matchExpressions"):
        return False
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    for expr in (selector or {}).get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def parse_workload(item: dict[str, Any], kind: str, pods: Iterable[dict[str, Any]]) -> K3sWorkload:
    meta = item.get("metadata") or {}
    spec = item.get("spec") or {}
    status = item.get("status") or {}
    desired = _int(spec.get("replicas"))
    desired = 1 if desired is None else desired
    # The API omits zero counts ("readyReplicas" is absent, not 0).
    ready = _int(status.get("readyReplicas")) or 0
    updated = _int(status.get("updatedReplicas"))
    if updated is None and status:
        updated = 0
    deadline = any(
        isinstance(c, dict) and c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded" for c in status.get("conditions") or []
    )
    restarts = 0
    last: datetime | None = None
    problems: list[PodProblem] = []
    count = 0
    for pod in pods:
        pmeta = pod.get("metadata") or {}
        if not _selector_matches(spec.get("selector") or {}, pmeta.get("labels") or {}):
            continue
        count += 1
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if not isinstance(cs, dict):
                continue
            n = _int(cs.get("restartCount")) or 0
            restarts += n
            finished = _time(((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
            if n and finished and (last is None or finished > last):
                last = finished
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in BAD_WAITING_REASONS:
                problems.append(PodProblem(str(pmeta.get("name", "?")), str(cs.get("name", "?")), str(waiting["reason"]), n))
    return K3sWorkload(
        kind=kind,
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "?")),
        desired=desired,
        ready=ready,
        updated=updated,
        available=_int(status.get("availableReplicas")),
        restarts=restarts,
        last_restart_at=last,
        pods=count,
        problems=tuple(problems),
        progress_deadline_exceeded=deadline,
        phase_added=(meta.get("labels") or {}).get("gardenos/phase-added"),
    )


def read_state(reader: "KubeReader", *, namespace: str, context: str, now: datetime | None = None) -> K3sState:
    """Read nodes and the GardenOS workloads through ``reader``. Raises a `GardenError` when the API cannot be read."""
    from gardenctl.backends.kube import iter_items
    from gardenctl.errors import GardenError

    version = None
    try:
        version = (reader.get("/version") or {}).get("gitVersion")
    except GardenError as exc:
        if getattr(exc, "status", None) is None:
            raise  # unreachable: no point asking the rest
    nodes = tuple(sorted((parse_node(i) for i in iter_items(reader.get("/api/v1/nodes"))), key=lambda n: n.name))
    params = {"labelSelector": PART_OF_SELECTOR}
    deployments = list(iter_items(reader.get(f"/apis/apps/v1/namespaces/{namespace}/deployments", params)))
    statefulsets = list(iter_items(reader.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets", params)))
    pods = list(iter_items(reader.get(f"/api/v1/namespaces/{namespace}/pods", params))) if (deployments or statefulsets) else []
    workloads = [parse_workload(d, "Deployment", pods) for d in deployments] + [parse_workload(s, "StatefulSet", pods) for s in statefulsets]
    workloads.sort(key=lambda w: (w.namespace, w.name, w.kind))
    return K3sState(
        context=context,
        server=reader.endpoint.server,
        namespace=namespace,
        version=version,
        nodes=nodes,
        workloads=tuple(workloads),
        collected_at=now or datetime.now(timezone.utc),
    )


# ------------------------------------------------------------------------------------------------ the layer hook


def collect(cluster: "ClusterConfig", *, timeout: float) -> K3sState:
    """The optional-layer entry point (`gardenctl.ops.status`): runs in a worker thread, raises `GardenError`."""
    from gardenctl.backends.kube import KubeReader, read_kubeconfig
    from gardenctl.ops.k9s import kubernetes_settings

    settings = kubernetes_settings(cluster)
    endpoint = read_kubeconfig(settings.kubeconfig, settings.context)
    with KubeReader(endpoint, timeout_seconds=timeout) as reader:
        return read_state(reader, namespace=settings.namespace, context=endpoint.context)


# ------------------------------------------------------------------------------------------------ rules


def _f(severity: Severity, message: str, subject: str | None = None, hint: str | None = None) -> Finding:
    return Finding(rule="", severity=severity, message=message, layer="", subject=subject, hint=hint)


@rule("k3s_nodes_ready", layer="k3s", needs=("k3s",), description="every K3s node is Ready and without memory/disk/PID pressure")
def _nodes_ready(inp: RuleInput) -> Iterable[Finding]:
    state = inp.value("k3s")
    if not isinstance(state, K3sState):  # another k3s layer implementation (tests register their own)
        return []
    if not state.nodes:
        return [_f(CRITICAL, "the K3s API lists no nodes: nothing can run", "nodes", "check the K3s servers and agents (systemctl status k3s / k3s-agent)")]
    ready = [n for n in state.nodes if n.ready]
    out: list[Finding] = []
    if not ready:
        out.append(_f(CRITICAL, f"no K3s node is Ready ({len(state.nodes)} listed): workloads cannot run or recover", "nodes", "check the nodes' kubelets (journalctl -u k3s / k3s-agent)"))
    for n in state.nodes:
        if not n.ready and ready:
            why = f" ({n.ready_reason}: {n.ready_message})" if n.ready_reason else ""
            out.append(_f(WARNING, f"node {n.name} is NotReady{why}; its pods are rescheduled elsewhere after the eviction timeout", n.name, "check the node's kubelet (journalctl -u k3s-agent) and its network"))
        if n.pressure:
            out.append(_f(WARNING, f"node {n.name} reports {', '.join(n.pressure)}", n.name, "free memory/disk on the node; the kubelet evicts pods under pressure"))
    if not out:
        cordoned = [n.name for n in state.nodes if n.unschedulable]
        extra = f"; cordoned: {', '.join(cordoned)}" if cordoned else ""
        out.append(_f(OK, f"{len(ready)}/{len(state.nodes)} K3s nodes Ready{extra}", "nodes"))
    return out


@rule("k3s_workloads_ready", layer="k3s", needs=("k3s",), description="every GardenOS Deployment/StatefulSet has all desired replicas ready")
def _workloads_ready(inp: RuleInput) -> Iterable[Finding]:
    state = inp.value("k3s")
    if not isinstance(state, K3sState):  # another k3s layer implementation (tests register their own)
        return []
    if not state.workloads:
        return [
            _f(
                WARNING,
                f"no GardenOS workloads ({PART_OF_SELECTOR}) in namespace {state.namespace}",
                state.namespace,
                "nothing deployed yet (gardenctl migrate-phase status), or kubernetes.namespace of this context is wrong",
            )
        ]
    out: list[Finding] = []
    for w in state.workloads:
        if w.desired > 0 and w.ready == 0:
            out.append(_f(CRITICAL, f"{w.subject}: 0/{w.desired} replicas ready: the service is down", w.subject, f"kubectl -n {w.namespace} describe {w.short_kind}/{w.name}; kubectl -n {w.namespace} logs {w.short_kind}/{w.name}"))
        elif w.ready < w.desired:
            out.append(_f(WARNING, f"{w.subject}: {w.ready}/{w.desired} replicas ready (degraded)", w.subject, f"kubectl -n {w.namespace} get pods -l app.kubernetes.io/name={w.name}"))
        if w.progress_deadline_exceeded:
            out.append(_f(WARNING, f"{w.subject}: rollout exceeded its progress deadline", w.subject, f"kubectl -n {w.namespace} rollout status {w.short_kind}/{w.name}"))
    if not out:
        zero = [w.name for w in state.workloads if w.desired == 0]
        extra = f"; scaled to 0: {', '.join(zero)}" if zero else ""
        out.append(_f(OK, f"{len(state.workloads)}/{len(state.workloads)} GardenOS workloads ready{extra}", state.namespace))
    return out


@rule("k3s_pods_restarting", layer="k3s", needs=("k3s",), description="no GardenOS container crash-looping, failing to pull or restarted in the last hour")
def _pods_restarting(inp: RuleInput) -> Iterable[Finding]:
    state = inp.value("k3s")
    if not isinstance(state, K3sState):  # another k3s layer implementation (tests register their own)
        return []
    out: list[Finding] = []
    now = inp.now
    for w in state.workloads:
        if w.problems:
            reasons = sorted({p.reason for p in w.problems})
            pods = sorted({p.pod for p in w.problems})
            out.append(_f(WARNING, f"{w.subject}: {len(pods)} pod(s) {'/'.join(reasons)} ({w.restarts} restarts)", w.subject, f"kubectl -n {w.namespace} logs --previous {pods[0]}"))
        elif w.restarts and w.last_restart_at is not None and now - w.last_restart_at <= RECENT_RESTART:
            ago = max(int((now - w.last_restart_at).total_seconds() // 60), 0)
            out.append(_f(WARNING, f"{w.subject}: restarted {ago} min ago ({w.restarts} restarts in total)", w.subject, f"kubectl -n {w.namespace} logs --previous -l app.kubernetes.io/name={w.name}"))
    return out
