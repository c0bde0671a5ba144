"""manifests/: every phase renders with `kubectl kustomize`, every object passes the Kubernetes JSON schemas (strict:
no unknown fields), and the rules the phases promise hold (no analytics, probes and requests everywhere, secrets only
by reference, the database reached only through the bridge, what each phase adds and removes)."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
PHASES = (1, 2, 3, 4, 5)
K8S_VERSION = "1.32"  # K3s line the stack targets; kubernetes-validate picks the closest schema set

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: it renders the kustomize overlays")

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
POD_KINDS = WORKLOAD_KINDS | {"Job"}
SECRET_NAME = re.compile(r"(PASSWORD|PASS|SECRET|TOKEN|_KEY$|^KEY$|API_KEY|PRIVATE|DSN|DATABASE_URL|DB_URI|_URL$|_URI$)", re.I)
REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
BRIDGE_HOSTS = {"db-rw", "db-ro"}


def kustomize(path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@lru_cache(maxsize=None)
def _rendered(phase: int) -> tuple[str, ...]:
    return tuple(yaml.safe_dump(d, sort_keys=True) for d in kustomize(MANIFESTS / "phases" / f"phase-{phase}"))


def render(phase: int) -> list[dict[str, Any]]:
    return [yaml.safe_load(text) for text in _rendered(phase)]


def key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def names(objs: list[dict[str, Any]], kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in objs if o["kind"] == kind}


def by_name(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for o in objs:
        if key(o) == (kind, name):
            return o
    raise AssertionError(f"{kind}/{name} not rendered")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def containers(objs: list[dict[str, Any]], *, init: bool = True) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for o in objs:
        if o["kind"] in POD_KINDS:
            spec = pod_spec(o)
            for c in spec.get("containers", []) + (spec.get("initContainers", []) if init else []):
                yield o, c


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def kong_config(objs: list[dict[str, Any]]) -> dict[str, Any]:
    cms = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("kong-config-")]
    assert len(cms) == 1, [o["metadata"]["name"] for o in cms]
    return yaml.safe_load(cms[0]["data"]["kong.yml"])


def kong_route(objs: list[dict[str, Any]], path: str) -> str:
    """The upstream URL of the kong service whose route has exactly this path."""
    for svc in kong_config(objs)["services"]:
        for route in svc.get("routes", []):
            if path in route.get("paths", []):
                return svc["url"]
    raise AssertionError(f"no kong route for {path}")


# --------------------------------------------------------------------------------------------- render + schema


@needs_kubectl
@pytest.mark.parametrize("phase", PHASES)
def test_phase_renders_and_every_object_passes_the_kubernetes_schema(phase):
    import kubernetes_validate

    objs = render(phase)
    assert len(objs) >= 20
    problems = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problems.append(f"{obj['kind']}/{obj['metadata'].get('name')}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{obj['kind']}/{obj['metadata'].get('name')}: {exc.message}")
    assert not problems, "\n".join(problems)


@needs_kubectl
def test_the_schema_check_catches_a_broken_object():
    """Guard against a validator that accepts anything: strict mode must refuse a typo'd field."""
    import kubernetes_validate

    deployment = by_name(render(1), "Deployment", "kong")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = broken["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    wrong_type = yaml.safe_load(yaml.safe_dump(deployment))
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, K8S_VERSION, strict=True)


@needs_kubectl
@pytest.mark.parametrize("phase", PHASES)
def test_every_object_is_labelled_and_namespaced(phase):
    for obj in render(phase):
        labels = obj["metadata"].get("labels", {})
        where = "/".join(key(obj))
        assert labels.get("app.kubernetes.io/part-of") == "gardenos", where
        assert labels.get("app.kubernetes.io/name"), where
        assert labels.get("gardenos/phase-added") in {"1", "2", "3", "4", "5"}, where
        assert int(labels["gardenos/phase-added"]) <= phase, where
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "gardenos", where
        if obj["kind"] in POD_KINDS:
            assert obj["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/part-of") == "gardenos", where


