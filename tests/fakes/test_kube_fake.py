"""The fake Kubernetes API server, exercised through the real `kubernetes` client over HTTP."""

from __future__ import annotations

import base64
import json
import os
import urllib.request

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from tests.fakes.kube.fixture import bypass_proxies, fake_kube, start_fake_kube  # noqa: F401  (pytest fixture)

MANAGER = "gardenctl"


def deployment(name="web", replicas=2, image="nginx:1.27", labels=None, namespace="default") -> dict:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"containers": [{"name": name, "image": image,
                                                       "ports": [{"containerPort": 80}]}]}}},
    }


def configmap(name, data=None, labels=None, namespace="default") -> dict:
    meta = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


@pytest.fixture
def dyn(fake_kube):
    return fake_kube.dynamic_client()


@pytest.fixture
def core(fake_kube):
    return client.CoreV1Api(fake_kube.api_client())


@pytest.fixture
def apps(fake_kube):
    return client.AppsV1Api(fake_kube.api_client())


def status_body(exc: ApiException) -> dict:
    return json.loads(exc.body)


# ----------------------------------------------------------------------------- wiring, discovery


def test_kubeconfig_points_at_plain_http_and_load_kube_config_works(fake_kube):
    kubeconfig = yaml.safe_load(open(fake_kube.kubeconfig_path))
    assert kubeconfig["current-context"] == "fake"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == fake_kube.url
    assert fake_kube.url.startswith("http://127.0.0.1:")

    # the fixture exports KUBECONFIG (for subprocesses, and for code that reads it at call time: the
    # client itself only reads KUBECONFIG once, when kubernetes.config is first imported)
    assert os.environ["KUBECONFIG"] == fake_kube.kubeconfig_path
    cfg = client.Configuration()
    config.load_kube_config(config_file=os.environ["KUBECONFIG"], client_configuration=cfg)
    assert cfg.host == fake_kube.url
    with client.ApiClient(cfg) as api_client:
        version = client.VersionApi(api_client).get_code()
        assert version.git_version == "v1.31.4+k3s1"
        assert (version.major, version.minor) == ("1", "31")
        _, active = config.list_kube_config_contexts(config_file=fake_kube.kubeconfig_path)
        assert active["name"] == "fake" and active["context"]["namespace"] == "default"
        names = [ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items]
        assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    assert fake_kube.requests_for("GET", r"^/api/v1/namespaces$")[0].headers["authorization"] == "Bearer fake-token"


def test_requests_without_the_token_get_401_status(fake_kube):
    with pytest.raises(urllib.request.HTTPError) as err:
        urllib.request.urlopen(f"{fake_kube.url}/api/v1/namespaces", timeout=5)
    assert err.value.code == 401
    assert json.loads(err.value.read()) == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                            "status": "Failure", "message": "Unauthorized",
                                            "reason": "Unauthorized", "code": 401}


def test_discovery_serves_every_kind_to_the_dynamic_client(fake_kube, dyn):
    expected = {  # kind: (apiVersion, plural, namespaced)
        "Namespace": ("v1", "namespaces", False), "ConfigMap": ("v1", "configmaps", True),
        "Secret": ("v1", "secrets", True), "Service": ("v1", "services", True),
        "ServiceAccount": ("v1", "serviceaccounts", True), "Node": ("v1", "nodes", False),
        "Pod": ("v1", "pods", True), "Deployment": ("apps/v1", "deployments", True),
        "StatefulSet": ("apps/v1", "statefulsets", True), "Job": ("batch/v1", "jobs", True),
        "EndpointSlice": ("discovery.k8s.io/v1", "endpointslices", True),
        "Ingress": ("networking.k8s.io/v1", "ingresses", True),
    }
    for kind, (api_version, plural, namespaced) in expected.items():
        resource = dyn.resources.get(kind=kind)
        assert (resource.group_version, resource.name, resource.namespaced) == (api_version, plural, namespaced)
    assert dyn.resources.get(kind="Node").verbs == ["get", "list"]
    assert "patch" in dyn.resources.get(api_version="apps/v1", kind="Deployment").verbs
    assert dyn.resources.get(short_names=["deploy"]).kind == "Deployment"
    assert dyn.version["kubernetes"]["gitVersion"] == "v1.31.4+k3s1"

    groups = client.ApisApi(fake_kube.api_client()).get_api_versions()
    assert sorted(g.name for g in groups.groups) == ["apps", "batch", "discovery.k8s.io", "networking.k8s.io"]
    resource_list = client.AppsV1Api(fake_kube.api_client()).get_api_resources()
    assert resource_list.group_version == "apps/v1"
    assert sorted(r.name for r in resource_list.resources) == ["deployments", "statefulsets"]


