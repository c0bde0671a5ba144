"""The K3s kubeconfig, fetched from the first server and merged into the user's (field case F12).

``/etc/rancher/k3s/k3s.yaml`` always says ``https://127.0.0.1:6443`` and names cluster, user and context
``default``. gardenctl parses it as YAML (never sed), sets the server to the configured API address, renames all three
to the cluster's name, merges them into the user's kubeconfig replacing only entries of that name, and writes the
file atomically with mode 0600. Before that it checks that the API address is among the names of the certificate the
API server actually serves (read with `ssl`, verified against the kubeconfig's own CA); if it is not, it stops and
names the ``--tls-san`` to add. TLS verification is never turned off.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gardenctl import yamltext
from gardenctl.errors import BackendUnreachable, OperationFailed, PreconditionFailed


@dataclass(frozen=True, slots=True)
class KubeconfigResult:
    path: str
    context: str
    server: str
    kept_contexts: tuple[str, ...]
    current_context: str | None


def server_url(address: str, port: int = 6443) -> str:
    host = f"[{address}]" if ":" in address and not address.startswith("[") else address
    return f"https://{host}:{port}"


def rewrite(text: str, *, name: str, server: str) -> dict[str, Any]:
    """The K3s kubeconfig with its one cluster/user/context renamed to ``name`` and the server set to ``server``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OperationFailed(f"the K3s kubeconfig is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise OperationFailed("the K3s kubeconfig is not a YAML mapping")
    clusters, users, contexts = (data.get(k) or [] for k in ("clusters", "users", "contexts"))
    if not (isinstance(clusters, list) and isinstance(users, list) and isinstance(contexts, list)) or not contexts:
        raise OperationFailed("the K3s kubeconfig has no clusters/users/contexts lists")
    current = data.get("current-context") or contexts[0].get("name")
    ctx = next((c for c in contexts if c.get("name") == current), contexts[0])
    ctx_body = dict(ctx.get("context") or {})
    cluster = next((c for c in clusters if c.get("name") == ctx_body.get("cluster")), None)
    user = next((u for u in users if u.get("name") == ctx_body.get("user")), None)
    if cluster is None or user is None:
        raise OperationFailed(f"the K3s kubeconfig's context {ctx.get('name')!r} names a cluster or user it does not define")
    cluster_body = dict(cluster.get("cluster") or {})
    if cluster_body.get("insecure-skip-tls-verify"):
        raise OperationFailed("the K3s kubeconfig turns TLS verification off; gardenctl will not merge it")
    if not cluster_body.get("certificate-authority-data"):
        raise OperationFailed("the K3s kubeconfig has no certificate-authority-data to verify the API server with")
    cluster_body["server"] = server
    ctx_body.update({"cluster": name, "user": name})
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster_body}],
        "users": [{"name": name, "user": dict(user.get("user") or {})}],
        "contexts": [{"name": name, "context": ctx_body}],
        "current-context": name,
    }


def merge(existing: dict[str, Any] | None, new: dict[str, Any], *, set_current: bool = False) -> dict[str, Any]:
    """``existing`` with the entries of ``new`` added or replaced by name; every other entry stays as it was.
    current-context changes only when there was none (or ``set_current``)."""
    base: dict[str, Any] = dict(existing or {})
    base.setdefault("apiVersion", "v1")
    base.setdefault("kind", "Config")
    for key in ("clusters", "users", "contexts"):
        entries = list(base.get(key) or [])
        for item in new.get(key) or []:
            entries = [e for e in entries if not (isinstance(e, dict) and e.get("name") == item["name"])]
            entries.append(item)
        base[key] = entries
    if set_current or not base.get("current-context"):
        base["current-context"] = new.get("current-context")
    base.setdefault("preferences", {})
    return base


def write(path: Path, data: dict[str, Any]) -> None:
    """Atomic write with mode 0600 (created so, never widened even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            yamltext.dump(data, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)


def load(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PreconditionFailed(f"cannot read kubeconfig {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PreconditionFailed(f"{path} is not valid YAML; gardenctl will not rewrite it", hint="fix or move the file, then re-run") from exc
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PreconditionFailed(f"{path} is not a kubeconfig (not a mapping); gardenctl will not rewrite it")
    return data


# ------------------------------------------------------------------------------------------------ certificate


def _norm(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name.strip().strip("[]")))
    except ValueError:
        return name.strip().lower().rstrip(".")


def sans_from_peercert(peercert: dict[str, Any]) -> tuple[str, ...]:
    """DNS names and IP addresses of a certificate as `ssl.SSLSocket.getpeercert()` returns it."""
    return tuple(_norm(value) for kind, value in peercert.get("subjectAltName", ()) if kind in ("DNS", "IP Address"))


def serving_sans(host: str, port: int, ca_pem: bytes, *, timeout_seconds: float = 10.0) -> tuple[str, ...]:
    """The SANs of the certificate the API server at host:port serves, after verifying it against ``ca_pem``.
    Hostname checking is done by `check_api_address` (to name the missing SAN), not skipped."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.check_hostname = False  # checked below against the SAN list, with a useful message
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds) as raw:
            with context.wrap_socket(raw, server_hostname=None if _is_ip(host) else host) as tls:
                cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as exc:
        raise PreconditionFailed(
            f"the API server at {host}:{port} serves a certificate not signed by the cluster's CA: {exc.verify_message}",
            hint="is the API address pointing at the right cluster?",
        ) from exc
    except (OSError, ssl.SSLError) as exc:
        raise BackendUnreachable(f"cannot reach the Kubernetes API at {host}:{port}: {exc}") from exc
    return sans_from_peercert(cert or {})


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def check_api_address(address: str, sans: tuple[str, ...]) -> None:
    """Stop, naming the ``--tls-san`` to add, when ``address`` is not among the certificate's names."""
    if _norm(address) in sans:
        return
    raise PreconditionFailed(
        f"the API server's certificate does not name {address} (it names: {', '.join(sans) or 'nothing'})",
        hint=f"add it to the inventory (hetzner.k3s.tls-san: [{address}]) so K3s starts with --tls-san {address}, "
        "then re-run `gardenctl bootstrap apply`; gardenctl never turns TLS verification off",
    )


def ca_of(config: dict[str, Any]) -> bytes:
    data = config["clusters"][0]["cluster"]["certificate-authority-data"]
    return base64.b64decode(data)


def merge_into(path: Path, k3s_yaml: str, *, name: str, api_address: str, sans: tuple[str, ...], port: int = 6443) -> KubeconfigResult:
    """Check the SAN, rewrite, merge into ``path`` (other contexts untouched), write 0600."""
    check_api_address(api_address, sans)
    new = rewrite(k3s_yaml, name=name, server=server_url(api_address, port))
    existing = load(path)
    merged = merge(existing, new)
    write(path, merged)
    kept = tuple(c.get("name") for c in merged["contexts"] if isinstance(c, dict) and c.get("name") != name)
    return KubeconfigResult(
        path=str(path),
        context=name,
        server=new["clusters"][0]["cluster"]["server"],
        kept_contexts=kept,
        current_context=merged.get("current-context"),
    )
