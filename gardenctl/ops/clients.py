"""Build the adapters for one cluster context, in one place.

Every command that talks to a cluster gets its adapters here, so timeouts, TLS and secrets are decided once:

- ``patroni_client(cluster)``: `PatroniClient` over ``patroni.endpoints`` (basic auth, CA, client certificate);
- ``etcd_client(cluster)``: `EtcdClient` over ``etcd.endpoints``;
- ``haproxy_client(cluster)``: `HAProxyClient` on the stats socket (or the stats page's CSV);
- ``postgres_endpoint(cluster, "rw" | "ro")``: where to connect through HAProxy, with the password resolved.

``timeout`` (seconds, per endpoint) defaults to the context's ``request-timeout-seconds``. Secrets are resolved
here (``Secret.resolve``) and raise `ConfigError` when the environment variable or file is missing.

Importing this module is cheap: the adapter modules (and psycopg) are imported by the function that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from gardenctl.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from gardenctl.backends.etcd import EtcdClient
    from gardenctl.backends.haproxy import HAProxyClient
    from gardenctl.backends.http import HttpSettings
    from gardenctl.backends.patroni import PatroniClient
    from gardenctl.backends.postgres import Endpoint
    from gardenctl.config import ClusterConfig, TLSConfig


def effective_timeout(cluster: "ClusterConfig", timeout: float | None = None) -> float:
    """The per-endpoint timeout: the flag when given, else the context's ``request-timeout-seconds``."""
    if timeout is None:
        return float(cluster.request_timeout_seconds)
    if timeout <= 0:
        raise ConfigError(f"--timeout must be positive, got {timeout}")
    return float(timeout)


def _http_settings(
    endpoints: tuple[str, ...], tls: "TLSConfig", username: str | None, password: str | None, timeout: float
) -> "HttpSettings":
    from gardenctl.backends.http import HttpSettings

    # Certificate verification only matters for https endpoints (the TLS context is only built for https URLs).
    uses_tls = any(e.lower().startswith("https://") for e in endpoints)
    return HttpSettings(
        timeout_seconds=timeout,
        username=username,
        password=password,
        ca_file=tls.ca_file,
        cert_file=tls.cert_file,
        key_file=tls.key_file,
        verify=tls.verify if uses_tls else False,
    )


def patroni_http_settings(cluster: "ClusterConfig", *, timeout: float | None = None, read_only: bool = False) -> "HttpSettings":
    """``read_only``: only GET requests will be made. Patroni's REST API asks for credentials on its unsafe (changing)
    endpoints only, so a monitoring host without the password (env var unset, file absent) still reads the cluster."""
    from gardenctl.errors import ConfigError

    s = cluster.patroni
    username = s.username
    try:
        password = s.password.resolve(f"context {cluster.name}: patroni password") if s.password.configured else None
    except ConfigError:
        if not read_only:
            raise
        username, password = None, None
    return _http_settings(s.endpoints, s.tls, username, password, effective_timeout(cluster, timeout))


def etcd_http_settings(cluster: "ClusterConfig", *, timeout: float | None = None) -> "HttpSettings":
    s = cluster.etcd
    password = s.password.resolve(f"context {cluster.name}: etcd password") if s.password.configured else None
    return _http_settings(s.endpoints, s.tls, s.username, password, effective_timeout(cluster, timeout))


def patroni_client(cluster: "ClusterConfig", *, timeout: float | None = None, read_only: bool = False) -> "PatroniClient":
    """A `PatroniClient` for the context. Raises `ConfigError` if the password env/file is missing, unless
    ``read_only`` (GET requests only, which Patroni serves without credentials)."""
    from gardenctl.backends.patroni import PatroniClient

    return PatroniClient(cluster.patroni.endpoints, patroni_http_settings(cluster, timeout=timeout, read_only=read_only))


def etcd_client(cluster: "ClusterConfig", *, timeout: float | None = None) -> "EtcdClient":
    """An `EtcdClient` for the context. Raises `ConfigError` if the password env/file is missing."""
    from gardenctl.backends.etcd import EtcdClient

    return EtcdClient(cluster.etcd.endpoints, etcd_http_settings(cluster, timeout=timeout))


def haproxy_client(cluster: "ClusterConfig", *, timeout: float | None = None) -> "HAProxyClient":
    """An `HAProxyClient` for the context (stats socket preferred over the stats URL)."""
    from gardenctl.backends.haproxy import HAProxyClient

    h = cluster.haproxy
    return HAProxyClient(
        stats_socket=h.stats_socket,
        stats_url=h.stats_url,
        rw_backend=h.rw_backend,
        ro_backend=h.ro_backend,
        timeout_seconds=effective_timeout(cluster, timeout),
    )


def postgres_endpoint(cluster: "ClusterConfig", kind: Literal["rw", "ro"] = "rw", *, connect_timeout: int | None = None) -> "Endpoint":
    """Where to reach PostgreSQL through HAProxy: ``rw`` (``haproxy.rw-address``) or ``ro`` (``ro-address``).

    Raises `ConfigError` when the address is not configured or the password env/file is missing."""
    from gardenctl.backends.postgres import Endpoint
    from gardenctl.config import split_hostport

    if kind not in ("rw", "ro"):
        raise ValueError(f"kind must be 'rw' or 'ro', not {kind!r}")
    address = cluster.haproxy.rw_address if kind == "rw" else cluster.haproxy.ro_address
    if not address:
        key = "rw-address" if kind == "rw" else "ro-address"
        raise ConfigError(
            f"context {cluster.name}: haproxy.{key} is not set",
            hint=f"add haproxy.{key}: HOST:PORT (the HAProxy {'read-write' if kind == 'rw' else 'read-only'} listener) to the context",
        )
    host, port = split_hostport(address)
    pg = cluster.postgres
    password = pg.password.resolve(f"context {cluster.name}: postgres password") if pg.password.configured else None
    return Endpoint(
        host=host,
        port=port,
        user=pg.user,
        dbname=pg.dbname,
        password=password,
        sslmode=pg.sslmode,
        connect_timeout_seconds=connect_timeout if connect_timeout is not None else pg.connect_timeout_seconds,
    )