def test_seeded_nodes_have_ready_and_not_ready_status(core):
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert sorted(nodes) == ["garden-cp-1", "garden-worker-1", "garden-worker-2"]

    def ready(node):
        return next(c.status for c in node.status.conditions if c.type == "Ready")

    assert {name: ready(n) for name, n in nodes.items()} == {
        "garden-cp-1": "True", "garden-worker-1": "True", "garden-worker-2": "Unknown"}
    assert nodes["garden-cp-1"].metadata.labels["node-role.kubernetes.io/control-plane"] == "true"
    assert nodes["garden-cp-1"].status.node_info.kubelet_version == "v1.31.4+k3s1"
    assert [t.key for t in nodes["garden-worker-2"].spec.taints] == ["node.kubernetes.io/unreachable"] * 2
    assert core.read_node("garden-worker-1").status.addresses[0].address == "10.0.0.3"
    with pytest.raises(ApiException) as err:  # nodes are list/get only
        core.delete_node("garden-worker-2")
    assert err.value.status == 405
    system_pods = core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns").items
    assert [(p.status.phase, p.spec.node_name) for p in system_pods] == [("Running", "garden-cp-1")]


# ----------------------------------------------------------------------------- server-side apply


def test_server_side_apply_creates_then_updates(fake_kube, dyn):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    created = cms.server_side_apply(body=configmap("settings", {"a": "1", "b": "2"}), field_manager=MANAGER)
    request = fake_kube.requests[-1]
    assert (request.method, request.path) == ("PATCH", "/api/v1/namespaces/default/configmaps/settings")
    assert request.content_type == "application/apply-patch+yaml"
    assert request.query == {"fieldManager": MANAGER}
    assert request.status == 201
    assert created.data.to_dict() == {"a": "1", "b": "2"}
    rv1, uid = int(created.metadata.resourceVersion), created.metadata.uid
    assert len(uid) == 36 and created.metadata.creationTimestamp.endswith("Z")
    managed = created.metadata.managedFields
    assert [(m.manager, m.operation, m.apiVersion, m.fieldsType) for m in managed] == [
        (MANAGER, "Apply", "v1", "FieldsV1")]
    assert managed[0].fieldsV1.to_dict() == {"f:data": {"f:a": {}, "f:b": {}}}

    # drop "a", change "b", add "c": the field "a" this manager no longer applies is removed
    updated = cms.server_side_apply(body=configmap("settings", {"b": "two", "c": "3"}), field_manager=MANAGER)
    assert fake_kube.requests[-1].status == 200
    assert updated.data.to_dict() == {"b": "two", "c": "3"}
    assert int(updated.metadata.resourceVersion) > rv1
    assert updated.metadata.uid == uid
    assert updated.metadata.managedFields[0].fieldsV1.to_dict() == {"f:data": {"f:b": {}, "f:c": {}}}

    # re-applying the same configuration is a no-op: nothing written, resourceVersion unchanged
    again = cms.server_side_apply(body=configmap("settings", {"b": "two", "c": "3"}), field_manager=MANAGER)
    assert again.metadata.resourceVersion == updated.metadata.resourceVersion
    assert fake_kube.get_object("ConfigMap", "settings", "default")["data"] == {"b": "two", "c": "3"}


