"""The ``hetzner`` section of a context: what `gardenctl bootstrap` builds, parsed and validated before anything else.

``ClusterConfig.hetzner`` is kept raw by `gardenctl.config`; `parse_inventory` turns it into an `Inventory`, with
every mistake reported as one line naming the file, the line and the key (through `config.Section`)::

    clusters:
      garden:
        ...                                   # patroni / etcd / haproxy as for any context
        hetzner:
          token-env: HCLOUD_TOKEN             # default; or token-file: PATH, or token-command: "pass show hcloud"
          location: fsn1                      # default location of every pool
          network: {ip-range: 10.0.0.0/16, subnet: 10.0.1.0/24}
          ssh-keys: [~/.ssh/id_ed25519.pub]   # public keys put on every server (a path or the key itself)
          ssh-private-key: ~/.ssh/id_ed25519  # how gardenctl logs in to install K3s
          allowed-networks: [203.0.113.7/32]  # may reach SSH (22) and the Kubernetes API (6443)
          protected: false                    # true: `bootstrap destroy` refuses
          pools:
            db:         {count: 3, server-type: cx33, image: debian-12}
            k3s-server: {count: 1, server-type: cx23, image: debian-12}
            k3s-agent:  {count: 2, server-type: cx23, image: debian-12}
          k3s: {version: v1.31.4+k3s1, cluster-cidr: 10.42.0.0/16, service-cidr: 10.43.0.0/16, tls-san: []}
          stack: {scope: pg-main, ttl: 20, loop-wait: 2, retry-timeout: 5}

Addresses on the private network are fixed by the inventory (db: subnet host 11.., K3s servers 21.., agents 101..),
so every file can be rendered, reviewed and diffed before a server exists.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from gardenctl.cloud import CLUSTER_LABEL, ROLE_LABEL, ServerTypeInfo
from gardenctl.config import ClusterConfig, Section
from gardenctl.errors import ConfigError, PreconditionFailed
from gardenctl.stack import Timing

DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"
DEFAULT_TOKEN_ENV = "HCLOUD_TOKEN"
POOL_ROLES = ("db", "k3s-server", "k3s-agent")
DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
DEFAULT_INSTALL_SCRIPT = "https://get.k3s.io"
SPREAD_GROUP_MAX = 10  # Hetzner: a spread placement group holds at most 10 servers

# Hetzner's network zones per location (docs.hetzner.cloud: "Network Zones"); other locations need network-zone.
LOCATION_ZONES = {
    "fsn1": "eu-central",
    "nbg1": "eu-central",
    "hel1": "eu-central",
    "ash": "us-east",
    "hil": "us-west",
    "sin": "ap-southeast",
}

# Retired by Hetzner in late 2025 (successors: cx23..cx53, cpx12..cpx52). Checked offline so `render` refuses them too;
# the API's per-location deprecation data stays the authority (`check_catalog`).
RETIRED_TYPES = {
    "cx22": "cx23", "cx32": "cx33", "cx42": "cx43", "cx52": "cx53",
    "cpx11": "cpx12", "cpx21": "cpx22", "cpx31": "cpx32", "cpx41": "cpx42", "cpx51": "cpx52",
}

# The PostgreSQL major each distribution image ships (its `postgresql` package), for bin_dir and data_dir.
IMAGE_POSTGRES = {"debian-12": 15, "debian-13": 17, "ubuntu-22.04": 14, "ubuntu-24.04": 16}

# Host number inside the subnet where each pool starts (db 11.., servers 21.., agents 101..).
POOL_OFFSETS = {"db": 10, "k3s-server": 20, "k3s-agent": 100}
POOL_LIMITS = {"db": 3, "k3s-server": 7, "k3s-agent": 150}

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


# ------------------------------------------------------------------------------------------------ types


@dataclass(frozen=True, slots=True)
class TokenSource:
    """Where the Hetzner API token lives. Never inline in the config file."""

    env: str | None = DEFAULT_TOKEN_ENV
    file: str | None = None
    command: str | None = None

    def describe(self) -> str:
        if self.file:
            return f"file:{self.file}"
        if self.command:
            return f"command:{self.command}"
        return f"env:{self.env}"

    def resolve(self) -> str:
        """The token. Raises ConfigError naming the source when it is missing or empty."""
        if self.file:
            try:
                value = Path(self.file).expanduser().read_text().strip()
            except OSError as exc:
                raise ConfigError(f"hetzner token-file {self.file}: {exc.strerror}") from exc
        elif self.command:
            try:
                proc = subprocess.run(shlex.split(self.command), capture_output=True, text=True, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ConfigError(f"hetzner token-command {self.command!r} could not run: {exc}") from exc
            if proc.returncode != 0:
                raise ConfigError(
                    f"hetzner token-command {self.command!r} exited with {proc.returncode}",
                    hint=(proc.stderr.strip().splitlines() or [""])[-1][:200] or None,
                )
            value = proc.stdout.strip()
        else:
            value = os.environ.get(self.env or DEFAULT_TOKEN_ENV, "").strip()
            if not value:
                raise ConfigError(
                    f"the Hetzner API token is not set: environment variable {self.env} is empty",
                    hint=f"export {self.env}=... (a read-write API token of the project), or set hetzner.token-file / token-command",
                )
        if not value:
            raise ConfigError(f"the Hetzner API token from {self.describe()} is empty")
        return value


@dataclass(frozen=True, slots=True)
class Pool:
    role: str
    count: int
    server_type: str
    image: str
    location: str


@dataclass(frozen=True, slots=True)
class K3sSettings:
    version: str | None = None
    channel: str | None = None
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    service_cidr: str = DEFAULT_SERVICE_CIDR
    api_address: str | None = None
    tls_san: tuple[str, ...] = ()
    install_script: str = DEFAULT_INSTALL_SCRIPT
    kubeconfig: str | None = None


@dataclass(frozen=True, slots=True)
class StackSettings:
    scope: str
    timing: Timing = field(default_factory=Timing)
    postgres_version: int = 15
    synchronous_mode: bool = False


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One server the inventory asks for."""

    name: str
    role: str
    index: int
    server_type: str
    image: str
    location: str
    private_ip: str
    placement_group: str

    @property
    def labels(self) -> dict[str, str]:
        return {ROLE_LABEL: self.role}


