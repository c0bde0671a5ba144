"""The one HTTP chokepoint for Patroni, etcd and the HAProxy stats page: timeouts, TLS, auth and error mapping.

Built on the standard library's http.client rather than httpx: these are a handful of small JSON requests per
command, and `gardenctl check` runs from cron every minute, where importing httpx was a fifth of the whole run.
Every request opens its own connection (no pool to share between the threads that fan out to the members).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gardenctl.errors import BackendError, BackendUnreachable


@dataclass(frozen=True, slots=True)
class HttpSettings:
    timeout_seconds: float = 2.0
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True


class TransportError(Exception):
    """No HTTP answer. ``request_sent`` tells whether the server may have received (and acted on) the request."""

    def __init__(self, reason: str, *, request_sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_sent = request_sent


@dataclass(frozen=True, slots=True)
class Response:
    url: str
    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class HttpClient:
    """A small, thread-safe HTTP/1.1 client: one connection per request, TLS only for https URLs."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self._ssl: ssl.SSLContext | None = None
        self._auth = None
        if settings.username:
            token = base64.b64encode(f"{settings.username}:{settings.password or ''}".encode()).decode()
            self._auth = f"Basic {token}"

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            s = self.settings
            try:
                if s.verify:
                    ctx = ssl.create_default_context(cafile=s.ca_file)
                else:
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                if s.cert_file:
                    ctx.load_cert_chain(s.cert_file, s.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise TransportError(f"TLS setup failed: {exc}", request_sent=False) from exc
            self._ssl = ctx
        return self._ssl

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request and read the whole answer. Raises `TransportError` when there is no HTTP answer."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {url}", request_sent=False)
        read_timeout = self.settings.timeout_seconds if timeout is None else timeout
        connect_timeout = min(read_timeout, 2.0)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        all_headers = {"User-Agent": "gardenctl", "Accept": "application/json", "Connection": "close"}
        if self._auth:
            all_headers["Authorization"] = self._auth
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=connect_timeout, context=self._ssl_context()
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=connect_timeout)
        sent = False
        try:
            try:
                conn.connect()
            except socket.timeout as exc:
                raise TransportError("timed out", request_sent=False) from exc
            except ssl.SSLError as exc:
                raise TransportError(f"TLS error: {exc.reason or exc}", request_sent=False) from exc
            except OSError as exc:
                raise TransportError(_os_reason(exc), request_sent=False) from exc
            if conn.sock is not None:
                conn.sock.settimeout(read_timeout)
            try:
                conn.request(method, path, body=body, headers=all_headers)
                sent = True
                answer = conn.getresponse()
                content = answer.read()
            except socket.timeout as exc:
                raise TransportError("timed out", request_sent=sent) from exc
            except (http.client.HTTPException, OSError) as exc:
                reason = "connection closed before an answer" if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError)) else _os_reason(exc)
                raise TransportError(reason, request_sent=sent) from exc
            return Response(url=url, status_code=answer.status, content=content, headers={k.lower(): v for k, v in answer.getheaders()})
        finally:
            conn.close()

    def get(self, url: str, *, timeout: float | None = None) -> Response:
        return self.request("GET", url, timeout=timeout)

    def post(self, url: str, *, json: Any = None, headers: dict[str, str] | None = None, timeout: float | None = None) -> Response:  # noqa: A002
        return self.request("POST", url, json_body=json, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Nothing to release (no pooled connections); kept so adapters can close what they own."""


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve host name"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.lower() if text.startswith(("Connection", "No route", "Network")) else text


def make_client(settings: HttpSettings) -> HttpClient:
    return HttpClient(settings)


def describe_transport_error(exc: Exception) -> str:
    """A short human reason for a transport failure: 'connection refused', 'timed out', ... Also used for the httpx
    errors of the Kubernetes and Hetzner readers (recognised by name: this module does not import httpx)."""
    if isinstance(exc, TransportError):
        return exc.reason
    if isinstance(exc, OSError):
        return _os_reason(exc)
    if any(k.__name__ == "TimeoutException" for k in type(exc).__mro__):
        return "timed out"
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "connection refused" in lowered or "errno 111" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "temporary failure in name resolution" in lowered:
        return "cannot resolve host name"
    if "certificate" in lowered:
        return f"TLS error: {text}"
    return text


def request(
    client: HttpClient,
    method: str,
    url: str,
    *,
    what: str,
    json_body: Any = None,
    ok_statuses: tuple[int, ...] = (200,),
    timeout: float | None = None,
) -> Response:
    """Send one request. No answer raises `BackendUnreachable` (its ``__cause__`` is the `TransportError`, which
    says whether the request was sent); statuses outside ``ok_statuses`` raise `BackendError` with the status and
    the body (Patroni puts its reason in plain text there)."""
    try:
        response = client.request(method, url, json_body=json_body, timeout=timeout)
    except TransportError as exc:
        raise BackendUnreachable(f"{what}: {url}: {exc.reason}") from exc
    if response.status_code not in ok_statuses:
        body = response.text.strip()
        raise BackendError(
            f"{what}: {url} answered HTTP {response.status_code}" + (f": {body[:300]}" if body else ""),
            status=response.status_code,
            body=body,
        )
    return response


def json_of(response: Response, what: str) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackendError(f"{what}: {response.url} answered something that is not JSON") from exc
