"""The Kubernetes adapters: kubeconfig parsing, the light httpx reader (token, client certificates over real TLS,
plugins refused) and the kubernetes-client adapter against the fake API server (errors translated, dry runs)."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from gardenctl.backends.kube import KubeApplyConflict, KubeAuthUnsupported, KubeClient, KubeReader, ObjectRef, read_kubeconfig
from gardenctl.errors import BackendError, BackendUnreachable, ConfigError, ExitCode
from tests.fakes.kube.fixture import fake_kube  # noqa: F401  (fixture)


def kubeconfig(tmp_path: Path, cluster: dict, user: dict, *, name: str = "c", current: str | None = "c", extra_contexts=()) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "gardenos"}}, *extra_contexts],
    }
    if current:
        doc["current-context"] = current
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


# ------------------------------------------------------------------------------------------------ kubeconfig


def test_read_kubeconfig_token_and_relative_files(tmp_path):
    path = kubeconfig(tmp_path, {"server": "https://10.0.0.2:6443/", "certificate-authority": "ca.crt", "tls-server-name": "k3s"}, {"tokenFile": "tok", "client-key": "/abs/key"})
    ep = read_kubeconfig(path)
    assert ep.context == "c" and ep.server == "https://10.0.0.2:6443" and ep.namespace == "gardenos"
    assert ep.ca_file == str(tmp_path / "ca.crt") and ep.token_file == str(tmp_path / "tok") and ep.client_key_file == "/abs/key"
    assert ep.tls_server_name == "k3s" and not ep.uses_plugin
    assert "token" not in repr(kubeconfig) and "secret" not in repr(ep)


def test_read_kubeconfig_data_fields_are_decoded(tmp_path):
    data = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    ep = read_kubeconfig(kubeconfig(tmp_path, {"server": "https://x:6443", "certificate-authority-data": data}, {"client-certificate-data": data, "client-key-data": data, "token": "t0k"}))
    assert ep.ca_data.startswith(b"-----BEGIN") and ep.client_cert_data == ep.ca_data and ep.token == "t0k"
    assert "t0k" not in repr(ep)


@pytest.mark.parametrize(
    "cluster, user, context, message",
    [
        ({"server": "https://x"}, {}, "other", "the kubeconfig has no context named 'other'"),
        ({"server": "ftp://x"}, {}, None, "has no http(s) server URL"),
        ({"server": "https://x", "certificate-authority-data": "%%%"}, {}, None, "certificate-authority-data is not valid base64"),
    ],
)
def test_read_kubeconfig_errors(tmp_path, cluster, user, context, message):
    with pytest.raises(ConfigError) as err:
        read_kubeconfig(kubeconfig(tmp_path, cluster, user), context)
    assert message in err.value.message


def test_read_kubeconfig_missing_file_and_no_context(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_kubeconfig(tmp_path / "none")
    with pytest.raises(ConfigError, match="no context given and no current-context"):
        read_kubeconfig(kubeconfig(tmp_path, {"server": "https://x"}, {}, current=None))
    (tmp_path / "bad").write_text("clusters: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_kubeconfig(tmp_path / "bad")


@pytest.mark.parametrize("user", [{"exec": {"command": "aws", "args": ["eks", "get-token"]}}, {"auth-provider": {"name": "oidc"}}])
def test_credential_plugins_are_refused_by_the_light_reader(tmp_path, user):
    ep = read_kubeconfig(kubeconfig(tmp_path, {"server": "https://x:6443"}, user))
    with pytest.raises(KubeAuthUnsupported) as err:
        KubeReader(ep)
    assert "gardenctl status does not run" in err.value.message and "kubectl" in (err.value.hint or "")
    assert err.value.exit_code == ExitCode.CONFIG


# ------------------------------------------------------------------------------------------------ light reader vs the fake


def test_reader_lists_nodes_with_the_token(fake_kube):
    with KubeReader(read_kubeconfig(fake_kube.kubeconfig_path)) as reader:
        nodes = reader.get("/api/v1/nodes")
        assert sorted(n["metadata"]["name"] for n in nodes["items"]) == ["garden-cp-1", "garden-worker-1", "garden-worker-2"]
        assert reader.get("/version")["gitVersion"] == "v1.31.4+k3s1"
        with pytest.raises(BackendError) as err:
            reader.get("/apis/apps/v1/namespaces/default/deployments/none")
        assert err.value.status == 404 and 'deployments.apps "none" not found' in err.value.message
    assert fake_kube.requests and all(r.headers.get("authorization") == "Bearer fake-token" for r in fake_kube.requests)


def test_reader_wrong_token_and_down_server(fake_kube, tmp_path):
    path = kubeconfig(tmp_path, {"server": fake_kube.url}, {"token": "wrong"})
    with KubeReader(read_kubeconfig(path)) as reader:
        with pytest.raises(BackendError) as err:
            reader.get("/api/v1/nodes")
    assert err.value.status == 401 and "did not accept the credentials" in (err.value.hint or "")
    url = fake_kube.url
    fake_kube.stop()
    with KubeReader(read_kubeconfig(kubeconfig(tmp_path, {"server": url}, {"token": "t"})), timeout_seconds=1) as reader:
        with pytest.raises(BackendUnreachable, match="connection refused"):
            reader.get("/api/v1/nodes")


# ------------------------------------------------------------------------------------------------ light reader over real TLS


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _pki(d: Path) -> dict[str, bytes]:
    """A K3s-like PKI made with the openssl CLI: a CA, the API serving certificate for 127.0.0.1, a client
    certificate signed by the CA (what K3s puts into k3s.yaml), and an unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}_key.pem", "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN={ca}",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, cn, ext in (("server", "k3s", "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"), ("client", "system:admin", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")):
        _openssl("req", *ec, "-keyout", f"{name}_key.pem", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        (d / f"{name}.cnf").write_text(ext)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca_key.pem", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.cnf", cwd=d)
    return {k: (d / f"{k}.pem").read_bytes() for k in ("ca", "other_ca", "server", "server_key", "client", "client_key")}