@dataclass(frozen=True, slots=True)
class Inventory:
    cluster: str
    token: TokenSource
    endpoint: str
    location: str
    network_zone: str
    ip_range: str
    subnet: str
    ssh_public_keys: tuple[str, ...]
    ssh_private_key: str | None
    ssh_user: str
    allowed_networks: tuple[str, ...]
    protected: bool
    pools: tuple[Pool, ...]
    k3s: K3sSettings
    stack: StackSettings
    source: str = ""
    line: int = 0

    # -- names and labels (one place, so plan/apply/destroy/status agree)
    @property
    def labels(self) -> dict[str, str]:
        return {CLUSTER_LABEL: self.cluster}

    @property
    def selector(self) -> str:
        return f"{CLUSTER_LABEL}={self.cluster}"

    def role_selector(self, role: str) -> str:
        return f"{self.selector},{ROLE_LABEL}={role}"

    @property
    def network_name(self) -> str:
        return self.cluster

    @property
    def firewall_name(self) -> str:
        return self.cluster

    @property
    def ssh_key_names(self) -> tuple[str, ...]:
        return tuple(f"{self.cluster}-{i + 1}" for i in range(len(self.ssh_public_keys)))

    def pool(self, role: str) -> Pool | None:
        return next((p for p in self.pools if p.role == role), None)

    def count(self, role: str) -> int:
        pool = self.pool(role)
        return pool.count if pool else 0

    @property
    def placement_groups(self) -> tuple[tuple[str, str], ...]:
        """(name, role) of every spread group: one per pool, split every 10 servers."""
        out = []
        for pool in self.pools:
            groups = max(1, -(-pool.count // SPREAD_GROUP_MAX)) if pool.count else 0
            for g in range(groups):
                out.append((f"{self.cluster}-{pool.role}" + (f"-{g + 1}" if groups > 1 else ""), pool.role))
        return tuple(out)

    @property
    def nodes(self) -> tuple[NodeSpec, ...]:
        subnet = ipaddress.ip_network(self.subnet)
        out = []
        for pool in self.pools:
            groups = max(1, -(-pool.count // SPREAD_GROUP_MAX))
            for i in range(pool.count):
                group = f"{self.cluster}-{pool.role}" + (f"-{i // SPREAD_GROUP_MAX + 1}" if groups > 1 else "")
                out.append(
                    NodeSpec(
                        name=f"{self.cluster}-{pool.role}-{i + 1}",
                        role=pool.role,
                        index=i + 1,
                        server_type=pool.server_type,
                        image=pool.image,
                        location=pool.location,
                        private_ip=str(subnet.network_address + POOL_OFFSETS[pool.role] + i + 1),
                        placement_group=group,
                    )
                )
        return tuple(out)

    def nodes_of(self, role: str) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if n.role == role)


# ------------------------------------------------------------------------------------------------ parsing


def _cidr(sec: Section, key: str, default: str | None = None, *, required: bool = False) -> str:
    value = sec.get(key, str, default, required=required)
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise sec.error(f"{value!r} is not a valid network in CIDR notation ({exc})", sec.key_line(key), key) from exc
    return str(net)


def _check_cidr_item(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "is not a network in CIDR notation (e.g. 203.0.113.7/32)"
    return None


def _public_key(value: str, sec: Section, key: str) -> str:
    text = value.strip()
    if not text.startswith(("ssh-", "ecdsa-", "sk-")):
        path = Path(text).expanduser()
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise sec.error(f"{value!r}: cannot read public key file ({exc.strerror})", sec.key_line(key), key) from exc
    parts = text.split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise sec.error(f"{value!r} is not an OpenSSH public key (ssh-ed25519 AAAA... or a path to a .pub file)", sec.key_line(key), key)
    if "PRIVATE KEY" in text:
        raise sec.error(f"{value!r} is a private key; list public keys (.pub) here", sec.key_line(key), key)
    try:
        blob = base64.b64decode(parts[1], validate=True)
        kind_len = int.from_bytes(blob[:4], "big")
        embedded = blob[4 : 4 + kind_len].decode()
    except (ValueError, UnicodeDecodeError):
        embedded = ""
    if embedded != parts[0]:
        raise sec.error(f"{_short(value)}: the key data is damaged (not the base64 of a {parts[0]} key)", sec.key_line(key), key)
    return " ".join(parts[:3])


def _short(value: str) -> str:
    return value if len(value) <= 40 else value[:37] + "..."


def _positive(sec: Section, key: str, default: int) -> int:
    value = sec.get(key, int, default)
    if value <= 0:
        raise sec.error("must be a positive integer", sec.key_line(key), key)
    return value


def parse_inventory(cluster: ClusterConfig) -> Inventory:
    """The validated inventory of ``cluster``; ConfigError (exit 4) when the section is missing or wrong."""
    source = cluster.source or "config"
    if cluster.hetzner is None:
        raise ConfigError(
            f"{source}: context {cluster.name!r} has no hetzner section",
            hint="add clusters.<name>.hetzner (docs/bootstrap.md) or choose another --context",
        )
    line = getattr(cluster.hetzner, "line", 0) or cluster.line
    sec = Section(cluster.hetzner, f"clusters.{cluster.name}.hetzner", source, line)
    return parse_section(cluster.name, sec)


def parse_section(name: str, sec: Section) -> Inventory:
    if not _NAME.match(name):
        raise sec.error(
            f"cluster name {name!r} cannot name Hetzner servers: use lower-case letters, digits and '-', at most 40",
            sec.line,
        )
    if sec.has("token"):
        err = sec.error("inline API tokens are not accepted", sec.key_line("token"), "token")
        err.hint = "use token-env: HCLOUD_TOKEN (the default), token-file: PATH or token-command: COMMAND"
        raise err
    given = [k for k in ("token-env", "token-file", "token-command") if sec.has(k)]
    if len(given) > 1:
        raise sec.error(f"set only one of token-env, token-file, token-command (found {', '.join(given)})", sec.key_line(given[1]))
    token = TokenSource(
        env=sec.get("token-env", str, DEFAULT_TOKEN_ENV),
        file=sec.get("token-file", str),
        command=sec.get("token-command", str),
    )
    endpoint = sec.get("endpoint", str, DEFAULT_ENDPOINT).rstrip("/")
    if not endpoint.startswith(("https://", "http://")):
        raise sec.error("expected an http(s) URL", sec.key_line("endpoint"), "endpoint")

    location = sec.get("location", str, required=True)
    zone = sec.get("network-zone", str) or LOCATION_ZONES.get(location)
    if zone is None:
        raise sec.error(
            f"unknown location {location!r}: set network-zone too (known: {', '.join(sorted(LOCATION_ZONES))})",
            sec.key_line("location"),
            "location",
        )

    net = sec.section("network", required=True)
    ip_range = _cidr(net, "ip-range", required=True)
    subnet = _cidr(net, "subnet", required=True)
    net.reject_unknown()
    rng, sub = ipaddress.ip_network(ip_range), ipaddress.ip_network(subnet)
    if rng.version != 4 or not rng.is_private:
        raise net.error(f"{ip_range} must be a private IPv4 range (RFC 1918, e.g. 10.0.0.0/16)", net.key_line("ip-range"), "ip-range")
    if sub.version != 4 or not sub.subnet_of(rng):  # type: ignore[arg-type]
        raise net.error(f"{subnet} is not inside ip-range {ip_range}", net.key_line("subnet"), "subnet")

    keys_raw = sec.get_str_list("ssh-keys", required=True)
    if not keys_raw:
        raise sec.error("needs at least one public key (servers are created without root passwords)", sec.key_line("ssh-keys"), "ssh-keys")
    ssh_keys = tuple(_public_key(k, sec, "ssh-keys") for k in keys_raw)
    allowed = sec.get_str_list("allowed-networks", required=True, check=_check_cidr_item)
    if not allowed:
        raise sec.error("needs at least one network allowed to reach SSH and the Kubernetes API", sec.key_line("allowed-networks"), "allowed-networks")
    allowed = tuple(str(ipaddress.ip_network(a, strict=False)) for a in allowed)

    pools_sec = sec.section("pools", required=True)
    pools: list[Pool] = []
    for role in POOL_ROLES:
        if not pools_sec.has(role):
            if role == "k3s-agent":
                pools_sec.raw(role)
                continue
            raise pools_sec.error("is required but missing", pools_sec.line, role)
        ps = pools_sec.section(role)
        count = ps.get("count", int, required=True)
        server_type = ps.get("server-type", str, required=True).lower()
        image = ps.get("image", str, "debian-12")
        loc = ps.get("location", str, location)
        ps.reject_unknown()
        if count < 0:
            raise ps.error("must not be negative", ps.key_line("count"), "count")
        if role == "db" and count != 3:
            raise ps.error(f"must be 3 (got {count}): 3 PostgreSQL nodes, each an etcd member (an odd quorum)", ps.key_line("count"), "count")
        if role == "k3s-server" and (count < 1 or count % 2 == 0):
            raise ps.error(
                f"must be odd (1 or 3; got {count}): K3s servers run embedded etcd, which needs an odd quorum",
                ps.key_line("count"),
                "count",
            )
        if count > POOL_LIMITS[role]:
            raise ps.error(f"at most {POOL_LIMITS[role]} (got {count})", ps.key_line("count"), "count")
        if server_type in RETIRED_TYPES:
            err = ps.error(
                f"server type {server_type} was retired by Hetzner in late 2025 and cannot be ordered",
                ps.key_line("server-type"),
                "server-type",
            )
            err.hint = f"use {RETIRED_TYPES[server_type]} (its successor)"
            raise err
        loc_zone = LOCATION_ZONES.get(loc, zone)
        if loc_zone != zone:
            raise ps.error(
                f"location {loc} is in network zone {loc_zone}, but the private network's subnet is in {zone}",
                ps.key_line("location"),
                "location",
            )
        pools.append(Pool(role=role, count=count, server_type=server_type, image=image, location=loc))
    pools_sec.reject_unknown()

    needed = max(POOL_OFFSETS[p.role] + p.count for p in pools) + 1
    if sub.num_addresses - 1 <= needed:
        raise net.error(f"subnet {subnet} is too small for the nodes (needs host numbers up to {needed}; use a /24)", net.key_line("subnet"), "subnet")

    ks = sec.section("k3s")
    k3s = K3sSettings(
        version=ks.get("version", str),
        channel=ks.get("channel", str),
        cluster_cidr=_cidr(ks, "cluster-cidr", DEFAULT_CLUSTER_CIDR),
        service_cidr=_cidr(ks, "service-cidr", DEFAULT_SERVICE_CIDR),
        api_address=ks.get("api-address", str),
        tls_san=ks.get_str_list("tls-san"),
        install_script=ks.get("install-script", str, DEFAULT_INSTALL_SCRIPT),
        kubeconfig=ks.get("kubeconfig", str),
    )
    ks.reject_unknown()
    ranges = {"network.ip-range": rng, "k3s.cluster-cidr": ipaddress.ip_network(k3s.cluster_cidr), "k3s.service-cidr": ipaddress.ip_network(k3s.service_cidr)}
    names = list(ranges)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if ranges[a].overlaps(ranges[b]):  # type: ignore[arg-type]
                where = ks if b.startswith("k3s") else net
                raise where.error(
                    f"{a} {ranges[a]} overlaps {b} {ranges[b]}: pods, services and nodes need separate ranges",
                    where.key_line(b.split(".")[1]) if b.startswith("k3s") else where.line,
                )
    for san in k3s.tls_san:
        if not san or " " in san:
            raise ks.error(f"tls-san entry {san!r} is not a host name or address", ks.key_line("tls-san"), "tls-san")

    st = sec.section("stack")
    db_image = next(p.image for p in pools if p.role == "db")
    pg_default = IMAGE_POSTGRES.get(db_image)
    pg_version = st.get("postgres-version", int, pg_default)
    if pg_version is None:
        raise st.error(
            f"cannot tell which PostgreSQL the image {db_image!r} ships: set postgres-version",
            st.line,
            "postgres-version",
        )
    d = Timing()
    timing = Timing(
        ttl_seconds=_positive(st, "ttl", d.ttl_seconds),
        loop_wait_seconds=_positive(st, "loop-wait", d.loop_wait_seconds),
        retry_timeout_seconds=_positive(st, "retry-timeout", d.retry_timeout_seconds),
        check_inter_ms=d.check_inter_ms,
        check_fall=d.check_fall,
        check_rise=d.check_rise,
    )
    problems = timing.problems()
    if problems:
        raise st.error("; ".join(problems), st.line)
    stack = StackSettings(
        scope=st.get("scope", str, name),
        timing=timing,
        postgres_version=pg_version,
        synchronous_mode=st.get("synchronous-mode", bool, False),
    )
    st.reject_unknown()

    inventory = Inventory(
        cluster=name,
        token=token,
        endpoint=endpoint,
        location=location,
        network_zone=zone,
        ip_range=ip_range,
        subnet=subnet,
        ssh_public_keys=ssh_keys,
        ssh_private_key=sec.get("ssh-private-key", str),
        ssh_user=sec.get("ssh-user", str, "root"),
        allowed_networks=allowed,
        protected=sec.get("protected", bool, False),
        pools=tuple(pools),
        k3s=k3s,
        stack=stack,
        source=sec.source,
        line=sec.line,
    )
    sec.reject_unknown()
    return inventory


# ------------------------------------------------------------------------------------------------ against the API


def check_catalog(inventory: Inventory, types: Iterable[ServerTypeInfo], *, now: datetime | None = None) -> None:
    """Refuse pools whose server type cannot be ordered in their location.

    Reads each type's per-location entry (``locations[].deprecation`` and ``available``), not only the top-level
    ``deprecated`` flag: a type can be retired or sold out in one location and fine in another.
    """
    now = now or datetime.now(timezone.utc)
    by_name = {t.name: t for t in types}
    problems: list[str] = []
    hints: list[str] = []
    for pool in inventory.pools:
        if pool.count == 0:
            continue
        stype = by_name.get(pool.server_type)
        if stype is None:
            problems.append(f"pool {pool.role}: server type {pool.server_type} does not exist")
            continue
        problem = stype.problem_in(pool.location, now)
        if problem:
            problems.append(f"pool {pool.role}: server type {pool.server_type} is {problem}")
            alternatives = [
                t.name
                for t in by_name.values()
                if t.name != stype.name
                and t.architecture == stype.architecture
                and t.cpu_type == stype.cpu_type
                and (t.cores or 0) >= (stype.cores or 0)
                and t.problem_in(pool.location, now) is None
            ]
            alternatives.sort(key=lambda n: ((by_name[n].cores or 0), (by_name[n].memory_gb or 0), n))
            elsewhere = sorted(loc.location for loc in stype.locations if loc.problem(now) is None)
            hint = f"{pool.role}: try server-type {', '.join(alternatives[:3])}" if alternatives else f"{pool.role}: choose another server type"
            if elsewhere:
                hint += f" in {pool.location}, or {pool.server_type} in {', '.join(elsewhere)}"
            hints.append(hint)
    if problems:
        raise PreconditionFailed(
            problems[0] if len(problems) == 1 else f"{len(problems)} pools cannot be ordered",
            hint="; ".join(hints) or None,
            details=problems if len(problems) > 1 else None,
        )


def describe(inventory: Inventory) -> dict[str, Any]:
    """A plain summary (for `bootstrap render` and plan output)."""
    return {
        "cluster": inventory.cluster,
        "location": inventory.location,
        "network": {"ip-range": inventory.ip_range, "subnet": inventory.subnet, "zone": inventory.network_zone},
        "token": inventory.token.describe(),
        "nodes": [{"name": n.name, "role": n.role, "type": n.server_type, "image": n.image, "location": n.location, "private-ip": n.private_ip} for n in inventory.nodes],
    }
