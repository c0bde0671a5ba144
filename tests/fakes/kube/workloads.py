"""Simulated controllers: Deployment / StatefulSet / Job status and the Pods they own.

Model (deliberately simple, see README.md):
* a write that changes a workload's spec starts a rollout; the write response still shows the old
  status (the controller has not observed the new generation yet);
* every later read of the workload (GET, or appearing in a LIST) is one step; after
  `ready_after_gets` steps the workload converges: status counts equal spec.replicas and its Pods
  are replaced by ready ones. Reads in between show `observedGeneration == generation` but the old
  counts (no updated replicas yet when the pod template changed);
* "never ready" workloads converge into a stuck state instead: updated but unavailable replicas,
  Pods crash-looping (CrashLoopBackOff); a Job stays active;
* zero counts are omitted, like the real API does (`readyReplicas` is absent, not 0).
"""

from __future__ import annotations

import copy
import uuid
from typing import TYPE_CHECKING

from . import resources
from .apiserver import now

if TYPE_CHECKING:
    from .apiserver import FakeApiServer, Record


def _omit_zero(status: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in status.items() if not (k in keys and not v)}


def _cond(kind: str, status: bool, reason: str, message: str, *, update_time: bool = True) -> dict:
    cond = {"type": kind, "status": "True" if status else "False"}
    stamp = now()
    if update_time:
        cond["lastUpdateTime"] = stamp
    cond["lastTransitionTime"] = stamp
    cond["reason"] = reason
    cond["message"] = message
    return cond


def _replicas(obj: dict) -> int:
    value = (obj.get("spec") or {}).get("replicas", 1)
    return value if isinstance(value, int) else 1


def _hash(server: FakeApiServer, obj: dict) -> str:
    return server._hash((obj.get("spec") or {}).get("template") or {})


_DEPLOY_COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")
_STS_COUNTS = ("readyReplicas", "currentReplicas", "updatedReplicas")


def _deployment_status(server, rec, state: str) -> dict:
    obj = rec.obj
    name, gen, r = obj["metadata"]["name"], obj["metadata"].get("generation", 1), _replicas(obj)
    rs = f"{name}-{_hash(server, obj)}"
    if state == "ready":
        status = {"observedGeneration": gen, "replicas": r, "updatedReplicas": r, "readyReplicas": r,
                  "availableReplicas": r,
                  "conditions": [_cond("Available", True, "MinimumReplicasAvailable",
                                       "Deployment has minimum availability."),
                                 _cond("Progressing", True, "NewReplicaSetAvailable",
                                       f'ReplicaSet "{rs}" has successfully progressed.')]}
    else:  # stuck
        status = {"observedGeneration": gen, "replicas": r, "updatedReplicas": r, "unavailableReplicas": r,
                  "conditions": [_cond("Available", False, "MinimumReplicasUnavailable",
                                       "Deployment does not have minimum availability."),
                                 _cond("Progressing", True, "ReplicaSetUpdated",
                                       f'ReplicaSet "{rs}" is progressing.')]}
    return _omit_zero(status, _DEPLOY_COUNTS)


def _statefulset_status(server, rec, state: str) -> dict:
    obj = rec.obj
    name, gen, r = obj["metadata"]["name"], obj["metadata"].get("generation", 1), _replicas(obj)
    revision = f"{name}-{_hash(server, obj)}"
    previous = rec.rollout.prev_status if rec.rollout else {}
    if state == "ready":
        status = {"observedGeneration": gen, "replicas": r, "readyReplicas": r, "currentReplicas": r,
                  "updatedReplicas": r, "availableReplicas": r, "currentRevision": revision,
                  "updateRevision": revision, "collisionCount": 0}
    else:
        status = {"observedGeneration": gen, "replicas": r, "updatedReplicas": r, "availableReplicas": 0,
                  "currentRevision": previous.get("currentRevision", revision), "updateRevision": revision,
                  "collisionCount": 0}
    return _omit_zero(status, _STS_COUNTS)


def _job_status(rec, state: str) -> dict:
    spec = rec.obj.get("spec") or {}
    status = {"startTime": (rec.obj.get("status") or {}).get("startTime") or now(), "ready": 0,
              "uncountedTerminatedPods": {}}
    if state == "running":
        status["active"] = spec.get("parallelism", 1)
        status["ready"] = spec.get("parallelism", 1)
        status["terminating"] = 0
    elif state == "complete":
        status["succeeded"] = spec.get("completions") or 1
        status["terminating"] = 0
        status["completionTime"] = now()
        status["conditions"] = [
            _cond("SuccessCriteriaMet", True, "CompletionsReached", "Reached expected number of succeeded pods",
                  update_time=False) | {"lastProbeTime": now()},
            _cond("Complete", True, "CompletionsReached", "Reached expected number of succeeded pods",
                  update_time=False) | {"lastProbeTime": now()}]
    else:  # failed
        status["failed"] = spec.get("backoffLimit", 6) + 1
        status["terminating"] = 0
        status["conditions"] = [
            _cond("FailureTarget", True, "BackoffLimitExceeded", "Job has reached the specified backoff limit",
                  update_time=False) | {"lastProbeTime": now()},
            _cond("Failed", True, "BackoffLimitExceeded", "Job has reached the specified backoff limit",
                  update_time=False) | {"lastProbeTime": now()}]
    return status