@needs_kubectl
@pytest.mark.parametrize("phase", PHASES)
def test_images_are_pinned(phase):
    for obj, c in containers(render(phase)):
        image = c["image"]
        assert ":" in image.rsplit("/", 1)[-1], f"{key(obj)} {c['name']}: {image} has no tag"
        assert not image.endswith((":latest", ":latest-dev")), f"{key(obj)}: {image} is not pinned"


# --------------------------------------------------------------------------------------------- no analytics


ANALYTICS = re.compile(r"logflare|analytics|timberio|\bvector\b", re.I)


@needs_kubectl
@pytest.mark.parametrize("phase", PHASES)
def test_no_analytics_logflare_or_vector_anywhere(phase):
    for text in _rendered(phase):
        match = ANALYTICS.search(text)
        assert match is None, f"phase {phase} mentions {match.group(0)!r}:\n{text[:400]}"


@needs_kubectl
@pytest.mark.parametrize("phase", (1, 2, 3, 4))
def test_studio_runs_with_its_log_features_off(phase):
    studio = pod_spec(by_name(render(phase), "Deployment", "studio"))["containers"][0]
    env = env_of(studio)
    assert env["NEXT_PUBLIC_ENABLE_LOGS"]["value"] == "false"
    assert env["ENABLED_FEATURES_LOGS_ALL"]["value"] == "false"
    assert not any(name.startswith("LOGFLARE") for name in env)


# --------------------------------------------------------------------------------------------- containers


@needs_kubectl
@pytest.mark.parametrize("phase", PHASES)
def test_every_container_has_probes_and_resource_requests(phase):
    missing = []
    for obj, c in containers(render(phase)):
        where = f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"
        requests = c.get("resources", {}).get("requests", {})
        if not (requests.get("cpu") and requests.get("memory")):
            missing.append(f"{where}: resource requests (cpu and memory)")
        if not c.get("resources", {}).get("limits", {}).get("memory"):
            missing.append(f"{where}: memory limit")
        is_init = c in pod_spec(obj).get("initContainers", [])
        if obj["kind"] in WORKLOAD_KINDS and not is_init:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    missing.append(f"{where}: {probe}")
    assert not missing, "\n".join(missing)


@needs_kubectl
@pytest.mark.parametrize("phase", PHASES)
def test_env_references_point_at_variables_defined_before_them(phase):
    for obj, c in containers(render(phase)):
        seen: set[str] = set()
        for e in c.get("env", []):
            for ref in REF.findall(e.get("value", "")):
                assert ref in seen, f"{key(obj)} {c['name']}: {e['name']} uses $({ref}) before it is defined"
            seen.add(e["name"])


# --------------------------------------------------------------------------------------------- secrets


def _secret_literals(objs: list[dict[str, Any]]) -> list[str]:
    found = []
    for obj, c in containers(objs):
        for e in c.get("env", []):
            if "value" not in e or not SECRET_NAME.search(e["name"]):
                continue
            value = str(e["value"])
            # URLs are allowed when every credential in them is a $(reference) to a Secret-backed variable.
            userinfo = re.match(r"^[a-z][a-z0-9+.-]*://([^@/]*)@", value)
            if userinfo:
                password = userinfo.group(1).partition(":")[2]
                if password and not REF.fullmatch(password):
                    found.append(f"{key(obj)} {c['name']}: {e['name']} has an inline password")
                continue
            if value.startswith(("http://", "https://")) or value in ("", "false", "true"):
                continue
            if e["name"] in ("PGRST_DB_ANON_ROLE",):
                continue
            found.append(f"{key(obj)} {c['name']}: {e['name']}={value[:12]}... looks like an inline secret")
    return found


@needs_kubectl
@pytest.mark.parametrize("phase", PHASES)
def test_no_secret_values_inline(phase):
    objs = render(phase)
    assert names(objs, "Secret") == set(), "Secrets are created from manifests/secrets, never part of a phase"
    assert _secret_literals(objs) == []
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for _, c in containers(objs)
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert ("supabase-jwt", "secret") in refs
    assert {k for n, k in refs if n == "gardenos-db"} >= {"supabase-password", "app-password"}


