"""F12: the K3s kubeconfig says 127.0.0.1 and 'default'; the certificate may lack the real address."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading

import pytest
import yaml

from gardenctl.errors import OperationFailed, PreconditionFailed
from gardenctl.ops import kubeconfig as kc

SRV_SANS_CONF = "DNS:kubernetes,DNS:kubernetes.default,DNS:localhost,IP:127.0.0.1,IP:10.0.1.21,IP:10.43.0.1"
SRV_SANS = ("kubernetes", "kubernetes.default", "localhost", "127.0.0.1", "10.0.1.21", "10.43.0.1")


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A K3s-like PKI made with the openssl CLI: a server CA, the API serving certificate (names as K3s puts them,
    plus the private IP), and an unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    d = tmp_path_factory.mktemp("pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN={ca}-k3s-server-ca",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=k3s", cwd=d)
    (d / "ext.cnf").write_text(f"subjectAltName={SRV_SANS_CONF}\nbasicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return {"ca": (d / "ca.pem").read_bytes(), "srv": (d / "srv.pem").read_bytes(), "dir": d, "other_ca": (d / "other.pem").read_bytes()}


def k3s_yaml(ca_pem: bytes) -> str:
    """What /etc/rancher/k3s/k3s.yaml looks like."""
    b64 = base64.b64encode(ca_pem).decode()
    return f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {b64}
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {{}}
users:
- name: default
  user:
    client-certificate-data: Y2xpZW50LWNlcnQ=
    client-key-data: Y2xpZW50LWtleQ==
"""


EXISTING = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "prod",
    "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example.org:6443", "certificate-authority-data": "cHJvZA=="}},
                 {"name": "default", "cluster": {"server": "https://kind.local:6443"}}],
    "users": [{"name": "prod", "user": {"token": "prod-token"}}, {"name": "default", "user": {"token": "kind"}}],
    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod", "namespace": "apps"}},
                 {"name": "default", "context": {"cluster": "default", "user": "default"}}],
}


def test_rewrite_sets_server_and_renames_everything(pki):
    new = kc.rewrite(k3s_yaml(pki["ca"]), name="garden", server="https://203.0.113.10:6443")
    assert [c["name"] for c in new["clusters"]] == ["garden"] and new["clusters"][0]["cluster"]["server"] == "https://203.0.113.10:6443"
    assert [u["name"] for u in new["users"]] == ["garden"] and new["users"][0]["user"]["client-key-data"] == "Y2xpZW50LWtleQ=="
    assert new["contexts"] == [{"name": "garden", "context": {"cluster": "garden", "user": "garden"}}]
    assert "127.0.0.1" not in yaml.safe_dump(new)
    assert kc.ca_of(new) == pki["ca"]
    assert kc.server_url("2a01:4f8::1") == "https://[2a01:4f8::1]:6443"


def test_merge_keeps_other_contexts_and_writes_0600(pki, tmp_path):
    path = tmp_path / ".kube" / "config"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(EXISTING))
    os.chmod(path, 0o644)
    result = kc.merge_into(path, k3s_yaml(pki["ca"]), name="garden", api_address="10.0.1.21", sans=SRV_SANS)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    merged = yaml.safe_load(path.read_text())
    by = lambda key: {e["name"]: e for e in merged[key]}  # noqa: E731
    for key in ("clusters", "users", "contexts"):
        for entry in EXISTING[key]:
            assert by(key)[entry["name"]] == entry  # untouched, including the unrelated "default"
    assert by("clusters")["garden"]["cluster"]["server"] == "https://10.0.1.21:6443"
    assert merged["current-context"] == "prod"  # the user's choice stays
    assert result.kept_contexts == ("prod", "default") and result.server == "https://10.0.1.21:6443"
    # idempotent: merging again replaces only our entries
    kc.merge_into(path, k3s_yaml(pki["ca"]), name="garden", api_address="10.0.1.21", sans=SRV_SANS)
    assert [c["name"] for c in yaml.safe_load(path.read_text())["contexts"]] == ["prod", "default", "garden"]


def test_new_kubeconfig_file_gets_current_context(pki, tmp_path):
    path = tmp_path / "new" / "config"
    kc.merge_into(path, k3s_yaml(pki["ca"]), name="garden", api_address="127.0.0.1", sans=SRV_SANS)
    data = yaml.safe_load(path.read_text())
    assert data["current-context"] == "garden" and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_api_address_missing_from_certificate_stops_and_names_the_tls_san(pki, tmp_path):
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(EXISTING))
    before = path.read_text()
    sans = SRV_SANS
    with pytest.raises(PreconditionFailed) as err:
        kc.merge_into(path, k3s_yaml(pki["ca"]), name="garden", api_address="203.0.113.10", sans=sans)
    assert "does not name 203.0.113.10" in err.value.message
    assert "--tls-san 203.0.113.10" in err.value.hint and "never turns TLS verification off" in err.value.hint
    assert path.read_text() == before  # nothing written


def test_insecure_or_caless_kubeconfig_is_refused(pki):
    text = k3s_yaml(pki["ca"]).replace("    server: https://127.0.0.1:6443", "    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true")
    with pytest.raises(OperationFailed):
        kc.rewrite(text, name="g", server="https://x:6443")
    with pytest.raises(OperationFailed):
        kc.rewrite("clusters: [", name="g", server="https://x:6443")


def test_unreadable_user_kubeconfig_is_not_overwritten(pki, tmp_path):
    path = tmp_path / "config"
    path.write_text("clusters: [unclosed\n")
    with pytest.raises(PreconditionFailed):
        kc.merge_into(path, k3s_yaml(pki["ca"]), name="garden", api_address="10.0.1.21", sans=("10.0.1.21",))
    assert path.read_text() == "clusters: [unclosed\n"


@pytest.fixture
def tls_server(pki):
    """A TLS server on loopback serving the API certificate (what `serving_sans` reads)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["dir"] / "srv.pem", pki["dir"] / "srv.key")
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    stop = threading.Event()

    def serve():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(2)
    sock.close()


def test_serving_certificate_is_read_and_verified_against_the_clusters_ca(pki, tls_server):
    sans = kc.serving_sans("127.0.0.1", tls_server, pki["ca"])
    assert set(sans) == set(SRV_SANS)  # read from the wire with ssl, verified against the CA
    kc.check_api_address("127.0.0.1", sans)
    with pytest.raises(PreconditionFailed) as err:
        kc.serving_sans("127.0.0.1", tls_server, pki["other_ca"])
    assert "not signed by the cluster's CA" in err.value.message