def progress_status(server: FakeApiServer, rec: Record) -> dict:
    """Status between the write and convergence: generation observed, replicas not there yet."""
    obj, ro = rec.obj, rec.rollout
    prev = ro.prev_status
    gen = obj["metadata"].get("generation", 1)
    kind = rec.rt.kind
    if kind == "Job":
        return _job_status(rec, "running")
    r = _replicas(obj)
    if kind == "Deployment":
        available = prev.get("availableReplicas", 0)
        status = {"observedGeneration": gen, "replicas": prev.get("replicas", 0),
                  "updatedReplicas": 0 if ro.template_changed else min(prev.get("updatedReplicas", 0), r),
                  "readyReplicas": prev.get("readyReplicas", 0), "availableReplicas": available,
                  "unavailableReplicas": max(r - available, 0),
                  "conditions": [_cond("Available", available >= r and available > 0 or r == 0,
                                       "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                                       "Deployment has minimum availability." if available
                                       else "Deployment does not have minimum availability."),
                                 _cond("Progressing", True, "ReplicaSetUpdated",
                                       f'ReplicaSet "{obj["metadata"]["name"]}-{_hash(server, obj)}" is '
                                       "progressing.")]}
        return _omit_zero(status, _DEPLOY_COUNTS)
    revision = f"{obj['metadata']['name']}-{_hash(server, obj)}"
    status = {"observedGeneration": gen, "replicas": prev.get("replicas", 0),
              "readyReplicas": prev.get("readyReplicas", 0), "currentReplicas": prev.get("currentReplicas", 0),
              "updatedReplicas": 0 if ro.template_changed else prev.get("updatedReplicas", 0),
              "availableReplicas": prev.get("availableReplicas", 0),
              "currentRevision": prev.get("currentRevision", revision), "updateRevision": revision,
              "collisionCount": 0}
    return _omit_zero(status, _STS_COUNTS)


def converge(server: FakeApiServer, rec: Record, state: str) -> None:
    """state: Deployment/StatefulSet "ready" | "stuck"; Job "complete" | "failed" | "running"."""
    kind = rec.rt.kind
    if kind == "Deployment":
        status = _deployment_status(server, rec, state)
        pod_state = "ready" if state == "ready" else "crashloop"
    elif kind == "StatefulSet":
        status = _statefulset_status(server, rec, state)
        pod_state = "ready" if state == "ready" else "crashloop"
    else:
        status = _job_status(rec, state)
        pod_state = {"running": "ready", "complete": "succeeded", "failed": "failed"}[state]
    server._set_status(rec, status)
    reconcile_pods(server, rec, pod_state)


# ---------------------------------------------------------------------------- pods


