"""Kubernetes adapters: a light read-only HTTP reader for ``status`` and the kubernetes-client adapter for changes.

Two transports, one error vocabulary:

- `KubeReader` (httpx, read-only) serves ``gardenctl status`` / ``check``, which must start fast and never import the
  ``kubernetes`` package. It reads the kubeconfig itself (`read_kubeconfig`): server, CA (data or file), client
  certificate and key (data or files), bearer token (inline or ``tokenFile``), basic auth. Credential plugins
  (``exec``, ``auth-provider``) are not run: `KubeAuthUnsupported` says to use kubectl instead.
- `KubeClient` (the ``kubernetes`` package, imported only inside its methods) serves ``migrate-phase``: server-side
  apply with the field manager ``gardenctl`` (optionally as a server-side dry run), get / list / delete, and the API
  server's service proxy for health probes. Every call goes through `KubeClient._call`, the one place where
  timeouts and the translation of `ApiException`, the dynamic client's errors and urllib3's transport errors into
  `gardenctl.errors` live.

Objects cross this boundary as plain dicts (what the API server sent), never as client library objects.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import httpx

from gardenctl.errors import BackendError, BackendUnreachable, ConfigError, GardenError

T = TypeVar("T")

FIELD_MANAGER = "gardenctl"


# ------------------------------------------------------------------------------------------------ errors


class KubeAuthUnsupported(ConfigError):
    """The kubeconfig authenticates in a way the light reader does not implement (exec / auth-provider plugins)."""


class KubeApplyConflict(BackendError):
    """Server-side apply found fields owned by another field manager with different values (HTTP 409)."""


# ------------------------------------------------------------------------------------------------ object identity


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """Identity of one object: ``apiVersion``, ``kind``, namespace (None for cluster-scoped kinds) and name."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @staticmethod
    def of(obj: dict[str, Any]) -> "ObjectRef":
        meta = obj.get("metadata") or {}
        return ObjectRef(str(obj.get("apiVersion", "")), str(obj.get("kind", "")), meta.get("namespace") or None, str(meta.get("name", "")))

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


# ------------------------------------------------------------------------------------------------ kubeconfig


@dataclass(frozen=True, slots=True)
class KubeEndpoint:
    """What one kubeconfig context says about reaching its API server. Secrets are kept out of ``repr``."""

    context: str
    server: str
    source: str
    namespace: str | None = None
    ca_data: bytes | None = field(default=None, repr=False)
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    client_cert_data: bytes | None = field(default=None, repr=False)
    client_cert_file: str | None = None
    client_key_data: bytes | None = field(default=None, repr=False)
    client_key_file: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    exec_command: str | None = None
    auth_provider: str | None = None

    @property
    def uses_plugin(self) -> bool:
        return bool(self.exec_command or self.auth_provider)

    @property
    def has_static_credentials(self) -> bool:
        return bool(self.token or self.token_file or self.client_cert_data or self.client_cert_file or self.username)


def _named(items: Any, name: str, what: str, source: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(what)
            if not isinstance(body, dict):
                raise ConfigError(f"{source}: {what} {name!r} has no {what} mapping")
            return body
    raise ConfigError(f"{source}: the kubeconfig has no {what} named {name!r}")


def _b64data(value: Any, key: str, source: str) -> bytes | None:
    if value in (None, ""):
        return None
    try:
        return base64.b64decode("".join(str(value).split()), validate=True)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {key} is not valid base64") from exc


def read_kubeconfig(path: str | Path, context: str | None = None) -> KubeEndpoint:
    """Parse a kubeconfig and return the endpoint of ``context`` (default: its current-context).

    Relative certificate / token paths are taken relative to the kubeconfig's directory, as kubectl does.
    Raises `ConfigError` for a missing, unreadable or malformed file, or an unknown context.
    """
    import yaml

    path = Path(path).expanduser()
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"kubeconfig {path} does not exist", hint="point kubernetes.kubeconfig of this context at the file kubectl uses") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: not a kubeconfig (expected a mapping)")
    name = context or data.get("current-context")
    if not name:
        raise ConfigError(f"{source}: no context given and no current-context set", hint="set kubernetes.context in the gardenctl config")
    ctx = _named(data.get("contexts"), name, "context", source)
    cluster = _named(data.get("clusters"), str(ctx.get("cluster", "")), "cluster", source)
    user: dict[str, Any] = {}
    if ctx.get("user"):
        user = _named(data.get("users"), str(ctx["user"]), "user", source)
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: cluster {ctx.get('cluster')!r} has no http(s) server URL")
    base = path.parent

    def rel(value: Any) -> str | None:
        if not value:
            return None
        p = Path(str(value)).expanduser()
        return str(p if p.is_absolute() else base / p)

    exec_cfg = user.get("exec")
    exec_command = None
    if isinstance(exec_cfg, dict):
        exec_command = str(exec_cfg.get("command") or "exec plugin")
    provider = user.get("auth-provider")
    auth_provider = str(provider.get("name") or "auth-provider") if isinstance(provider, dict) else None
    return KubeEndpoint(
        context=name,
        server=server.rstrip("/"),
        source=source,
        namespace=ctx.get("namespace") or None,
        ca_data=_b64data(cluster.get("certificate-authority-data"), "certificate-authority-data", source),
        ca_file=rel(cluster.get("certificate-authority")),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name") or None,
        client_cert_data=_b64data(user.get("client-certificate-data"), "client-certificate-data", source),
        client_cert_file=rel(user.get("client-certificate")),
        client_key_data=_b64data(user.get("client-key-data"), "client-key-data", source),
        client_key_file=rel(user.get("client-key")),
        token=user.get("token") or None,
        token_file=rel(user.get("tokenFile")),
        username=user.get("username") or None,
        password=user.get("password") or None,
        exec_command=exec_command,
        auth_provider=auth_provider,
    )


