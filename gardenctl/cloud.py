"""Frozen data for Hetzner Cloud resources, shared by the hcloud adapter, the light status reader and ops/bootstrap.

The hcloud adapter (`gardenctl.backends.hetzner`) converts the library's objects into these; the status layer
(`gardenctl.ops.hetzner_status`) parses the API's JSON into the same types with the ``*_from_api`` functions here,
without importing hcloud. Parsing is tolerant: unknown keys are ignored, missing optional keys become None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

CLUSTER_LABEL = "gardenos/cluster"
ROLE_LABEL = "gardenos/role"


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class TypeLocation:
    """A server type in one location: ``available`` None means the API did not say (older API versions)."""

    location: str
    available: bool | None = None
    deprecation_announced: datetime | None = None
    unavailable_after: datetime | None = None

    def retired(self, now: datetime) -> bool:
        return self.unavailable_after is not None and self.unavailable_after <= now

    def problem(self, now: datetime) -> str | None:
        """Why a new server of this type cannot be ordered here, or None."""
        if self.retired(now):
            assert self.unavailable_after is not None
            return f"retired in {self.location} since {self.unavailable_after:%Y-%m-%d}"
        if self.available is False:
            return f"not available in {self.location} right now (sold out)"
        return None


@dataclass(frozen=True, slots=True)
class ServerTypeInfo:
    name: str
    architecture: str | None = None
    cores: int | None = None
    memory_gb: float | None = None
    disk_gb: int | None = None
    cpu_type: str | None = None
    deprecated: bool = False
    unavailable_after: datetime | None = None
    locations: tuple[TypeLocation, ...] = ()

    def in_location(self, location: str) -> TypeLocation | None:
        return next((loc for loc in self.locations if loc.location == location), None)

    def problem_in(self, location: str, now: datetime) -> str | None:
        """Why this type cannot be used in ``location`` (per-location deprecation and availability first), or None."""
        loc = self.in_location(location)
        if loc is None:
            if self.unavailable_after is not None and self.unavailable_after <= now:
                return f"retired since {self.unavailable_after:%Y-%m-%d}"
            return f"not offered in {location}"
        return loc.problem(now)


@dataclass(frozen=True, slots=True)
class PrivateAddress:
    network_id: int
    ip: str


@dataclass(frozen=True, slots=True)
class CloudServer:
    id: int
    name: str
    status: str
    server_type: str
    location: str | None
    labels: dict[str, str] = field(default_factory=dict)
    public_ipv4: str | None = None
    private: tuple[PrivateAddress, ...] = ()
    placement_group_id: int | None = None
    image: str | None = None
    created: datetime | None = None

    @property
    def role(self) -> str | None:
        return self.labels.get(ROLE_LABEL)

    def private_ip(self, network_id: int | None = None) -> str | None:
        for p in self.private:
            if network_id is None or p.network_id == network_id:
                return p.ip
        return None


@dataclass(frozen=True, slots=True)
class CloudSubnet:
    ip_range: str
    network_zone: str
    type: str = "cloud"


@dataclass(frozen=True, slots=True)
class CloudNetwork:
    id: int
    name: str
    ip_range: str
    subnets: tuple[CloudSubnet, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FirewallRuleSpec:
    direction: str
    protocol: str
    port: str | None
    source_ips: tuple[str, ...]
    description: str | None = None

    def key(self) -> tuple:
        return (self.direction, self.protocol, self.port or "", tuple(sorted(self.source_ips)))


@dataclass(frozen=True, slots=True)
class CloudFirewall:
    id: int
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    rules: tuple[FirewallRuleSpec, ...] = ()
    applied_selectors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CloudPlacementGroup:
    id: int
    name: str
    type: str
    labels: dict[str, str] = field(default_factory=dict)
    server_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CloudSSHKey:
    id: int
    name: str
    fingerprint: str | None
    public_key: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    id: int
    command: str
    status: str
    error_code: str | None = None
    error_message: str | None = None


# ------------------------------------------------------------------------------------------------ JSON parsers


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()} if isinstance(value, dict) else {}


def server_type_from_api(data: dict[str, Any]) -> ServerTypeInfo:
    locations = []
    for loc in data.get("locations") or []:
        dep = loc.get("deprecation") or {}
        locations.append(
            TypeLocation(
                location=str(loc.get("name") or (loc.get("location") or {}).get("name") or loc.get("id")),
                available=loc.get("available") if isinstance(loc.get("available"), bool) else None,
                deprecation_announced=parse_time(dep.get("announced")),
                unavailable_after=parse_time(dep.get("unavailable_after")),
            )
        )
    dep = data.get("deprecation") or {}
    return ServerTypeInfo(
        name=str(data.get("name")),
        architecture=data.get("architecture"),
        cores=data.get("cores"),
        memory_gb=data.get("memory"),
        disk_gb=data.get("disk"),
        cpu_type=data.get("cpu_type"),
        deprecated=bool(data.get("deprecated")),
        unavailable_after=parse_time(dep.get("unavailable_after")),
        locations=tuple(locations),
    )


def server_from_api(data: dict[str, Any]) -> CloudServer:
    public = data.get("public_net") or {}
    ipv4 = (public.get("ipv4") or {}).get("ip")
    location = (data.get("location") or {}).get("name") or ((data.get("datacenter") or {}).get("location") or {}).get("name")
    private = tuple(
        PrivateAddress(network_id=int(p.get("network")), ip=str(p.get("ip")))
        for p in data.get("private_net") or []
        if p.get("network") is not None and p.get("ip")
    )
    pg = data.get("placement_group") or {}
    return CloudServer(
        id=int(data.get("id")),
        name=str(data.get("name")),
        status=str(data.get("status") or "unknown"),
        server_type=str((data.get("server_type") or {}).get("name") or "unknown"),
        location=location,
        labels=_labels(data.get("labels")),
        public_ipv4=ipv4,
        private=private,
        placement_group_id=pg.get("id") if isinstance(pg, dict) else None,
        image=(data.get("image") or {}).get("name"),
        created=parse_time(data.get("created")),
    )