def test_the_inline_secret_check_can_fail():
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"template": {"spec": {"containers": [{"name": "x", "env": [
            {"name": "GOTRUE_JWT_SECRET", "value": "super-secret-value"},
            {"name": "DATABASE_URL", "value": "postgres://app:hunter2@db-rw:5432/postgres"},
            {"name": "OK_URL", "value": "postgres://app:$(DB_PASSWORD)@db-rw:5432/postgres"},
        ]}]}}},
    }
    assert len(_secret_literals([deployment])) == 2


def test_secrets_kit_has_no_real_values_committed_and_renders(tmp_path):
    secrets_dir = MANIFESTS / "secrets"
    tracked = subprocess.run(["git", "ls-files", str(secrets_dir)], capture_output=True, text=True, cwd=ROOT).stdout.split()
    assert not [f for f in tracked if f.endswith(".env")], f"real env files are tracked by git: {tracked}"
    assert "*.env" in (secrets_dir / ".gitignore").read_text()
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    import kubernetes_validate

    shutil.copy(secrets_dir / "kustomization.yaml", tmp_path)
    for example in secrets_dir.glob("*.env.example"):
        shutil.copy(example, tmp_path / example.name.removesuffix(".example"))
    secrets = kustomize(tmp_path)
    assert {s["metadata"]["name"] for s in secrets} == {
        "supabase-jwt", "gardenos-db", "gardenos-dashboard", "supabase-realtime", "supabase-meta", "kratos", "minio", "storage-s3",
    }
    for s in secrets:
        kubernetes_validate.validate(s, K8S_VERSION, strict=True)
    # Every key a phase references exists in the kit (the optional SMTP secret aside).
    have = {(s["metadata"]["name"], k) for s in secrets for k in s["data"]}
    for phase in PHASES:
        for obj, c in containers(render(phase)):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    assert (ref["name"], ref["key"]) in have, f"phase {phase} {key(obj)}: {ref} is not in manifests/secrets"