def _ssl_context(ep: KubeEndpoint) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ep.ca_data.decode() if ep.ca_data else None, cafile=ep.ca_file)
    if ep.insecure_skip_tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    cert_file, key_file = ep.client_cert_file, ep.client_key_file
    if ep.client_cert_data or ep.client_key_data:
        # ssl can only load a certificate chain from files: write them 0600 to a private directory, load, remove.
        with tempfile.TemporaryDirectory(prefix="gardenctl-kube-") as tmp:
            if ep.client_cert_data:
                cert_file = os.path.join(tmp, "client.crt")
                _write_private(cert_file, ep.client_cert_data)
            if ep.client_key_data:
                key_file = os.path.join(tmp, "client.key")
                _write_private(key_file, ep.client_key_data)
            if cert_file:
                ctx.load_cert_chain(cert_file, key_file)
    elif cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


# ------------------------------------------------------------------------------------------------ light reader


class KubeReader:
    """Read-only access to the API server over httpx (for ``status``): GET JSON, nothing else.

    Raises `KubeAuthUnsupported` when the context needs a credential plugin, `ConfigError` for unreadable
    certificates or token files."""

    def __init__(self, endpoint: KubeEndpoint, *, timeout_seconds: float = 2.0) -> None:
        self.endpoint = endpoint
        if endpoint.uses_plugin and not endpoint.has_static_credentials:
            plugin = endpoint.exec_command or endpoint.auth_provider
            raise KubeAuthUnsupported(
                f"kube context {endpoint.context!r} authenticates through the credential plugin {plugin!r}, "
                "which gardenctl status does not run",
                hint="use kubectl / k9s for the K3s view, or give gardenctl a context with a token or client certificate",
            )
        headers = {"User-Agent": "gardenctl", "Accept": "application/json"}
        token = endpoint.token
        if not token and endpoint.token_file:
            try:
                token = Path(endpoint.token_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{endpoint.source}: cannot read tokenFile {endpoint.token_file}: {exc.strerror}") from exc
        if token:
            headers["Authorization"] = f"Bearer {token}"
        auth = (endpoint.username, endpoint.password or "") if endpoint.username and not token else None
        verify: Any = False
        if endpoint.server.startswith("https://"):
            try:
                verify = _ssl_context(endpoint)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise ConfigError(f"{endpoint.source}: context {endpoint.context!r}: cannot load its certificates: {exc}") from exc
        extensions = {"sni_hostname": endpoint.tls_server_name} if endpoint.tls_server_name else None
        self._extensions = extensions
        self._client = httpx.Client(
            base_url=endpoint.server,
            headers=headers,
            auth=auth,
            verify=verify,
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 2.0)),
            trust_env=False,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "KubeReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``path`` (e.g. ``/api/v1/nodes``) and return the JSON body; errors as `gardenctl.errors`."""
        from gardenctl.backends.http import describe_transport_error

        where = f"K3s API {self.endpoint.server}"
        try:
            kwargs: dict[str, Any] = {"params": params}
            if self._extensions:
                kwargs["extensions"] = self._extensions
            response = self._client.get(path, **kwargs)
        except httpx.HTTPError as exc:
            raise BackendUnreachable(f"{where}: {describe_transport_error(exc)}") from exc
        if response.status_code != 200:
            raise _status_error(where, path, response.status_code, _status_message(response.text), response.text)
        try:
            return response.json()
        except ValueError as exc:
            raise BackendError(f"{where}{path}: answered something that is not JSON") from exc


def _status_message(body: str) -> str:
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])[:300]
    return body.strip()[:300]