def pod_status(server: FakeApiServer, pod: dict, state: str) -> dict:
    """state: ready | crashloop | succeeded | failed."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    started = now()
    ready = state == "ready"
    phase = {"ready": "Running", "crashloop": "Running", "succeeded": "Succeeded", "failed": "Failed"}[state]
    node_ip = _node_ip(server, spec.get("nodeName"))
    pod_ip = next(server._pod_ips)
    container_statuses = []
    for container in spec.get("containers") or []:
        cs = {"name": container.get("name"), "image": container.get("image"),
              "imageID": f"{container.get('image')}@sha256:{server._hash(container.get('image'), 10)}",
              "containerID": f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}", "ready": ready,
              "started": ready, "restartCount": 0}
        if state == "ready":
            cs["state"] = {"running": {"startedAt": started}}
        elif state == "crashloop":
            cs["restartCount"] = 5
            cs["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                       "message": f"back-off 2m40s restarting failed container={cs['name']} "
                                                  f"pod={name}_{pod['metadata'].get('namespace')}"}}
            cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started,
                                              "finishedAt": started}}
        else:
            code = 0 if state == "succeeded" else 1
            cs["state"] = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                          "startedAt": started, "finishedAt": started}}
        container_statuses.append(cs)
    containers_ready = "True" if ready else "False"
    conditions = [
        {"type": "PodReadyToStartContainers", "status": "True" if phase == "Running" else "False",
         "lastProbeTime": None, "lastTransitionTime": started},
        {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": started},
        {"type": "Ready", "status": containers_ready, "lastProbeTime": None, "lastTransitionTime": started},
        {"type": "ContainersReady", "status": containers_ready, "lastProbeTime": None,
         "lastTransitionTime": started},
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": started},
    ]
    for cond in conditions[2:4]:
        if not ready:
            cond["reason"] = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
            if phase == "Running":
                names = ", ".join(c.get("name", "") for c in spec.get("containers") or [])
                cond["message"] = f"containers with unready status: [{names}]"
    has_resources = any((c.get("resources") or {}) for c in spec.get("containers") or [])
    status = {"phase": phase, "conditions": conditions, "hostIP": node_ip, "hostIPs": [{"ip": node_ip}],
              "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": started,
              "containerStatuses": container_statuses, "qosClass": "Burstable" if has_resources else "BestEffort"}
    return status


def _node_ip(server: FakeApiServer, node_name: str | None) -> str:
    node = server._store[resources.by_kind("Node")].get(("", node_name or ""))
    for address in ((node.obj.get("status") or {}).get("addresses") or []) if node else []:
        if address.get("type") == "InternalIP":
            return address["address"]
    return "10.0.0.2"


def _owner(rec: Record, rs_hash: str | None) -> dict:
    meta = rec.obj["metadata"]
    if rec.rt.kind == "Deployment":
        rs_name = f"{meta['name']}-{rs_hash}"
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                "uid": str(uuid.uuid5(uuid.UUID(meta["uid"]), rs_name)), "controller": True,
                "blockOwnerDeletion": True}
    return {"apiVersion": rec.rt.api_version, "kind": rec.rt.kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _make_pod(server: FakeApiServer, rec: Record, pod_name: str, state: str, index: int | None) -> dict:
    workload = rec.obj
    ns = workload["metadata"]["namespace"]
    template = copy.deepcopy((workload.get("spec") or {}).get("template") or {})
    template_hash = _hash(server, workload)
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    annotations = dict((template.get("metadata") or {}).get("annotations") or {})
    spec = template.get("spec") or {}
    kind = rec.rt.kind
    meta = {"name": pod_name, "namespace": ns, "labels": labels, "ownerReferences": [_owner(rec, template_hash)]}
    if kind == "Deployment":
        labels["pod-template-hash"] = template_hash
        meta["generateName"] = f"{workload['metadata']['name']}-{template_hash}-"
    elif kind == "StatefulSet":
        labels["controller-revision-hash"] = f"{workload['metadata']['name']}-{template_hash}"
        labels["statefulset.kubernetes.io/pod-name"] = pod_name
        labels["apps.kubernetes.io/pod-index"] = str(index)
        spec["hostname"] = pod_name
        if (workload.get("spec") or {}).get("serviceName"):
            spec["subdomain"] = workload["spec"]["serviceName"]
    else:
        meta["generateName"] = f"{workload['metadata']['name']}-"
    if annotations:
        meta["annotations"] = annotations
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec["nodeName"] = server._pick_node()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    pod["status"] = pod_status(server, pod, state)
    return pod


def _pod_name(server: FakeApiServer, rec: Record, index: int) -> str:
    name = rec.obj["metadata"]["name"]
    if rec.rt.kind == "Deployment":
        return f"{name}-{_hash(server, rec.obj)}-{server._random_suffix()}"
    if rec.rt.kind == "StatefulSet":
        return f"{name}-{index}"
    return f"{name}-{server._random_suffix()}"


def reconcile_pods(server: FakeApiServer, rec: Record, state: str) -> None:
    pods = server._store[resources.by_kind("Pod")]
    for key in rec.derived:
        pods.pop(key, None)
    rec.derived = []
    spec = rec.obj.get("spec") or {}
    if rec.rt.kind == "Job":
        if spec.get("suspend"):
            count = 0
        elif state == "succeeded":
            count = spec.get("completions") or 1
        elif state == "failed":
            count = min(spec.get("backoffLimit", 6) + 1, 7)
        else:
            count = spec.get("parallelism", 1)
    else:
        count = _replicas(rec.obj)
    ns = rec.obj["metadata"]["namespace"]
    for index in range(count):
        pod = _make_pod(server, rec, _pod_name(server, rec, index), state, index)
        server._store_internal(pod)
        rec.derived.append((ns, pod["metadata"]["name"]))


def replace_pod(server: FakeApiServer, rec: Record, key: tuple[str, str]) -> None:
    """Recreate a deleted pod of a Deployment/StatefulSet in the workload's current state."""
    index = rec.derived.index(key)
    rec.derived.remove(key)
    state = "crashloop" if rec.rollout is not None and rec.rollout.stuck else "ready"
    pod = _make_pod(server, rec, key[1] if rec.rt.kind == "StatefulSet" else _pod_name(server, rec, index),
                    state, index)
    server._store_internal(pod)
    rec.derived.insert(index, (key[0], pod["metadata"]["name"]))
