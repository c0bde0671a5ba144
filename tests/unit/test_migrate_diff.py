"""The diff between phases: field paths, create/update/delete/keep, server-owned fields ignored; the real renders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gardenctl.backends.kube import ObjectRef
from gardenctl.errors import ConfigError, PreconditionFailed
from gardenctl.ops.migrate.diff import CREATE, DELETE, KEEP, UNCHANGED, UPDATE, MAX_FIELDS, comparable, count, diff_rendered, field_changes, object_change
from gardenctl.ops.migrate.render import NEVER_PRUNED, Renderer, apply_order, find_manifests_dir, is_gardenos_owned

ROOT = Path(__file__).resolve().parents[2]
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")


def deploy(name: str, env_value: str = "1", replicas: int = 1) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "gardenos", "labels": {"app.kubernetes.io/part-of": "gardenos", "gardenos/phase-added": "1"}},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": name, "image": "img:1", "env": [{"name": "A", "value": env_value}], "ports": [{"containerPort": 80}]}]}},
        },
    }


def test_field_paths_name_list_items_by_their_name():
    assert field_changes(deploy("web", "1"), deploy("web", "2")) == ["spec.template.spec.containers[web].env[A].value"]
    assert field_changes(deploy("web", replicas=1), deploy("web", replicas=3)) == ["spec.replicas"]
    a, b = deploy("web"), deploy("web")
    b["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "B", "value": "x"})
    assert field_changes(a, b) == ["spec.template.spec.containers[web].env[B]"]
    b = deploy("web")
    b["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 81}]
    assert field_changes(a, b) == ["spec.template.spec.containers[web].ports[80]", "spec.template.spec.containers[web].ports[81]"]
    assert field_changes({"args": ["a", "b"]}, {"args": ["a", "c"]}) == ["args[1]"]
    assert field_changes({"args": ["a"]}, {"args": ["a", "c"]}) == ["args"]
    assert field_changes({"x": 1}, {"x": 1}) == []


def test_server_owned_fields_are_not_differences():
    live = deploy("web")
    live["metadata"].update({"resourceVersion": "42", "uid": "u", "generation": 3, "creationTimestamp": "t", "managedFields": [{"manager": "x"}],
                             "annotations": {"deployment.kubernetes.io/revision": "3"}})
    live["status"] = {"readyReplicas": 1}
    assert comparable(live) == comparable(deploy("web"))
    ref = ObjectRef.of(live)
    assert object_change(ref, live, deploy("web")).action == UNCHANGED
    assert object_change(ref, None, deploy("web")).action == CREATE
    changed = object_change(ref, live, deploy("web", "2"))
    assert changed.action == UPDATE and changed.fields == ("spec.template.spec.containers[web].env[A].value",)


def test_long_field_lists_are_cut():
    a = {f"k{i:02}": i for i in range(30)}
    b = {f"k{i:02}": i + 1 for i in range(30)}
    change = object_change(ObjectRef("v1", "ConfigMap", "ns", "c"), a, b)
    assert len(change.fields) == MAX_FIELDS + 1 and change.fields[-1] == f"... {30 - MAX_FIELDS} more"


def test_diff_rendered_orders_applies_and_keeps_claims():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gardenos"}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "gardenos"}}
    old = [ns, pvc, deploy("gone"), deploy("web", "1")]
    new = [deploy("web", "2"), deploy("added"), ns]
    changes = diff_rendered(old, new, never_pruned=NEVER_PRUNED)
    assert [(c.action, str(c.ref)) for c in changes] == [
        (UNCHANGED, "Namespace gardenos"),
        (CREATE, "Deployment gardenos/added"),
        (UPDATE, "Deployment gardenos/web"),
        (DELETE, "Deployment gardenos/gone"),
        (KEEP, "PersistentVolumeClaim gardenos/data"),
    ]
    assert "holds data" in changes[-1].note
    assert count(changes) == {CREATE: 1, UPDATE: 1, DELETE: 1, KEEP: 1, UNCHANGED: 1}


def test_apply_order_puts_namespaces_first_and_workloads_last():
    refs = [ObjectRef("apps/v1", "Deployment", "n", "a"), ObjectRef("v1", "ConfigMap", "n", "b"), ObjectRef("v1", "Namespace", None, "n"), ObjectRef("x/v1", "Widget", "n", "w")]
    assert [r.kind for r in apply_order(refs)] == ["Namespace", "ConfigMap", "Deployment", "Widget"]


def test_only_labelled_uncontrolled_objects_are_prunable():
    obj = deploy("web")
    assert is_gardenos_owned(obj)
    owned = deploy("web")
    owned["metadata"]["ownerReferences"] = [{"kind": "Service", "name": "web"}]
    assert not is_gardenos_owned(owned)  # e.g. an EndpointSlice the endpoint controller labelled like its Service
    secret = {"metadata": {"labels": {"app.kubernetes.io/part-of": "gardenos"}}}
    assert not is_gardenos_owned(secret)  # manifests/secrets objects carry no phase label
    assert not is_gardenos_owned({"metadata": {"labels": {"gardenos/phase-added": "1"}}})


# ------------------------------------------------------------------------------------------------ the real phases


@needs_kubectl
def test_real_phase_1_to_2_removes_postgrest_and_reroutes_kong():
    r = Renderer(find_manifests_dir(ROOT / "manifests"))
    changes = {(c.action, c.ref.kind, c.ref.name): c for c in diff_rendered(r.render(1).objects, r.render(2).objects, never_pruned=NEVER_PRUNED)}
    assert (DELETE, "Deployment", "rest") in changes and (DELETE, "Service", "rest") in changes
    fastapi = changes[(UPDATE, "Deployment", "fastapi")]
    assert fastapi.fields == ("spec.template.spec.containers[fastapi].env[SERVE_REST_V1].value",)
    kong = changes[(UPDATE, "Deployment", "kong")]
    assert kong.fields == ("spec.template.spec.volumes[config].configMap.name",)
    created = [k for k in changes if k[0] == CREATE]
    deleted_cm = [k for k in changes if k[0] == DELETE and k[1] == "ConfigMap"]
    assert len(created) == 1 and created[0][2].startswith("kong-config-")
    assert len(deleted_cm) == 1 and deleted_cm[0][2].startswith("kong-config-")


@needs_kubectl
def test_real_rollback_4_to_3_keeps_the_minio_claim():
    r = Renderer(find_manifests_dir(ROOT / "manifests"))
    changes = diff_rendered(r.render(4).objects, r.render(3).objects, never_pruned=NEVER_PRUNED)
    kept = [str(c.ref) for c in changes if c.action == KEEP]
    deleted = {str(c.ref) for c in changes if c.action == DELETE}
    assert kept == ["PersistentVolumeClaim gardenos/minio-data"]
    assert {"Deployment gardenos/minio", "Service gardenos/minio", "Job gardenos/minio-create-bucket", "ConfigMap gardenos/storage-s3"} <= deleted


@needs_kubectl
def test_every_phase_renders_and_every_object_carries_the_prune_labels():
    r = Renderer(find_manifests_dir(ROOT / "manifests"))
    assert r.phases() == (1, 2, 3, 4, 5)
    for n in r.phases():
        for obj in r.render(n).objects:
            assert is_gardenos_owned(obj), f"phase {n}: {ObjectRef.of(obj)} lacks the labels pruning relies on"


def test_unknown_phase_and_missing_kubectl_are_clear_errors(tmp_path):
    (tmp_path / "phases" / "phase-1").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"no phase 7 .*known: 1"):
        Renderer(tmp_path).render(7)
    with pytest.raises(PreconditionFailed, match="kubectl is not installed") as err:
        Renderer(tmp_path, kubectl="kubectl-that-does-not-exist").render(1)
    assert "kubectl >= 1.27" in (err.value.hint or "")
    with pytest.raises(ConfigError, match="no phases/ directory"):
        find_manifests_dir(tmp_path / "nowhere")


def test_kustomize_failure_names_the_phase(tmp_path):
    (tmp_path / "phases" / "phase-1").mkdir(parents=True)

    def runner(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "error: accumulating resources: missing.yaml: no such file\n")

    with pytest.raises(ConfigError, match=r"phase-1 failed: error: accumulating resources"):
        Renderer(tmp_path, kubectl=shutil.which("true") or "/bin/true", runner=runner).render(1)
