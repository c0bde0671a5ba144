"""The one HTTP chokepoint for Patroni and etcd: timeouts, TLS, auth, retry predicate and error mapping live here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

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


def make_client(settings: HttpSettings) -> httpx.Client:
    verify: Any = settings.verify
    if settings.verify and settings.ca_file:
        import ssl

        verify = ssl.create_default_context(cafile=settings.ca_file)
        if settings.cert_file:
            verify.load_cert_chain(settings.cert_file, settings.key_file)
    elif settings.cert_file:
        import ssl

        verify = ssl.create_default_context()
        if not settings.verify:
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
        verify.load_cert_chain(settings.cert_file, settings.key_file)
    auth = (settings.username, settings.password or "") if settings.username else None
    return httpx.Client(
        timeout=httpx.Timeout(settings.timeout_seconds, connect=min(settings.timeout_seconds, 2.0)),
        verify=verify,
        auth=auth,
        headers={"User-Agent": "gardenctl"},
        trust_env=False,
    )


def describe_transport_error(exc: Exception) -> str:
    """A short human reason for a transport failure: 'connection refused', 'timed out after 2.0s', ..."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    lowered = text.lower()
    if "connection refused" in lowered or "errno 111" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "temporary failure in name resolution" in lowered:
        return "cannot resolve host name"
    if "certificate" in lowered:
        return f"TLS error: {text}"
    return text


def request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    what: str,
    json_body: Any = None,
    ok_statuses: tuple[int, ...] = (200,),
    timeout: float | None = None,
) -> httpx.Response:
    """Send one request. Transport failures raise `BackendUnreachable`; statuses outside ``ok_statuses`` raise
    `BackendError` with the status and the body (Patroni puts its reason in plain text there)."""
    try:
        kwargs: dict[str, Any] = {}
        if json_body is not None:
            kwargs["content"] = json.dumps(json_body)
            kwargs["headers"] = {"Content-Type": "application/json"}
        if timeout is not None:
            kwargs["timeout"] = timeout
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise BackendUnreachable(f"{what}: {url}: {describe_transport_error(exc)}") from exc
    if response.status_code not in ok_statuses:
        body = response.text.strip()
        raise BackendError(
            f"{what}: {url} answered HTTP {response.status_code}" + (f": {body[:300]}" if body else ""),
            status=response.status_code,
            body=body,
        )
    return response


def json_of(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackendError(f"{what}: {response.request.url} answered something that is not JSON") from exc
