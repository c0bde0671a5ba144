"""The Hetzner layer of `gardenctl status` / `check`: servers with status, type, location and private address.

Registered through `gardenctl.ops.status.OPTIONAL_LAYERS` (module ``gardenctl.ops.hetzner_status``): imported only
when the context has a ``hetzner`` section. It never imports hcloud (``status`` must start fast): two plain httpx GETs
(``/servers?label_selector=gardenos/cluster=<name>`` and ``/server_types``), parsed with `gardenctl.cloud`.

Rules: ``hetzner_servers`` (every inventory node exists and runs: a missing or stopped db / K3s server is CRITICAL,
an agent WARNING) and ``hetzner_server_type_retired`` (a server whose type is retired or unavailable in its location
is a WARNING: it runs, but cannot be replaced by the same type).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from gardenctl.cloud import CloudServer, ServerTypeInfo, server_from_api, server_type_from_api
from gardenctl.errors import BackendError, BackendUnreachable
from gardenctl.model import Finding, Severity
from gardenctl.ops.rules import RuleInput, rule


@dataclass(frozen=True, slots=True)
class HetznerServerRow:
    name: str
    role: str | None
    status: str
    server_type: str
    location: str | None
    private_ip: str | None
    public_ipv4: str | None = None
    type_problem: str | None = None  # "retired in fsn1 since 2026-01-01", ...


@dataclass(frozen=True, slots=True)
class HetznerStatus:
    """Servers of the cluster; an inventory node without a server is a row with status ``missing``."""

    __json_properties__ = ("summary", "missing")

    cluster: str
    servers: tuple[HetznerServerRow, ...]
    critical_roles: tuple[str, ...] = ("db", "k3s-server")

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.servers if s.status == "missing")

    @property
    def summary(self) -> str:
        present = [s for s in self.servers if s.status != "missing"]
        running = sum(1 for s in present if s.status == "running")
        text = f"{running}/{len(present)} servers running"
        if self.missing:
            text += f", {len(self.missing)} missing"
        return text

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(box=None, pad_edge=False, title=self.summary, title_justify="left")
        for col in ("SERVER", "ROLE", "STATUS", "TYPE", "LOCATION", "PRIVATE IP"):
            table.add_column(col)
        for s in self.servers:
            status = s.status if s.status == "running" else f"[red]{s.status}[/red]"
            stype = s.server_type if not s.type_problem else f"[yellow]{s.server_type} ({s.type_problem})[/yellow]"
            table.add_row(s.name, s.role or "-", status, stype, s.location or "-", s.private_ip or "-")
        return table


def _get_all(client: Any, path: str, key: str, params: dict[str, str]) -> list[dict[str, Any]]:
    import httpx

    items: list[dict[str, Any]] = []
    page = 1
    while True:
        try:
            resp = client.get(path, params={**params, "page": str(page), "per_page": "50"})
        except httpx.TimeoutException as exc:
            raise BackendUnreachable(f"Hetzner API {path}: timed out") from exc
        except httpx.TransportError as exc:
            raise BackendUnreachable(f"Hetzner API {path}: {exc}") from exc
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400 or not isinstance(data, dict):
            error = (data or {}).get("error") if isinstance(data, dict) else None
            code = (error or {}).get("code") or str(resp.status_code)
            message = (error or {}).get("message") or resp.reason_phrase
            raise BackendError(f"Hetzner API {path}: {message} ({code})", status=resp.status_code, code=code)
        items.extend(data.get(key) or [])
        nxt = ((data.get("meta") or {}).get("pagination") or {}).get("next_page")
        if not nxt or page >= 100:
            return items
        page = int(nxt)


def read(endpoint: str, token: str, selector: str, *, timeout: float) -> tuple[list[CloudServer], list[ServerTypeInfo]]:
    """Servers carrying ``selector`` and the server-type catalogue, with plain httpx (no hcloud)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}", "User-Agent": "gardenctl-status"}
    with httpx.Client(base_url=endpoint.rstrip("/") + "/", headers=headers, timeout=timeout, trust_env=False) as client:
        servers = [server_from_api(s) for s in _get_all(client, "servers", "servers", {"label_selector": selector})]
        types = [server_type_from_api(t) for t in _get_all(client, "server_types", "server_types", {})]
    return servers, types


def build(cluster: str, expected: Iterable[tuple[str, str]], servers: list[CloudServer], types: list[ServerTypeInfo], *, now: datetime | None = None) -> HetznerStatus:
    """Join servers with the catalogue; ``expected`` is (name, role) of every inventory node."""
    now = now or datetime.now(timezone.utc)
    by_type = {t.name: t for t in types}
    rows = []
    for s in sorted(servers, key=lambda s: s.name):
        stype = by_type.get(s.server_type)
        problem = _retired_problem(stype, s.location, now) if stype is not None and s.location else None
        rows.append(
            HetznerServerRow(
                name=s.name,
                role=s.role,
                status=s.status,
                server_type=s.server_type,
                location=s.location,
                private_ip=s.private_ip(),
                public_ipv4=s.public_ipv4,
                type_problem=problem,
            )
        )
    names = {s.name for s in servers}
    for name, role in expected:
        if name not in names:
            rows.append(HetznerServerRow(name=name, role=role, status="missing", server_type="-", location=None, private_ip=None))
    return HetznerStatus(cluster=cluster, servers=tuple(rows))


def _retired_problem(stype: ServerTypeInfo, location: str, now: datetime) -> str | None:
    """Only retirement counts for a running server (sold out here does not affect it)."""
    loc = stype.in_location(location)
    if loc is not None:
        return loc.problem(now) if loc.retired(now) else None
    if stype.unavailable_after is not None and stype.unavailable_after <= now:
        return f"retired since {stype.unavailable_after:%Y-%m-%d}"
    return None


def collect(cluster: Any, *, timeout: float) -> HetznerStatus:
    """The optional status layer: reads the inventory, the token, then the API. Raises GardenError on failure."""
    from gardenctl.inventory import parse_inventory

    inventory = parse_inventory(cluster)
    token = inventory.token.resolve()
    servers, types = read(inventory.endpoint, token, inventory.selector, timeout=max(timeout, 5.0))
    return build(inventory.cluster, [(n.name, n.role) for n in inventory.nodes], servers, types)


@rule("hetzner_servers", layer="hetzner", needs=("hetzner",), description="every inventory node has a running server")
def _servers(inp: RuleInput) -> Iterable[Finding]:
    status: HetznerStatus | None = inp.value("hetzner")
    if status is None:
        return []
    out = []
    for s in status.servers:
        if s.status != "running":
            sev = Severity.CRITICAL if s.role in status.critical_roles else Severity.WARNING
            what = "does not exist" if s.status == "missing" else f"is {s.status}"
            out.append(Finding("hetzner_servers", sev, f"server {s.name} ({s.role or 'no role label'}) {what}", layer="hetzner", subject=s.name))
    if not out:
        out.append(Finding("hetzner_servers", Severity.OK, status.summary, layer="hetzner"))
    return out


@rule("hetzner_server_type_retired", layer="hetzner", needs=("hetzner",), description="no server's type is retired or unavailable in its location")
def _retired(inp: RuleInput) -> Iterable[Finding]:
    status: HetznerStatus | None = inp.value("hetzner")
    if status is None:
        return []
    return [
        Finding(
            "hetzner_server_type_retired",
            Severity.WARNING,
            f"server {s.name}: type {s.server_type} is {s.type_problem}; a replacement needs another type (e.g. the -3 successor)",
            layer="hetzner",
            subject=s.name,
        )
        for s in status.servers
        if s.type_problem
    ]