def test_apply_tracks_generation_and_keyed_lists(fake_kube, dyn):
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    first = deploys.server_side_apply(body=deployment(), field_manager=MANAGER)
    assert first.metadata.generation == 1
    container = first.spec.template.spec.containers[0]
    # server defaults, like the real API
    assert (container.imagePullPolicy, container.terminationMessagePath) == ("IfNotPresent", "/dev/termination-log")
    assert first.spec.strategy.rollingUpdate.maxSurge == "25%"
    assert first.spec.template.spec.containers[0].ports[0].protocol == "TCP"
    fields = first.metadata.managedFields[0].fieldsV1.to_dict()
    assert fields["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {},
                             "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}

    # label-only change: no generation bump
    labelled = deployment()
    labelled["metadata"]["labels"]["tier"] = "frontend"
    second = deploys.server_side_apply(body=labelled, field_manager=MANAGER)
    assert second.metadata.generation == 1
    assert second.metadata.labels.to_dict() == {"app": "web", "tier": "frontend"}

    # spec change: generation bumps; the sidecar from another manager survives (list merged by name)
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy:v1.31"}]}}}}
    third = deploys.server_side_apply(body=sidecar, field_manager="mesh-injector")
    assert third.metadata.generation == 2
    assert [c.name for c in third.spec.template.spec.containers] == ["web", "proxy"]
    assert sorted(m.manager for m in third.metadata.managedFields) == [MANAGER, "mesh-injector"]


def test_apply_conflicts_with_another_manager_unless_forced(fake_kube, dyn):
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deploys.server_side_apply(body=deployment(replicas=2), field_manager=MANAGER)
    with pytest.raises(ConflictError) as err:
        deploys.server_side_apply(body=deployment(replicas=5), field_manager="kubectl")
    assert err.value.status == 409
    body = status_body(err.value)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Conflict", 409)
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "gardenctl" using apps/v1: .spec.replicas'
    assert body["details"]["causes"][0]["field"] == ".spec.replicas"
    assert fake_kube.get_object("deploy", "web", "default")["spec"]["replicas"] == 2

    forced = deploys.server_side_apply(body=deployment(replicas=5), field_manager="kubectl", force_conflicts=True)
    assert fake_kube.requests[-1].query == {"fieldManager": "kubectl", "force": "true"}
    assert forced.spec.replicas == 5
    owners = {m.manager: m.fieldsV1.to_dict() for m in forced.metadata.managedFields}
    assert "f:replicas" in owners["kubectl"]["f:spec"]
    assert "f:replicas" not in owners[MANAGER]["f:spec"]


def test_apply_requires_field_manager_and_matching_kind(fake_kube, apps):
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", "default", deployment(),
                                         _content_type="application/apply-patch+yaml")
    assert err.value.status == 422
    assert "fieldManager: Required value" in status_body(err.value)["message"]
    wrong = deployment()
    wrong["apiVersion"] = "apps/v1beta1"
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", "default", wrong, field_manager=MANAGER,
                                         _content_type="application/apply-patch+yaml")
    assert err.value.status == 400
    assert fake_kube.objects("Deployment", "default") == []


def test_typed_client_apply_and_raw_yaml_apply(fake_kube, core, dyn):
    cm = core.patch_namespaced_config_map("typed", "default", configmap("typed", {"k": "v"}), field_manager=MANAGER,
                                          _content_type="application/apply-patch+yaml")
    assert cm.data == {"k": "v"}
    assert cm.metadata.managed_fields[0].manager == MANAGER
    assert json.loads(fake_kube.requests[-1].body) == configmap("typed", {"k": "v"})  # JSON sent as the YAML body

    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: raw\n  namespace: default\ndata:\n  port: '8080'\n"
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    raw = cms.server_side_apply(body=text, name="raw", namespace="default", field_manager=MANAGER)
    assert fake_kube.requests[-1].body == text.encode()  # a str body goes out verbatim
    assert raw.data.to_dict() == {"port": "8080"}