def _status_error(where: str, what: str, status: int | None, message: str, body: str | None = None) -> GardenError:
    hint = None
    if status == 401:
        hint = "the API server did not accept the credentials of this kube context (expired token or certificate?)"
    elif status == 403:
        hint = "the kube context's user lacks RBAC permission for this; check `kubectl auth can-i`"
    text = f"{where}: {what}: HTTP {status}" + (f": {message}" if message else "")
    if status == 409 and "apply" in what:
        return KubeApplyConflict(text, status=status, body=body, hint="another field manager owns these fields; re-run with --force-conflicts to take them over")
    return BackendError(text, status=status, body=body, hint=hint)


# ------------------------------------------------------------------------------------------------ kubernetes client


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What one server-side apply did. ``result`` is the object the server returned (after a dry run: would return)."""

    ref: ObjectRef
    result: dict[str, Any]


class KubeClient:
    """The ``kubernetes`` package behind one chokepoint. Built from a kubeconfig file and context (exec plugins work
    here: the client runs them). ``timeout_seconds`` bounds every request."""

    def __init__(self, kubeconfig: str, context: str | None = None, *, timeout_seconds: float = 15.0, field_manager: str = FIELD_MANAGER) -> None:
        self.kubeconfig = str(Path(kubeconfig).expanduser())
        self.context = context
        self.timeout_seconds = timeout_seconds
        self.field_manager = field_manager
        self._api: Any = None
        self._dyn: Any = None
        self._cache_dir: tempfile.TemporaryDirectory[str] | None = None
        self._server = "?"

    # -- lifecycle
    def _load(self) -> None:
        """Read the kubeconfig into an ApiClient (no request yet)."""
        if self._api is not None:
            return
        if not Path(self.kubeconfig).is_file():
            raise ConfigError(f"kubeconfig {self.kubeconfig} does not exist", hint="point kubernetes.kubeconfig of this context at the file kubectl uses")
        from kubernetes import config as kconfig
        from kubernetes.config.config_exception import ConfigException

        try:
            self._api = kconfig.new_client_from_config(config_file=self.kubeconfig, context=self.context)
        except ConfigException as exc:
            raise ConfigError(f"kubeconfig {self.kubeconfig}: {exc}") from exc
        self._server = getattr(self._api.configuration, "host", "?")

    def _connect(self) -> None:
        """The ApiClient plus a DynamicClient (its discovery is the first request)."""
        if self._dyn is not None:
            return
        self._load()
        from kubernetes.dynamic import DynamicClient

        # A private discovery cache: the default one lives in the shared temp dir keyed by host:port and can outlive
        # the server it describes.
        self._cache_dir = tempfile.TemporaryDirectory(prefix="gardenctl-discovery-")
        self._dyn = self._call("discovery", lambda: DynamicClient(self._api, cache_file=os.path.join(self._cache_dir.name, "discovery.json")))  # type: ignore[union-attr]

    def close(self) -> None:
        if self._api is not None:
            try:
                self._api.close()
            except Exception:  # noqa: BLE001 - closing a pool must not hide a result
                pass
        if self._cache_dir is not None:
            self._cache_dir.cleanup()
        self._api = self._dyn = self._cache_dir = None

    def __enter__(self) -> "KubeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def server(self) -> str:
        """The API server URL from the kubeconfig. Raises `ConfigError` when the kubeconfig cannot be loaded."""
        self._load()
        return self._server

    # -- the chokepoint
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one client call; every library error leaves as a `GardenError`."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
        from urllib3.exceptions import HTTPError as Urllib3Error

        where = f"Kubernetes API {self._server}"
        try:
            return fn()
        except ApiException as exc:
            body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
            raise _status_error(where, what, exc.status, _status_message(body or "") or (exc.reason or ""), body) from exc
        except (ResourceNotFoundError, ResourceNotUniqueError) as exc:
            raise BackendError(f"{where}: {what}: the API server does not serve this kind ({exc})") from exc
        except Urllib3Error as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BackendUnreachable(f"{where}: {what}: {_short_transport(reason)}", hint="check kubernetes.kubeconfig / context of this cluster and that the API server runs") from exc
        except (OSError, TimeoutError) as exc:
            raise BackendUnreachable(f"{where}: {what}: {exc}") from exc

    def _resource(self, api_version: str, kind: str) -> Any:
        self._connect()
        return self._call(f"discover {kind} ({api_version})", lambda: self._dyn.resources.get(api_version=api_version, kind=kind))

    # -- reads
    def server_version(self) -> str:
        """The API server's ``gitVersion`` (e.g. ``v1.31.4+k3s1``)."""
        self._connect()

        def version() -> str:
            import json

            resp = self._dyn.request("get", "/version", serialize=False, _request_timeout=self.timeout_seconds)
            data = resp.data if hasattr(resp, "data") else b"{}"
            try:
                return str(json.loads(data).get("gitVersion", "?"))
            except (ValueError, AttributeError):
                return "?"

        return self._call("GET /version", version)

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        res = self._resource(ref.api_version, ref.kind)
        from kubernetes.dynamic.exceptions import NotFoundError

        def get() -> dict[str, Any] | None:
            try:
                return res.get(name=ref.name, namespace=ref.namespace, _request_timeout=self.timeout_seconds).to_dict()
            except NotFoundError:
                return None

        return self._call(f"get {ref}", get)

    def list(self, api_version: str, kind: str, namespace: str | None = None, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Objects of one kind (in ``namespace``, or cluster-wide), each with ``apiVersion`` and ``kind`` filled in
        (list items arrive without them)."""
        res = self._resource(api_version, kind)

        def list_() -> list[dict[str, Any]]:
            kwargs: dict[str, Any] = {"_request_timeout": self.timeout_seconds}
            if label_selector:
                kwargs["label_selector"] = label_selector
            if namespace and res.namespaced:
                kwargs["namespace"] = namespace
            items = res.get(**kwargs).to_dict().get("items") or []
            out = []
            for item in items:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                out.append(item)
            return out

        return self._call(f"list {kind}" + (f" in {namespace}" if namespace else ""), list_)

    # -- writes
    def apply(self, obj: dict[str, Any], *, dry_run: bool = False, force_conflicts: bool = False) -> ApplyOutcome:
        """Server-side apply of ``obj`` with this client's field manager. ``dry_run``: the server computes the result
        and persists nothing. A conflict with another manager raises `KubeApplyConflict` unless ``force_conflicts``."""
        ref = ObjectRef.of(obj)
        res = self._resource(ref.api_version, ref.kind)

        def apply() -> ApplyOutcome:
            kwargs: dict[str, Any] = {"field_manager": self.field_manager, "_request_timeout": self.timeout_seconds}
            if dry_run:
                kwargs["dry_run"] = "All"
            if force_conflicts:
                kwargs["force_conflicts"] = True
            if res.namespaced:
                kwargs["namespace"] = ref.namespace
            result = res.server_side_apply(body=obj, name=ref.name, **kwargs).to_dict()
            return ApplyOutcome(ref=ref, result=result)

        return self._call(("dry-run " if dry_run else "") + f"apply {ref}", apply)

    def delete(self, ref: ObjectRef, *, dry_run: bool = False) -> bool:
        """Delete one object (background propagation). True if it existed."""
        res = self._resource(ref.api_version, ref.kind)
        from kubernetes.dynamic.exceptions import NotFoundError

        def delete() -> bool:
            kwargs: dict[str, Any] = {"_request_timeout": self.timeout_seconds, "propagation_policy": "Background"}
            if dry_run:
                kwargs["dry_run"] = "All"
            if res.namespaced:
                kwargs["namespace"] = ref.namespace
            try:
                res.delete(name=ref.name, **kwargs)
            except NotFoundError:
                return False
            return True

        return self._call(("dry-run " if dry_run else "") + f"delete {ref}", delete)

    def proxy_get(self, namespace: str, service: str, port: int | str, path: str) -> tuple[int, str]:
        """GET ``path`` on ``service:port`` through the API server's service proxy (what ``kubectl get --raw
        /api/v1/namespaces/NS/services/SVC:PORT/proxy/PATH`` does). Returns (HTTP status, body text); an error
        status from the service is a result, not an exception."""
        self._connect()
        url = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path.lstrip('/')}"

        def get() -> tuple[int, str]:
            from kubernetes.client.exceptions import ApiException

            try:
                resp = self._dyn.request("get", url, serialize=False, _request_timeout=self.timeout_seconds)
            except ApiException as exc:
                body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else (exc.body or "")
                if exc.status in (401, 403):
                    raise
                return int(exc.status or 0), body
            data = resp.data if hasattr(resp, "data") else b""
            return int(getattr(resp, "status", 200)), data.decode(errors="replace") if isinstance(data, bytes) else str(data)

        return self._call(f"GET {url}", get)


def _short_transport(reason: Any) -> str:
    text = str(reason)
    lowered = text.lower()
    if "connection refused" in lowered or "errno 111" in lowered:
        return "connection refused"
    if "timed out" in lowered or "timeout" in lowered:
        return "timed out"
    if "name or service not known" in lowered or "temporary failure in name resolution" in lowered:
        return "cannot resolve host name"
    if "certificate" in lowered:
        return f"TLS error: {text}"
    return text


def iter_items(doc: Any) -> Iterator[dict[str, Any]]:
    """The ``items`` of a List document, tolerating anything else (None, a Status)."""
    if isinstance(doc, dict):
        for item in doc.get("items") or []:
            if isinstance(item, dict):
                yield item