@pytest.fixture
def tls_api(tmp_path):
    """A loopback HTTPS server that demands a client certificate signed by the CA, like K3s' API server."""
    pki = _pki(tmp_path)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            peer = self.connection.getpeercert()
            cn = dict(x[0] for x in peer["subject"])["commonName"]
            body = json.dumps({"kind": "NodeList", "items": [{"metadata": {"name": "garden-cp-1"}}], "user": cn}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server_key.pem")
    ctx.load_verify_locations(tmp_path / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", pki, tmp_path
    server.shutdown()
    server.server_close()


def test_reader_client_certificate_data_like_a_k3s_kubeconfig(tls_api, tmp_path):
    url, pki, _ = tls_api
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    kc = tmp_path / "k"
    kc.mkdir()
    path = kubeconfig(kc, {"server": url, "certificate-authority-data": b64(pki["ca"])}, {"client-certificate-data": b64(pki["client"]), "client-key-data": b64(pki["client_key"])})
    with KubeReader(read_kubeconfig(path)) as reader:
        doc = reader.get("/api/v1/nodes")
    assert doc["user"] == "system:admin" and doc["items"][0]["metadata"]["name"] == "garden-cp-1"


def test_reader_certificate_files_and_a_wrong_ca(tls_api, tmp_path):
    url, pki, certs = tls_api
    kc = tmp_path / "k"
    kc.mkdir()
    path = kubeconfig(kc, {"server": url, "certificate-authority": str(certs / "ca.pem")}, {"client-certificate": str(certs / "client.pem"), "client-key": str(certs / "client_key.pem")})
    with KubeReader(read_kubeconfig(path)) as reader:
        assert reader.get("/api/v1/nodes")["user"] == "system:admin"
    wrong = kubeconfig(kc, {"server": url, "certificate-authority-data": base64.b64encode(pki["other_ca"]).decode()}, {"client-certificate": str(certs / "client.pem"), "client-key": str(certs / "client_key.pem")})
    with KubeReader(read_kubeconfig(wrong)) as reader:
        with pytest.raises(BackendUnreachable, match="TLS error"):
            reader.get("/api/v1/nodes")
    missing = kubeconfig(kc, {"server": url}, {"client-certificate": "nope.pem", "client-key": "nope.key"})
    with pytest.raises(ConfigError, match="cannot load its certificates"):
        KubeReader(read_kubeconfig(missing))


# ------------------------------------------------------------------------------------------------ kubernetes client vs the fake


def cm(name: str, value: str = "1", **labels) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "labels": {"app.kubernetes.io/part-of": "gardenos", **labels}}, "data": {"k": value}}


