"""The K3s status layer's parsing and rules, from payloads shaped like the API's (zero counts omitted, Ready=Unknown)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gardenctl.model import Probe, Severity
from gardenctl.ops.k3s_status import K3sState, parse_node, parse_workload
from gardenctl.ops.rules import evaluate_rules

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def node(name, ready="True", *, pressure=(), unschedulable=False, roles=()):
    conditions = [{"type": "Ready", "status": ready, "reason": "KubeletReady" if ready == "True" else "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}]
    conditions += [{"type": p, "status": "True"} for p in pressure]
    labels = {f"node-role.kubernetes.io/{r}": "true" for r in roles}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {"conditions": conditions, "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}], "nodeInfo": {"kubeletVersion": "v1.31.4+k3s1"}},
    }


def deploy(name, replicas=2, ready=None, **status):
    st = {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas, **status}
    if ready:
        st["readyReplicas"] = ready
        st["availableReplicas"] = ready
    return {
        "metadata": {"name": name, "namespace": "gardenos", "labels": {"app.kubernetes.io/part-of": "gardenos", "gardenos/phase-added": "1"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}},
        "status": st,
    }


def pod(app, name, *, restarts=0, finished=None, waiting=None):
    cs = {"name": app, "restartCount": restarts, "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}}}
    if finished:
        cs["lastState"] = {"terminated": {"finishedAt": finished.isoformat().replace("+00:00", "Z")}}
    return {"metadata": {"name": name, "labels": {"app.kubernetes.io/name": app}}, "status": {"containerStatuses": [cs]}}


def state(nodes, workloads, pods=()):
    return K3sState(
        context="prod", server="https://10.0.0.2:6443", namespace="gardenos", version="v1.31.4+k3s1",
        nodes=tuple(parse_node(n) for n in nodes),
        workloads=tuple(sorted((parse_workload(w, "Deployment", pods) for w in workloads), key=lambda w: w.name)),  # read_state sorts too
        collected_at=NOW,
    )


def findings(st):
    results = evaluate_rules({"k3s": Probe(st)}, now=NOW, only=["k3s_*"])
    return {r.name: [(f.severity, f.message) for f in r.findings] for r in results}


def test_healthy_cluster_is_ok_with_facts_worth_showing():
    got = findings(state([node("cp-1", roles=("control-plane",)), node("w-1", unschedulable=True)], [deploy("kong", 2, 2), deploy("admin", 0)]))
    assert got["k3s_nodes_ready"] == [(Severity.OK, "2/2 K3s nodes Ready; cordoned: w-1")]
    assert got["k3s_workloads_ready"] == [(Severity.OK, "2/2 GardenOS workloads ready; scaled to 0: admin")]
    assert got["k3s_pods_restarting"] == []
    assert got["k3s_reachable"] == []


def test_a_node_not_ready_warns_no_node_ready_is_critical():
    got = findings(state([node("cp-1"), node("w-2", "Unknown")], [deploy("kong", 1, 1)]))
    assert got["k3s_nodes_ready"] == [(Severity.WARNING, "node w-2 is NotReady (NodeStatusUnknown: Kubelet stopped posting node status.); its pods are rescheduled elsewhere after the eviction timeout")]
    got = findings(state([node("cp-1", "False"), node("w-2", "Unknown")], [deploy("kong", 1, 1)]))
    assert got["k3s_nodes_ready"][0][0] == Severity.CRITICAL and got["k3s_nodes_ready"][0][1].startswith("no K3s node is Ready (2 listed)")
    assert findings(state([], [deploy("kong", 1, 1)]))["k3s_nodes_ready"][0][0] == Severity.CRITICAL


def test_pressure_warns():
    got = findings(state([node("cp-1", pressure=("DiskPressure",))], [deploy("kong", 1, 1)]))
    assert got["k3s_nodes_ready"] == [(Severity.WARNING, "node cp-1 reports DiskPressure")]


def test_workload_down_is_critical_degraded_is_warning():
    # readyReplicas absent (the API omits zero counts) -> 0, never "unknown ready"
    got = findings(state([node("cp-1")], [deploy("kong", 2), deploy("fastapi", 3, 2), deploy("meta", 1, 1)]))
    assert got["k3s_workloads_ready"] == [
        (Severity.WARNING, "Deployment gardenos/fastapi: 2/3 replicas ready (degraded)"),
        (Severity.CRITICAL, "Deployment gardenos/kong: 0/2 replicas ready: the service is down"),
    ]


def test_no_gardenos_workloads_warns():
    got = findings(state([node("cp-1")], []))
    assert got["k3s_workloads_ready"] == [(Severity.WARNING, "no GardenOS workloads (app.kubernetes.io/part-of=gardenos) in namespace gardenos")]


def test_progress_deadline_warns():
    conds = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    got = findings(state([node("cp-1")], [deploy("kong", 2, 2, conditions=conds)]))
    assert got["k3s_workloads_ready"] == [(Severity.WARNING, "Deployment gardenos/kong: rollout exceeded its progress deadline")]


def test_restarts_recent_warn_old_are_only_shown():
    pods = [
        pod("kong", "kong-a", restarts=3, finished=NOW - timedelta(minutes=12)),
        pod("meta", "meta-a", restarts=7, finished=NOW - timedelta(days=3)),
        pod("auth", "auth-a", restarts=5, waiting="CrashLoopBackOff"),
        pod("other", "other-a", restarts=9, finished=NOW),
    ]
    st = state([node("cp-1")], [deploy("kong", 1, 1), deploy("meta", 1, 1), deploy("auth", 2, 1)], pods)
    by_name = {w.name: w for w in st.workloads}
    assert (by_name["kong"].restarts, by_name["kong"].pods) == (3, 1)
    assert (by_name["meta"].restarts, by_name["auth"].problems[0].reason) == (7, "CrashLoopBackOff")
    got = findings(st)
    assert got["k3s_pods_restarting"] == [
        (Severity.WARNING, "Deployment gardenos/auth: 1 pod(s) CrashLoopBackOff (5 restarts)"),
        (Severity.WARNING, "Deployment gardenos/kong: restarted 12 min ago (3 restarts in total)"),
    ]


def test_layer_not_answering_is_unknown_not_ok():
    results = evaluate_rules({"k3s": Probe(None, "K3s API https://10.0.0.2:6443: connection refused")}, now=NOW, only=["k3s_*"])
    by = {r.name: r for r in results}
    assert by["k3s_reachable"].findings[0].severity == Severity.UNKNOWN
    assert not by["k3s_nodes_ready"].evaluated and by["k3s_nodes_ready"].severity == Severity.UNKNOWN


def test_table_adapts_to_narrow_terminals():
    from io import StringIO

    from rich.console import Console

    st = state([node("garden-cp-1", roles=("control-plane", "etcd"))], [deploy("kong", 2, 1)])
    wide, narrow = StringIO(), StringIO()
    Console(file=wide, width=140, no_color=True).print(st)
    Console(file=narrow, width=60, no_color=True).print(st)
    assert "UP-TO-DATE" in wide.getvalue() and "https://10.0.0.2:6443" in wide.getvalue()
    assert "UP-TO-DATE" not in narrow.getvalue() and "deploy/kong" in narrow.getvalue() and "1/2" in narrow.getvalue()
    assert max(len(line) for line in narrow.getvalue().splitlines()) <= 60
