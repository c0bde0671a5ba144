"""The K3s section of `gardenctl status` against the fake Kubernetes API server - without importing `kubernetes`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gardenctl.config import load_config, select_cluster
from gardenctl.model import Probe, Severity
from gardenctl.ops import k3s_status
from gardenctl.ops.rules import evaluate_rules
from tests.fakes.kube.fixture import fake_kube  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]

# Core layers that refuse at once (port 9, discard): the K3s layer is what these tests look at.
DEAD_CORE = {
    "patroni": {"endpoints": ["http://127.0.0.1:9"]},
    "etcd": {"endpoints": ["http://127.0.0.1:9"]},
    "haproxy": {"stats-url": "http://127.0.0.1:9/;csv"},
}


def write_config(tmp_path: Path, kube: dict | None) -> Path:
    cluster = dict(DEAD_CORE)
    if kube is not None:
        cluster["kubernetes"] = kube
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"current-context": "prod", "clusters": {"prod": cluster}}))
    return path


def deploy(name: str, replicas: int = 2) -> dict:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "gardenos"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "gardenos", "labels": {**labels, "gardenos/phase-added": "1"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": f"example/{name}:1"}]}},
        },
    }


@pytest.fixture
def deployed(fake_kube):
    fake_kube.ready_after_gets = 0
    dyn = fake_kube.dynamic_client()
    ns = dyn.resources.get(api_version="v1", kind="Namespace")
    ns.server_side_apply(body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gardenos"}}, name="gardenos", field_manager="test")
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    fake_kube.set_never_ready("Deployment", "kong", "gardenos")
    for name in ("kong", "fastapi"):
        deployments.server_side_apply(body=deploy(name), name=name, namespace="gardenos", field_manager="test")
    # an object outside GardenOS is not a GardenOS workload
    other = deploy("unrelated")
    other["metadata"]["labels"] = {"app.kubernetes.io/name": "unrelated"}
    other["spec"]["template"]["metadata"]["labels"] = {"app.kubernetes.io/name": "unrelated"}
    deployments.server_side_apply(body=other, name="unrelated", namespace="gardenos", field_manager="test")
    return fake_kube


def test_collect_reads_nodes_and_gardenos_workloads(deployed, tmp_path):
    cluster = select_cluster(load_config(write_config(tmp_path, {"kubeconfig": deployed.kubeconfig_path, "context": "fake"})))
    st = k3s_status.collect(cluster, timeout=2.0)
    assert st.version == "v1.31.4+k3s1" and st.context == "fake" and st.namespace == "gardenos"
    assert [(n.name, n.ready, n.roles) for n in st.nodes] == [
        ("garden-cp-1", True, ("control-plane", "etcd", "master")),
        ("garden-worker-1", True, ()),
        ("garden-worker-2", False, ()),
    ]
    by = {w.name: w for w in st.workloads}
    assert set(by) == {"fastapi", "kong"}
    assert (by["fastapi"].desired, by["fastapi"].ready, by["fastapi"].pods) == (2, 2, 2)
    assert (by["kong"].desired, by["kong"].ready) == (2, 0)
    assert by["kong"].problems and by["kong"].problems[0].reason == "CrashLoopBackOff" and by["kong"].restarts == 10
    results = {r.name: r for r in evaluate_rules({"k3s": Probe(st)}, only=["k3s_*"], now=st.collected_at)}
    assert results["k3s_nodes_ready"].severity == Severity.WARNING
    assert results["k3s_workloads_ready"].severity == Severity.CRITICAL
    assert results["k3s_pods_restarting"].severity == Severity.WARNING
    # read-only: only GETs, each with the bearer token, and four of them
    assert {r.method for r in deployed.requests if r.headers.get("user-agent") == "gardenctl"} == {"GET"}


def run_status(config: Path, *args: str) -> subprocess.CompletedProcess:
    """`gardenctl status` in a fresh interpreter, reporting whether the kubernetes package got imported."""
    code = (
        "import sys; from gardenctl.cli.main import main; rc = main(sys.argv[1:]); "
        "print('KUBERNETES_IMPORTED=' + str('kubernetes' in sys.modules), file=sys.stderr); sys.exit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARDENCTL_")}
    env.update({"NO_COLOR": "1", "COLUMNS": "140", "NO_PROXY": "127.0.0.1,localhost"})
    return subprocess.run([sys.executable, "-c", code, "--config", str(config), "status", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def test_status_shows_the_k3s_section_without_importing_kubernetes(deployed, tmp_path):
    config = write_config(tmp_path, {"kubeconfig": deployed.kubeconfig_path, "context": "fake"})
    proc = run_status(config, "-o", "json")
    assert "KUBERNETES_IMPORTED=False" in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)
    k3s = doc["k3s"]
    assert k3s["reachable"] is True and k3s["version"] == "v1.31.4+k3s1"
    assert sorted((w["name"], w["ready"], w["desired"]) for w in k3s["workloads"]) == [("fastapi", 2, 2), ("kong", 0, 2)]
    rules = {f["rule"]: f["severity"] for f in doc["findings"] if f["layer"] == "k3s"}
    assert rules["k3s_workloads_ready"] == "CRITICAL" and rules["k3s_nodes_ready"] == "WARNING"
    assert proc.returncode == 2  # worst finding CRITICAL
    table = run_status(config)
    assert "KUBERNETES_IMPORTED=False" in table.stderr
    assert "K3s" in table.stdout and "deploy/kong" in table.stdout and "garden-worker-2  NotReady" in table.stdout


def test_status_without_kubernetes_section_has_no_k3s_section(tmp_path):
    proc = run_status(write_config(tmp_path, None), "-o", "json")
    assert "KUBERNETES_IMPORTED=False" in proc.stderr
    assert json.loads(proc.stdout)["k3s"] is None


def test_unreachable_api_and_exec_plugin_are_unknown_with_the_reason(tmp_path):
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "a", "cluster": {"server": "http://127.0.0.1:9"}}, {"name": "b", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "a", "user": {"token": "t"}}, {"name": "b", "user": {"exec": {"command": "aws"}}}],
                "contexts": [{"name": "a", "context": {"cluster": "a", "user": "a"}}, {"name": "b", "context": {"cluster": "b", "user": "b"}}],
            }
        )
    )
    for ctx, expected in (("a", "connection refused"), ("b", "credential plugin 'aws'")):
        proc = run_status(write_config(tmp_path, {"kubeconfig": str(kc), "context": ctx}), "-o", "json")
        doc = json.loads(proc.stdout)
        assert doc["k3s"]["reachable"] is False and expected in doc["k3s"]["error"]
        finding = next(f for f in doc["findings"] if f["rule"] == "k3s_reachable")
        assert finding["severity"] == "UNKNOWN"
        assert "KUBERNETES_IMPORTED=False" in proc.stderr