def test_client_apply_get_list_delete(fake_kube):
    with KubeClient(fake_kube.kubeconfig_path, "fake") as kube:
        assert kube.server == fake_kube.url
        assert kube.get(ObjectRef("v1", "ConfigMap", "default", "a")) is None
        dry = kube.apply(cm("a"), dry_run=True)
        assert dry.result["data"] == {"k": "1"} and kube.get(ObjectRef("v1", "ConfigMap", "default", "a")) is None
        kube.apply(cm("a"))
        kube.apply(cm("b", other="x"))
        live = kube.get(ObjectRef("v1", "ConfigMap", "default", "a"))
        assert live["data"] == {"k": "1"}
        assert [m["manager"] for m in live["metadata"]["managedFields"]] == ["gardenctl"]
        listed = kube.list("v1", "ConfigMap", "default", label_selector="app.kubernetes.io/part-of=gardenos")
        assert [(o["kind"], o["apiVersion"], o["metadata"]["name"]) for o in listed] == [("ConfigMap", "v1", "a"), ("ConfigMap", "v1", "b")]
        assert [o["metadata"]["name"] for o in kube.list("v1", "ConfigMap", "default", label_selector="other=x")] == ["b"]
        assert kube.delete(ObjectRef("v1", "ConfigMap", "default", "a"), dry_run=True) is True
        assert kube.get(ObjectRef("v1", "ConfigMap", "default", "a")) is not None
        assert kube.delete(ObjectRef("v1", "ConfigMap", "default", "a")) is True
        assert kube.delete(ObjectRef("v1", "ConfigMap", "default", "a")) is False
    patches = fake_kube.requests_for("PATCH", r"/configmaps/")
    assert len(patches) == 3 and all(r.query.get("fieldManager") == "gardenctl" for r in patches)
    assert patches[0].query.get("dryRun") == "All" and "dryRun" not in patches[1].query
    assert patches[0].content_type.startswith("application/apply-patch+yaml")


def test_client_conflict_unserved_kind_and_api_errors(fake_kube):
    with KubeClient(fake_kube.kubeconfig_path, "fake") as kube:
        kube.apply(cm("c", "1"))
        other = KubeClient(fake_kube.kubeconfig_path, "fake", field_manager="kubectl")
        try:
            with pytest.raises(KubeApplyConflict) as err:
                other.apply(cm("c", "2"))
            assert err.value.status == 409 and "--force-conflicts" in (err.value.hint or "")
            assert other.apply(cm("c", "2"), force_conflicts=True).result["data"] == {"k": "2"}
        finally:
            other.close()
        with pytest.raises(BackendError, match="does not serve this kind"):
            kube.apply({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "default"}})
        with pytest.raises(BackendError) as err:
            kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name", "namespace": "default"}})
        assert err.value.status == 422 and "Bad_Name" in err.value.message


def test_client_configuration_and_transport_errors(fake_kube, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        KubeClient(str(tmp_path / "none")).get(ObjectRef("v1", "ConfigMap", "default", "a"))
    with pytest.raises(ConfigError, match="kubeconfig"):
        KubeClient(fake_kube.kubeconfig_path, "no-such-context").get(ObjectRef("v1", "ConfigMap", "default", "a"))
    kube = KubeClient(fake_kube.kubeconfig_path, "fake", timeout_seconds=2)
    kube.get(ObjectRef("v1", "ConfigMap", "default", "x"))  # discovery done
    fake_kube.stop()
    with pytest.raises(BackendUnreachable) as err:
        kube.get(ObjectRef("v1", "ConfigMap", "default", "x"))
    assert "connection refused" in err.value.message and err.value.exit_code == ExitCode.UNREACHABLE
    kube.close()


def test_client_version_and_service_proxy(fake_kube):
    with KubeClient(fake_kube.kubeconfig_path, "fake") as kube:
        assert kube.server_version() == "v1.31.4+k3s1"
        # the fake serves no proxy subresource: its 404 comes back as an answer, not an exception
        status, body = kube.proxy_get("gardenos", "fastapi", 8000, "/health/ready")
        assert status == 404 and body
    assert fake_kube.requests_for("GET", r"/api/v1/namespaces/gardenos/services/fastapi:8000/proxy/health/ready$")
