"""Serve `FakeApiServer` over HTTP on loopback and hand tests a kubeconfig pointing at it.

    from tests.fakes.kube.fixture import fake_kube, start_fake_kube  # noqa: F401  (fixture import)

    def test_something(fake_kube):
        api = kubernetes.client.CoreV1Api(fake_kube.api_client())   # or load_kube_config(): KUBECONFIG is set
        ...
        assert fake_kube.objects("ConfigMap", "default")[...]

    with start_fake_kube(ready_after_gets=0) as fake:               # outside pytest
        subprocess.run(["gardenctl", ...], env={..., "KUBECONFIG": fake.kubeconfig_path})
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from .apiserver import FakeApiServer
from .errors import ApiError

_PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the client's urllib3 pool expects
    # one buffered write per response (flushed by handle_one_request) + TCP_NODELAY: headers and body in
    # separate segments hit Nagle/delayed-ACK and cost ~40 ms per request on a keep-alive connection
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server_version = "fake-kube-apiserver"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        body = self._read_body()
        code, payload, extra = self.server.fake.handle(self.command, self.path, dict(self.headers.items()), body)
        accept = self.headers.get("Accept", "")
        if isinstance(payload, str):
            data, content_type = payload.encode(), "text/plain; charset=utf-8"
        elif not accept or "json" in accept or "*/*" in accept:
            data, content_type = json.dumps(payload).encode(), "application/json"
        elif "yaml" in accept:
            data, content_type = yaml.safe_dump(payload, sort_keys=False).encode(), "application/yaml"
        else:
            code = 406
            payload = ApiError(406, "NotAcceptable", f"only the following media types are accepted: "
                                                     f"application/json, application/yaml (got {accept})").status()
            data, content_type = json.dumps(payload).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in extra.items():
            self.send_header(key, str(value))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, fake: FakeApiServer):
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeKube(FakeApiServer):
    """A running fake API server. Everything from `FakeApiServer` (objects(), requests, set_never_ready(), ...)
    plus `url`, `kubeconfig_path`, `context`, `api_client()`, `dynamic_client()`, `stop()`."""

    def __init__(self, *, ready_after_gets: int = 2, seed: bool = True, token: str = "fake-token",
                 require_auth: bool = True, context: str = "fake", namespace: str = "default",
                 kubeconfig_path: str | None = None, kubernetes_version: str = "v1.31.4+k3s1"):
        super().__init__(ready_after_gets=ready_after_gets, seed=seed, token=token if require_auth else None,
                         kubernetes_version=kubernetes_version)
        self.bearer_token = token
        self.context = context
        self.namespace = namespace
        self._kubeconfig_path = kubeconfig_path
        self._tmpdir: str | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._clients: list = []
        self._cache_files = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeKube:
        self._httpd = _HTTPServer(self)
        host, port = self._httpd.server_address[:2]
        self.server_address = f"{host}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-kube-{port}", daemon=True)
        self._thread.start()
        self._tmpdir = tempfile.mkdtemp(prefix="fake-kube-")
        if self._kubeconfig_path is None:
            self._kubeconfig_path = os.path.join(self._tmpdir, "kubeconfig")
        self.write_kubeconfig(self._kubeconfig_path)
        return self

    def stop(self) -> None:
        for client in self._clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
        self._clients.clear()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.close_connections()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> FakeKube:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ client side

    @property
    def url(self) -> str:
        return f"http://{self.server_address}"

    @property
    def kubeconfig_path(self) -> str:
        return self._kubeconfig_path

    def kubeconfig(self) -> dict:
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": self.context, "cluster": {"server": self.url}}],
            "users": [{"name": self.context, "user": {"token": self.bearer_token}}],
            "contexts": [{"name": self.context, "context": {"cluster": self.context, "user": self.context,
                                                             "namespace": self.namespace}}],
            "current-context": self.context,
        }

    def write_kubeconfig(self, path: str) -> str:
        with open(path, "w") as fh:
            yaml.safe_dump(self.kubeconfig(), fh, sort_keys=False)
        os.chmod(path, 0o600)
        return path

    def api_client(self):
        """A real `kubernetes.client.ApiClient` loaded from the kubeconfig (closed by stop())."""
        from kubernetes import config
        client = config.new_client_from_config(config_file=self.kubeconfig_path, context=self.context)
        self._clients.append(client)
        return client

    def dynamic_client(self):
        """A real `kubernetes.dynamic.DynamicClient`, with its discovery cache in this fake's temp dir (the
        default cache lives in the system temp dir keyed by host:port, and could outlive a port)."""
        from kubernetes.dynamic import DynamicClient
        self._cache_files += 1
        cache_file = os.path.join(self._tmpdir, f"discovery-{self._cache_files}.json")
        return DynamicClient(self.api_client(), cache_file=cache_file)


def start_fake_kube(**options) -> FakeKube:
    """Start a fake API server; see FakeKube for the options (ready_after_gets=2, seed=True, token,
    require_auth=True, context="fake", namespace="default", kubeconfig_path, kubernetes_version)."""
    return FakeKube(**options).start()


def bypass_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kubernetes client honours HTTP(S)_PROXY from the environment; keep loopback off the proxy."""
    if any(os.environ.get(var) for var in _PROXY_VARS):
        for var in ("NO_PROXY", "no_proxy"):
            current = os.environ.get(var, "")
            monkeypatch.setenv(var, ",".join(filter(None, [current, "127.0.0.1", "localhost"])))


@pytest.fixture
def fake_kube(monkeypatch: pytest.MonkeyPatch):
    """A fresh fake API server per test; KUBECONFIG points at its kubeconfig (context `fake`)."""
    bypass_proxies(monkeypatch)
    fake = start_fake_kube()
    monkeypatch.setenv("KUBECONFIG", fake.kubeconfig_path)
    try:
        yield fake
    finally:
        fake.stop()
