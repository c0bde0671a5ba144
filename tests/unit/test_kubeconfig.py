"""F12: the K3s kubeconfig says 127.0.0.1 and 'default'; the certificate may lack the real address."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import socket
import ssl
import stat
import threading

import pytest
import yaml

from gardenctl.errors import OperationFailed, PreconditionFailed
from gardenctl.ops import kubeconfig as kc

cryptography = pytest.importorskip("cryptography")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _cert(subject: str, key, issuer_cert=None, issuer_key=None, *, ca: bool = False, sans: list[str] = ()):
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    if sans:
        entries = []
        for s in sans:
            try:
                entries.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                entries.append(x509.DNSName(s))
        builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A K3s-like PKI: a server CA and an API serving certificate (names as K3s puts them, plus the private IP)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("k3s-server-ca@1700000000", ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert("k3s", srv_key, ca, ca_key, sans=["kubernetes", "kubernetes.default", "localhost", "127.0.0.1", "10.0.1.21", "10.43.0.1"])
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _cert("other-ca", other_key, ca=True)
    d = tmp_path_factory.mktemp("pki")
    (d / "srv.pem").write_bytes(_pem(srv))
    (d / "srv.key").write_bytes(_key_pem(srv_key))
    return {"ca": _pem(ca), "srv": _pem(srv), "dir": d, "other_ca": _pem(other_ca)}


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
    result = kc.merge_into(path, k3s_yaml(pki["ca"]), name="garden", api_address="10.0.1.21", sans=kc.sans_from_pem(pki["srv"]))
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
    kc.merge_into(path, k3s_yaml(pki["ca"]), name="garden", api_address="10.0.1.21", sans=kc.sans_from_pem(pki["srv"]))
    assert [c["name"] for c in yaml.safe_load(path.read_text())["contexts"]] == ["prod", "default", "garden"]


def test_new_kubeconfig_file_gets_current_context(pki, tmp_path):
    path = tmp_path / "new" / "config"
    kc.merge_into(path, k3s_yaml(pki["ca"]), name="garden", api_address="127.0.0.1", sans=kc.sans_from_pem(pki["srv"]))
    data = yaml.safe_load(path.read_text())
    assert data["current-context"] == "garden" and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_api_address_missing_from_certificate_stops_and_names_the_tls_san(pki, tmp_path):
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(EXISTING))
    before = path.read_text()
    sans = kc.sans_from_pem(pki["srv"])
    assert "10.0.1.21" in sans and "kubernetes" in sans
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
    assert set(sans) >= {"127.0.0.1", "10.0.1.21", "kubernetes"}
    kc.check_api_address("127.0.0.1", sans)
    with pytest.raises(PreconditionFailed) as err:
        kc.serving_sans("127.0.0.1", tls_server, pki["other_ca"])
    assert "not signed by the cluster's CA" in err.value.message