def test_dry_run_apply_and_delete_store_nothing(fake_kube, dyn):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    preview = cms.server_side_apply(body=configmap("preview", {"a": "1"}), field_manager=MANAGER, dry_run="All")
    assert fake_kube.requests[-1].query == {"fieldManager": MANAGER, "dryRun": "All"}
    assert preview.data.to_dict() == {"a": "1"} and preview.metadata.uid
    assert preview.metadata.resourceVersion is None  # a dry-run create has no resourceVersion
    assert fake_kube.get_object("ConfigMap", "preview", "default") is None
    with pytest.raises(NotFoundError):
        cms.get(name="preview", namespace="default")

    stored = cms.server_side_apply(body=configmap("preview", {"a": "1"}), field_manager=MANAGER)
    changed = cms.server_side_apply(body=configmap("preview", {"a": "2"}), field_manager=MANAGER, dry_run="All")
    assert changed.data.to_dict() == {"a": "2"}
    assert changed.metadata.resourceVersion == stored.metadata.resourceVersion
    assert fake_kube.get_object("ConfigMap", "preview", "default")["data"] == {"a": "1"}

    deleted = cms.delete(name="preview", namespace="default", dry_run="All")
    assert (deleted.kind, deleted.status) == ("Status", "Success")
    assert cms.get(name="preview", namespace="default").data.to_dict() == {"a": "1"}
    with pytest.raises(ApiException) as err:
        cms.server_side_apply(body=configmap("preview"), field_manager=MANAGER, dry_run="Some")
    assert err.value.status == 400


# ----------------------------------------------------------------------------- other verbs