def test_make_env_files_writes_signed_api_keys(tmp_path):
    import base64
    import hashlib
    import hmac
    import json
    import runpy

    module = runpy.run_path(str(MANIFESTS / "secrets" / "make-env-files"))
    assert module["main"](["--dir", str(tmp_path)]) == 0
    values = dict(line.split("=", 1) for line in (tmp_path / "supabase-jwt.env").read_text().splitlines())
    for field, role in (("anon-key", "anon"), ("service-key", "service_role")):
        head, payload, signature = values[field].split(".")
        expected = hmac.new(values["secret"].encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
        assert base64.urlsafe_b64decode(signature + "==") == expected
        assert json.loads(base64.urlsafe_b64decode(payload + "=="))["role"] == role
    assert oct((tmp_path / "gardenos-db.env").stat().st_mode & 0o777) == "0o600"
    before = (tmp_path / "gardenos-db.env").read_text()
    module["main"](["--dir", str(tmp_path)])
    assert (tmp_path / "gardenos-db.env").read_text() == before, "re-running must not rotate existing secrets"
    for line in before.splitlines():
        assert re.fullmatch(r"[a-z-]+=[A-Za-z0-9_-]{32}", line), line


# --------------------------------------------------------------------------------------------- the bridge


def _db_hosts(objs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(where, variable, host) for every database connection setting in the rendered containers."""
    out = []
    for obj, c in containers(objs):
        env = env_of(c)
        where = f"{obj['metadata']['name']}/{c['name']}"
        for name, e in env.items():
            value = str(e.get("value", ""))
            if re.match(r"^postgres(ql)?://", value):
                out.append((where, name, re.match(r"^postgres(ql)?://[^@]*@([^:/?]+)", value).group(2)))
            elif name in ("DB_HOST", "PG_META_DB_HOST", "POSTGRES_HOST", "PGHOST"):
                out.append((where, name, value))
    return out


@needs_kubectl
@pytest.mark.parametrize("phase", PHASES)
def test_every_database_connection_goes_through_the_bridge(phase):
    objs = render(phase)
    hosts = _db_hosts(objs)
    assert len(hosts) >= 4
    bad = [h for h in hosts if h[2] not in BRIDGE_HOSTS]
    assert not bad, bad
    # Writers use the read-write service; only the backend's explicit read-only URL uses db-ro.
    ro = [(where, name) for where, name, host in hosts if host == "db-ro"]
    assert ro == [("fastapi/fastapi", "DATABASE_RO_URL")]
    bridge = {o["metadata"]["name"]: o for o in objs if o["kind"] in ("Service", "EndpointSlice") and o["metadata"]["labels"].get("app.kubernetes.io/name") == "db-bridge"}
    assert {"db-rw", "db-ro"} <= set(bridge)
    for svc in ("db-rw", "db-ro"):
        assert "selector" not in bridge[svc]["spec"], "bridge services must be selector-less"
        slices = [o for o in objs if o["kind"] == "EndpointSlice" and o["metadata"]["labels"].get("kubernetes.io/service-name") == svc]
        assert slices and all(s["ports"][0]["name"] == bridge[svc]["spec"]["ports"][0]["name"] for s in slices)


def test_the_bridge_check_can_fail():
    objs = [{"kind": "Deployment", "metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [{"name": "x", "env": [
        {"name": "DATABASE_URL", "value": "postgres://u:$(P)@10.0.0.11:5000/postgres"},
        {"name": "DB_HOST", "value": "db-rw"},
    ]}]}}}}]
    assert [h[2] for h in _db_hosts(objs)] == ["10.0.0.11", "db-rw"]


def test_committed_bridge_example_is_what_the_renderer_produces():
    from gardenctl.bridge import render_db_bridge

    committed = [d for d in yaml.safe_load_all((MANIFESTS / "base" / "db-bridge" / "db-bridge.yaml").read_text()) if d]
    expected = render_db_bridge("gardenos", [("db-1", "10.0.0.11"), ("db-2", "10.0.0.12"), ("db-3", "10.0.0.13")], 5000, 5001)
    assert committed == expected, "regenerate it: see manifests/base/db-bridge/README.md"


# --------------------------------------------------------------------------------------------- phases


@needs_kubectl
def test_phase_1_is_supabase_minus_analytics_with_the_backend():
    objs = render(1)
    assert names(objs, "Deployment") == {"kong", "auth", "rest", "realtime", "storage", "meta", "studio", "fastapi"}
    assert kong_route(objs, "/rest/v1/").startswith("http://rest.")
    assert kong_route(objs, "/auth/v1/").startswith("http://auth.")
    assert kong_route(objs, "/api/v1/").startswith("http://fastapi.")
    paths = {p for s in kong_config(objs)["services"] for r in s.get("routes", []) for p in r["paths"]}
    assert not any("analytics" in p for p in paths)
    storage = pod_spec(by_name(objs, "Deployment", "storage"))["containers"][0]
    assert env_of(storage)["STORAGE_BACKEND"]["value"] == "file"


@needs_kubectl
def test_phase_2_routes_rest_to_fastapi_and_drops_postgrest():
    objs = render(2)
    assert "rest" not in names(objs, "Deployment") and "rest" not in names(objs, "Service")
    assert not any("postgrest/postgrest" in c["image"] for _, c in containers(objs))
    assert kong_route(objs, "/rest/v1/") == "http://fastapi.gardenos.svc.cluster.local:8000/rest/v1/"
    assert not any("rest.gardenos" in s["url"] for s in kong_config(objs)["services"])
    fastapi = pod_spec(by_name(objs, "Deployment", "fastapi"))["containers"][0]
    assert env_of(fastapi)["SERVE_REST_V1"]["value"] == "true"


@needs_kubectl
def test_phase_3_replaces_gotrue_with_kratos():
    objs = render(3)
    images = [c["image"] for _, c in containers(objs)]
    assert any(i.startswith("oryd/kratos:") for i in images)
    assert not any(i.startswith("supabase/gotrue") for i in images)
    assert "auth" not in names(objs, "Deployment") | names(objs, "Service")
    assert kong_route(objs, "/auth/v1/").startswith("http://kratos.gardenos.svc.cluster.local:4433")
    assert not any(s["url"].startswith("http://auth.") for s in kong_config(objs)["services"])
    fastapi = env_of(pod_spec(by_name(objs, "Deployment", "fastapi"))["containers"][0])
    assert fastapi["AUTH_PROVIDER"]["value"] == "kratos" and "GOTRUE_URL" not in fastapi
    kratos = pod_spec(by_name(objs, "Deployment", "kratos"))
    assert [c["name"] for c in kratos["initContainers"]] == ["kratos-migrate"]
    assert by_name(objs, "Deployment", "kratos")["metadata"]["labels"]["gardenos/phase-added"] == "3"


@needs_kubectl
def test_phase_4_storage_points_at_minio():
    objs = render(4)
    storage = pod_spec(by_name(objs, "Deployment", "storage"))
    env = env_of(storage["containers"][0])
    assert env["STORAGE_BACKEND"]["value"] == "s3"
    assert "FILE_STORAGE_BACKEND_PATH" not in env
    assert storage["containers"][0]["envFrom"] == [{"configMapRef": {"name": "storage-s3"}}]
    assert not storage.get("volumes")
    s3 = by_name(objs, "ConfigMap", "storage-s3")["data"]
    assert s3["GLOBAL_S3_ENDPOINT"] == "http://minio:9000"
    assert {"minio"} <= names(objs, "Deployment") and {"minio"} <= names(objs, "Service")
    assert "minio-create-bucket" in names(objs, "Job")
    assert by_name(objs, "PersistentVolumeClaim", "storage-data")["metadata"]["annotations"]["gardenos/retired-in-phase"] == "4"


@needs_kubectl
def test_phase_4_with_an_external_s3_endpoint(tmp_path):
    import os

    rel = lambda p: os.path.relpath(p, tmp_path)  # noqa: E731 - kustomize refuses absolute paths
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{rel(MANIFESTS / 'phases' / 'phase-4')}]\ncomponents: [{rel(MANIFESTS / 'components' / 'external-s3')}]\n"
    )
    objs = kustomize(tmp_path)
    assert "minio" not in names(objs, "Deployment") | names(objs, "Service")
    assert not names(objs, "Job")
    assert by_name(objs, "ConfigMap", "storage-s3")["data"]["GLOBAL_S3_ENDPOINT"].startswith("https://")


@needs_kubectl
def test_phase_5_has_the_admin_panel_and_no_studio_or_meta():
    objs = render(5)
    deployments = names(objs, "Deployment")
    assert "admin-panel" in deployments and not {"studio", "meta"} & deployments
    assert not {"studio", "meta"} & names(objs, "Service")
    assert not any(c["image"].startswith(("supabase/studio", "supabase/postgres-meta")) for _, c in containers(objs))
    assert kong_route(objs, "/").startswith("http://admin-panel.")
    assert not any("/pg/" in r["paths"] for s in kong_config(objs)["services"] for r in s.get("routes", []))


@needs_kubectl
@pytest.mark.parametrize("phase", (2, 3, 4, 5))
def test_each_phase_builds_on_the_previous_one(phase):
    """Objects a phase neither adds nor deletes on purpose are carried over; the diff is only the phase's change."""
    before = {key(o): o for o in render(phase - 1)}
    after = {key(o): o for o in render(phase)}
    strip = lambda ks: {k for k in ks if not k[1].startswith("kong-config-")}  # noqa: E731
    expected_deleted = {
        2: {("Deployment", "rest"), ("Service", "rest")},
        3: {("Deployment", "auth"), ("Service", "auth")},
        4: set(),
        5: {("Deployment", "studio"), ("Service", "studio"), ("Deployment", "meta"), ("Service", "meta")},
    }[phase]
    assert strip(before.keys() - after.keys()) == expected_deleted
    for k in strip(after.keys() - before.keys()):
        assert after[k]["metadata"]["labels"]["gardenos/phase-added"] == str(phase), k
    unchanged = {k for k in before.keys() & after.keys() if before[k] == after[k]}
    assert ("Service", "db-rw") in unchanged and ("Namespace", "gardenos") in unchanged
