"""Against a real Kubernetes (K3s) cluster: only with GARDENCTL_TEST_KUBECONFIG set (skipped with a message otherwise).

GARDENCTL_TEST_KUBE_CONTEXT picks the context (default: the kubeconfig's current-context) and
GARDENCTL_TEST_KUBE_NAMESPACE the namespace for the one scratch ConfigMap the write test creates and deletes
(default: default). Nothing else is changed: the status layer is read-only, and the phases are only planned
(server-side dry run) - no phase is applied and no etcd key is written.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import pytest

from gardenctl.backends.kube import KubeClient, KubeReader, ObjectRef, read_kubeconfig
from gardenctl.ops.k3s_status import read_state

KUBECONFIG = os.environ.get("GARDENCTL_TEST_KUBECONFIG")
CONTEXT = os.environ.get("GARDENCTL_TEST_KUBE_CONTEXT") or None
NAMESPACE = os.environ.get("GARDENCTL_TEST_KUBE_NAMESPACE") or "default"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not KUBECONFIG, reason="GARDENCTL_TEST_KUBECONFIG is not set: the live Kubernetes tests need a kubeconfig of a test cluster"),
]


def test_status_layer_reads_the_real_api():
    endpoint = read_kubeconfig(KUBECONFIG, CONTEXT)
    if endpoint.uses_plugin and not endpoint.has_static_credentials:
        pytest.skip(f"context {endpoint.context} uses a credential plugin, which the status layer does not run")
    with KubeReader(endpoint, timeout_seconds=5) as reader:
        state = read_state(reader, namespace="gardenos", context=endpoint.context)
    assert state.version and state.version.startswith("v")
    assert state.nodes, "a cluster has at least one node"
    assert all(n.kubelet_version for n in state.nodes)


def test_client_apply_dry_run_and_delete_a_scratch_configmap():
    name = f"gardenctl-live-{secrets.token_hex(4)}"
    ref = ObjectRef("v1", "ConfigMap", NAMESPACE, name)
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE}, "data": {"probe": "1"}}
    with KubeClient(KUBECONFIG, CONTEXT, timeout_seconds=15) as kube:
        assert kube.server_version().startswith("v")
        dry = kube.apply(obj, dry_run=True)
        assert dry.result["data"] == {"probe": "1"} and kube.get(ref) is None
        try:
            kube.apply(obj)
            live = kube.get(ref)
            assert live["data"] == {"probe": "1"}
            assert any(m["manager"] == "gardenctl" and m["operation"] == "Apply" for m in live["metadata"]["managedFields"])
        finally:
            kube.delete(ref)
        assert kube.get(ref) is None


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_phase_1_plans_against_the_real_api(tmp_path):
    from datetime import datetime, timezone

    from gardenctl.ops.migrate import MigrateAdapters, plan_phase
    from gardenctl.ops.migrate.checks import CheckEnv
    from gardenctl.ops.migrate.render import Renderer
    from gardenctl.ops.migrate.state import PhaseStore
    from tests.unit.fakes_kv import FakeKV

    with KubeClient(KUBECONFIG, CONTEXT, timeout_seconds=15) as kube:
        playbooks = tmp_path / "pb"
        playbooks.mkdir()
        (playbooks / "phase-1.yaml").write_text("phase: 1\ntitle: live plan\n")
        adapters = MigrateAdapters(
            context="live",
            store=PhaseStore(FakeKV(), "live"),
            renderer=Renderer(ROOT / "manifests"),
            playbooks_dir=playbooks,
            checks=CheckEnv(context="live", namespace="gardenos", state_dir=tmp_path, now=datetime.now(timezone.utc), kube=kube),
            who="live-test",
            kube=kube,
        )
        plan = plan_phase(adapters, target=1)
    assert plan.live, plan.live_error
    dry = next(c for c in plan.preflight if c.name == "server-side apply dry run")
    assert dry.ok, dry.detail