def test_list_with_label_and_field_selectors(fake_kube, dyn, core):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    for name, labels in [("a", {"app": "web", "tier": "front"}), ("b", {"app": "web", "tier": "back"}),
                         ("c", {"app": "db"}), ("d", {})]:
        cms.create(body=configmap(name, {"n": name}, labels), namespace="default")

    def names(**kwargs):
        return [item.metadata.name for item in cms.get(namespace="default", **kwargs).items]

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app==web,tier!=front") == ["b"]
    assert names(label_selector="app in (web, db),tier notin (back)") == ["a", "c"]
    assert names(label_selector="tier") == ["a", "b"]
    assert names(label_selector="!app") == ["d", "kube-root-ca.crt"]
    assert names(field_selector="metadata.name=c") == ["c"]
    assert names(label_selector="app=web", field_selector="metadata.name!=a") == ["b"]

    listing = core.list_namespaced_config_map("default", label_selector="app", limit=2)
    assert listing.kind == "ConfigMapList" and [i.metadata.name for i in listing.items] == ["a", "b"]
    assert listing.items[0].kind is None  # like the real API: no kind/apiVersion on list items
    rest = core.list_namespaced_config_map("default", label_selector="app", _continue=listing.metadata._continue)
    assert [i.metadata.name for i in rest.items] == ["c"] and rest.metadata._continue is None
    everywhere = core.list_config_map_for_all_namespaces(field_selector="metadata.name=kube-root-ca.crt")
    assert sorted(i.metadata.namespace for i in everywhere.items) == [
        "default", "kube-node-lease", "kube-public", "kube-system"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", field_selector="data.n=a")
    assert err.value.status == 400


def test_create_conflict_and_delete_not_found_are_status_errors(fake_kube, core):
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="once"), data={"x": "1"})
    created = core.create_namespaced_config_map("default", body)
    assert created.metadata.managed_fields[0].manager == "OpenAPI-Generator"  # from the user agent
    assert created.metadata.managed_fields[0].operation == "Update"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", body)
    assert err.value.status == 409
    assert status_body(err.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps "once" already exists', "reason": "AlreadyExists",
        "details": {"name": "once", "kind": "configmaps"}, "code": 409}

    deleted = core.delete_namespaced_config_map("once", "default")
    assert deleted["status"] == "Success" and deleted["details"]["uid"] == created.metadata.uid
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("once", "default")
    assert err.value.status == 404
    assert status_body(err.value)["message"] == 'configmaps "once" not found'
    with pytest.raises(ApiException) as err:
        client.AppsV1Api(core.api_client).read_namespaced_deployment("nope", "default")
    assert (err.value.status, status_body(err.value)["message"]) == (404, 'deployments.apps "nope" not found')
    assert status_body(err.value)["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("missing-ns", body)
    assert (err.value.status, status_body(err.value)["message"]) == (404, 'namespaces "missing-ns" not found')


def test_replace_with_stale_resource_version_conflicts(core):
    cm = core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="rv"),
                                                                         data={"v": "1"}))
    cm.data = {"v": "2"}
    replaced = core.replace_namespaced_config_map("rv", "default", cm)
    assert int(replaced.metadata.resource_version) > int(cm.metadata.resource_version)
    cm.data = {"v": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("rv", "default", cm)
    assert err.value.status == 409
    assert "the object has been modified" in status_body(err.value)["message"]


def test_merge_and_strategic_merge_patch(fake_kube, apps):
    apps.create_namespaced_deployment("default", deployment())
    two = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.36"}]}}}}
    strategic = apps.patch_namespaced_deployment("web", "default", two)  # default: strategic merge for a dict
    assert fake_kube.requests[-1].content_type == "application/strategic-merge-patch+json"
    assert [c.name for c in strategic.spec.template.spec.containers] == ["web", "sidecar"]
    merged = apps.patch_namespaced_deployment("web", "default", two, _content_type="application/merge-patch+json")
    assert [c.name for c in merged.spec.template.spec.containers] == ["sidecar"]  # merge patch replaces lists
    assert merged.metadata.generation == 3
    json_patched = apps.patch_namespaced_deployment(
        "web", "default", [{"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert fake_kube.requests[-1].content_type == "application/json-patch+json"
    assert json_patched.spec.replicas == 4
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("ghost", "default", {"metadata": {"labels": {"a": "b"}}})
    assert err.value.status == 404


def test_validation_errors_are_422_invalid(dyn):
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    broken = deployment()
    broken["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as err:
        deploys.server_side_apply(body=broken, field_manager=MANAGER)
    body = status_body(err.value)
    assert (err.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith('Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value')
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    with pytest.raises(ApiException) as err:  # unquoted YAML number: the real server can't decode it
        cms.server_side_apply(body=configmap("numbers", {"port": 8080}), field_manager=MANAGER)
    assert err.value.status == 400


def test_secret_string_data_service_ip_and_namespace_lifecycle(fake_kube, dyn, core):
    ns = dyn.resources.get(api_version="v1", kind="Namespace")
    ns.server_side_apply(body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "garden"}},
                         field_manager=MANAGER)
    assert [sa.metadata.name for sa in core.list_namespaced_service_account("garden").items] == ["default"]
    secrets = dyn.resources.get(api_version="v1", kind="Secret")
    secret = secrets.server_side_apply(body={"apiVersion": "v1", "kind": "Secret",
                                             "metadata": {"name": "db", "namespace": "garden"},
                                             "stringData": {"password": "hunter2"}}, field_manager=MANAGER)
    assert base64.b64decode(secret.data.password) == b"hunter2"
    assert secret.type == "Opaque" and secret.stringData is None
    services = dyn.resources.get(api_version="v1", kind="Service")
    svc = services.server_side_apply(body={"apiVersion": "v1", "kind": "Service",
                                           "metadata": {"name": "web", "namespace": "garden"},
                                           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
                                     field_manager=MANAGER)
    assert svc.spec.clusterIP.startswith("10.43.") and svc.spec.ports[0].targetPort == 80
    assert svc.spec.type == "ClusterIP"

    gone = core.delete_namespace("garden")
    assert gone["status"]["phase"] == "Terminating"
    assert fake_kube.objects("Secret", "garden") == [] and fake_kube.objects("Service", "garden") == []
    with pytest.raises(ApiException) as err:
        core.read_namespace("garden")
    assert err.value.status == 404


# ----------------------------------------------------------------------------- workloads


def _rollout_view(apps, name="web"):
    d = apps.read_namespaced_deployment(name, "default")
    s = d.status
    return (d.metadata.generation, s.observed_generation, s.replicas, s.updated_replicas, s.ready_replicas,
            s.available_replicas)


def test_deployment_rollout_converges_after_two_gets(fake_kube, dyn, apps, core):
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    created = deploys.server_side_apply(body=deployment(replicas=3), field_manager=MANAGER)
    assert created.status.observedGeneration is None  # the controller has not seen it yet
    assert _rollout_view(apps) == (1, 1, None, None, None, None)  # GET 1: observed, nothing ready
    assert _rollout_view(apps) == (1, 1, 3, 3, 3, 3)  # GET 2: converged
    available = next(c for c in apps.read_namespaced_deployment("web", "default").status.conditions
                     if c.type == "Available")
    assert (available.status, available.reason) == ("True", "MinimumReplicasAvailable")
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    assert len(pods) == 3
    assert {(p.status.phase, p.status.container_statuses[0].ready) for p in pods} == {("Running", True)}
    assert all(p.spec.node_name in ("garden-cp-1", "garden-worker-1") for p in pods)  # never the NotReady node
    first_hash = pods[0].metadata.labels["pod-template-hash"]

    # a new image: the write response is stale, then observed-but-not-updated, then converged
    updated = deploys.server_side_apply(body=deployment(replicas=3, image="nginx:1.28"), field_manager=MANAGER)
    assert (updated.metadata.generation, updated.status.observedGeneration) == (2, 1)
    assert _rollout_view(apps) == (2, 2, 3, None, 3, 3)
    assert _rollout_view(apps) == (2, 2, 3, 3, 3, 3)
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    assert {p.spec.containers[0].image for p in pods} == {"nginx:1.28"}
    assert {p.metadata.labels["pod-template-hash"] for p in pods} != {first_hash}

    # scaling counts too; reads via LIST advance the rollout like GETs
    deploys.server_side_apply(body=deployment(replicas=1, image="nginx:1.28"), field_manager=MANAGER)
    apps.list_namespaced_deployment("default")
    listed = apps.list_namespaced_deployment("default").items[0]
    assert (listed.status.observed_generation, listed.status.ready_replicas) == (3, 1)
    assert len(core.list_namespaced_pod("default", label_selector="app=web").items) == 1


def test_ready_after_gets_is_configurable(fake_kube, dyn, apps):
    fake_kube.ready_after_gets = 0
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    ready = deploys.server_side_apply(body=deployment(replicas=2), field_manager=MANAGER)
    assert (ready.status.observedGeneration, ready.status.readyReplicas) == (1, 2)

    fake_kube.ready_after_gets = 2
    fake_kube.set_ready_after("Deployment", "slow", gets=4)
    deploys.server_side_apply(body=deployment("slow", replicas=1), field_manager=MANAGER)
    seen = [_rollout_view(apps, "slow")[4] for _ in range(4)]
    assert seen == [None, None, None, 1]


def test_never_ready_deployment_stays_unready(fake_kube, dyn, apps, core):
    fake_kube.set_never_ready("Deployment", "broken")
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deploys.server_side_apply(body=deployment("broken", replicas=2), field_manager=MANAGER)
    views = [_rollout_view(apps, "broken") for _ in range(6)]
    assert views[-1] == (1, 1, 2, 2, None, None)
    status = apps.read_namespaced_deployment("broken", "default").status
    assert status.unavailable_replicas == 2
    available = next(c for c in status.conditions if c.type == "Available")
    assert (available.status, available.reason) == ("False", "MinimumReplicasUnavailable")
    pods = core.list_namespaced_pod("default", label_selector="app=broken").items
    assert len(pods) == 2
    waiting = pods[0].status.container_statuses[0]
    assert (waiting.ready, waiting.state.waiting.reason, waiting.restart_count) == (False, "CrashLoopBackOff", 5)

    fake_kube.set_never_ready("Deployment", "broken", never=False)  # the fix lands: next read converges
    assert _rollout_view(apps, "broken") == (1, 1, 2, 2, 2, 2)


def test_statefulset_rollout_and_deleted_pod_is_recreated(fake_kube, dyn, core):
    sts = dyn.resources.get(api_version="apps/v1", kind="StatefulSet")
    body = deployment("db", replicas=2)
    body["kind"] = "StatefulSet"
    body["spec"]["serviceName"] = "db"
    sts.server_side_apply(body=body, field_manager=MANAGER)
    sts.get(name="db", namespace="default")
    status = sts.get(name="db", namespace="default").status
    assert (status.readyReplicas, status.availableReplicas, status.currentRevision == status.updateRevision) == (
        2, 2, True)
    assert [p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=db").items] == [
        "db-0", "db-1"]
    core.delete_namespaced_pod("db-1", "default")
    assert [p.metadata.name for p in core.list_namespaced_pod("default", label_selector="app=db").items] == [
        "db-0", "db-1"]
    changed = dict(body, spec=dict(body["spec"], serviceName="other"))
    with pytest.raises(ApiException) as err:
        sts.server_side_apply(body=changed, field_manager=MANAGER)
    assert err.value.status == 422 and "Forbidden: updates to statefulset spec" in status_body(err.value)["message"]


def test_jobs_complete_or_fail(fake_kube, dyn, core):
    jobs = dyn.resources.get(api_version="batch/v1", kind="Job")

    def job(name):
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                                               "containers": [{"name": "migrate", "image": "alpine:3.20"}]}}}}

    created = jobs.server_side_apply(body=job("migrate"), field_manager=MANAGER)
    assert created.spec.selector.matchLabels["batch.kubernetes.io/controller-uid"] == created.metadata.uid
    assert jobs.get(name="migrate", namespace="default").status.active == 1
    done = jobs.get(name="migrate", namespace="default").status
    assert done.succeeded == 1 and [c.type for c in done.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert [p.status.phase for p in core.list_namespaced_pod("default", label_selector="job-name=migrate").items] == [
        "Succeeded"]

    fake_kube.set_job_fails("bad")
    jobs.server_side_apply(body=job("bad"), field_manager=MANAGER)
    jobs.get(name="bad", namespace="default")
    failed = jobs.get(name="bad", namespace="default").status
    assert failed.failed == 7 and failed.conditions[-1].type == "Failed"
    assert failed.conditions[-1].reason == "BackoffLimitExceeded"

    invalid = job("always")
    invalid["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ApiException) as err:
        jobs.server_side_apply(body=invalid, field_manager=MANAGER)
    assert err.value.status == 422


def test_endpointslice_and_ingress(dyn):
    slices = dyn.resources.get(api_version="discovery.k8s.io/v1", kind="EndpointSlice")
    kubernetes_slice = slices.get(name="kubernetes", namespace="default")
    assert kubernetes_slice.endpoints[0].addresses == ["10.0.0.2"]
    ingresses = dyn.resources.get(api_version="networking.k8s.io/v1", kind="Ingress")
    rule = {"host": "garden.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "web", "port": {"number": 80}}}}]}}
    ing = ingresses.server_side_apply(body={"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                            "metadata": {"name": "web", "namespace": "default"},
                                            "spec": {"rules": [rule]}}, field_manager=MANAGER)
    assert ing.metadata.generation == 1 and ing.spec.rules[0].host == "garden.example"
    del rule["http"]["paths"][0]["pathType"]
    with pytest.raises(ApiException) as err:
        ingresses.server_side_apply(body={"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                          "metadata": {"name": "bad", "namespace": "default"},
                                          "spec": {"rules": [rule]}}, field_manager=MANAGER)
    assert err.value.status == 422


# ----------------------------------------------------------------------------- introspection, control


def test_request_log_objects_and_error_injection(fake_kube, core):
    fake_kube.clear_requests()
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="logged")))
    assert [(r.method, r.path, r.status) for r in fake_kube.requests] == [
        ("POST", "/api/v1/namespaces/default/configmaps", 201)]
    assert fake_kube.requests[0].json() == {"metadata": {"name": "logged"}}
    assert [o["metadata"]["name"] for o in fake_kube.objects("cm", "default")] == ["kube-root-ca.crt", "logged"]
    assert fake_kube.objects("ConfigMap", "default")[1]["kind"] == "ConfigMap"
    assert "deployments.apps" in fake_kube.stored()

    fake_kube.inject_error(r"/configmaps/logged$", 503, method="GET")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("logged", "default")
    assert (err.value.status, status_body(err.value)["reason"]) == (503, "ServiceUnavailable")
    assert core.read_namespaced_config_map("logged", "default").metadata.name == "logged"  # times=1


def test_start_fake_kube_outside_pytest_fixture(monkeypatch):
    bypass_proxies(monkeypatch)  # what the fixture does: the client honours HTTP(S)_PROXY, even for loopback
    with start_fake_kube(seed=False, ready_after_gets=0) as fake:
        api = client.CoreV1Api(fake.api_client())
        assert api.list_node().items == []
        assert [n.metadata.name for n in api.list_namespace().items] == [
            "default", "kube-node-lease", "kube-public", "kube-system"]
        url = fake.url
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/version", timeout=2)
