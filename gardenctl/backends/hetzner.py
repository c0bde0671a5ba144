"""The Hetzner Cloud adapter (hcloud-python). One chokepoint, `HetznerCloud._call`, decides on every API error.

Error policy (field case F10), decided on the error ``code``, never on the HTTP status:

* ``rate_limit_exceeded`` -> sleep until ``RateLimit-Reset`` (a Unix time), then retry. hcloud's `APIException`
  carries no headers, so the adapter adds a response hook to the client's own `requests.Session` that remembers the
  ``RateLimit-*`` headers of the last response *of the calling thread*; the chokepoint reads them after a 429.
  Without the header (a proxy answered) it falls back to an exponential backoff and says so.
* ``locked`` / ``conflict`` (a new server is locked for a moment) -> exponential backoff, then retry.
* ``uniqueness_error`` on a create -> the resource exists: adopt it when its name *and* the cluster label match;
  a same-named resource of someone else is refused, never taken over.
* ``resource_limit_exceeded`` / ``resource_unavailable`` -> stop, suggesting another server type or location.
* an action ending in ``error`` -> `OperationFailed` naming the action's command, error code and message.
* an HTML gateway page (502/503/504 from a load balancer) -> hcloud gives an *integer* code; retried like
  ``timeout``/``unavailable`` and reported with the status if it persists.

hcloud retries some of these itself (``conflict``, ``rate_limit_exceeded``, 502/504) with a jittered backoff that
ignores ``RateLimit-Reset``. The adapter turns that off on its own client (``_retry_max_retries = 0``), so there is one
policy in one place; `test_bootstrap_fake_hcloud` counts the requests to prove it. Sleeping goes through an
injectable `Clock`, so tests run at zero delay. Nothing here prints; waits are announced through ``notify``.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

from gardenctl.cloud import (
    CLUSTER_LABEL,
    ActionOutcome,
    CloudFirewall,
    CloudNetwork,
    CloudPlacementGroup,
    CloudServer,
    CloudSSHKey,
    CloudSubnet,
    FirewallRuleSpec,
    PrivateAddress,
    ServerTypeInfo,
    TypeLocation,
    parse_time,
)
from gardenctl.errors import BackendError, BackendUnreachable, OperationFailed, OperationTimeout, PreconditionFailed
from gardenctl.wait import REAL_CLOCK, Clock

T = TypeVar("T")

RETRY_CODES = frozenset({"locked", "conflict", "timeout", "unavailable", "bad_gateway", "server_error", "maintenance"})
STOP_CODES = frozenset({"resource_limit_exceeded", "resource_unavailable", "placement_error"})
GATEWAY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class ServerCreate:
    """Everything `create_server` sends. The private IP is attached before the first boot."""

    name: str
    server_type: str
    image: str
    location: str
    labels: dict[str, str]
    ssh_key_ids: tuple[int, ...]
    user_data: str
    placement_group_id: int | None
    network_id: int
    private_ip: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6  # for locked / conflict / gateway errors / transport errors
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 30.0
    max_rate_limit_wait_seconds: float = 900.0  # a longer wait is refused: re-run later
    rate_limit_waits: int = 3
    action_timeout_seconds: float = 900.0
    action_poll_seconds: float = 0.5
    action_poll_cap_seconds: float = 10.0


class HetznerCloud:
    """Adapter over hcloud-python: explicit configuration, model types out, gardenctl errors out."""

    def __init__(
        self,
        token: str,
        *,
        endpoint: str = "https://api.hetzner.cloud/v1",
        timeout_seconds: float = 30.0,
        policy: RetryPolicy | None = None,
        clock: Clock = REAL_CLOCK,
        wall: Callable[[], float] = time.time,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        import hcloud

        from gardenctl import __version__

        self.endpoint = endpoint
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.wall = wall
        self.notify = notify or (lambda _msg: None)
        self._local = threading.local()
        self._client = hcloud.Client(
            token=token,
            api_endpoint=endpoint,
            application_name="gardenctl",
            application_version=__version__,
            poll_interval=0,
            timeout=timeout_seconds,
        )
        base = getattr(self._client, "_client", None)
        # One retry policy, ours: hcloud's own retry loop would sleep a jittered 1..2^n s on 429 regardless of
        # RateLimit-Reset, and would hide how many requests were really made.
        if base is not None and hasattr(base, "_retry_max_retries"):
            base._retry_max_retries = 0
        session = getattr(base, "_session", None)
        self.header_hook_installed = session is not None
        if session is not None:
            session.hooks.setdefault("response", []).append(self._remember_response)

    # ------------------------------------------------------------------------------------------ chokepoint

    def _remember_response(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        self._local.last = (response.status_code, dict(response.headers))
        return response

    def _last_headers(self) -> dict[str, str]:
        last = getattr(self._local, "last", None)
        return {k.lower(): v for k, v in (last[1] if last else {}).items()}

    def _backoff(self, attempt: int) -> float:
        return min(self.policy.backoff_cap_seconds, self.policy.backoff_base_seconds * (2**attempt))

    def _call(self, what: str, fn: Callable[[], T], *, adopt: Callable[[], T | None] | None = None) -> T:
        """Run one API request with the F10 policy. ``adopt`` is called on ``uniqueness_error`` (creates only)."""
        from hcloud import APIException
        from requests import exceptions as rexc

        attempt = 0
        rate_waits = 0
        while True:
            self._local.last = None
            try:
                return fn()
            except APIException as exc:
                code = exc.code
                if isinstance(code, int):
                    # Not JSON: a gateway's HTML page. hcloud puts the HTTP status in `code`.
                    if code in GATEWAY_STATUSES and attempt + 1 < self.policy.max_attempts:
                        delay = self._backoff(attempt)
                        self.notify(f"{what}: Hetzner API gateway answered HTTP {code}; retrying in {delay:.0f}s")
                        self.clock.sleep(delay)
                        attempt += 1
                        continue
                    raise BackendError(
                        f"{what}: Hetzner API answered HTTP {code} {exc.message} (not a JSON API error)",
                        status=code,
                        code=str(code),
                        hint="the API or a proxy in front of it is failing; check status.hetzner.com and re-run (apply is idempotent)",
                    ) from exc
                if code == "rate_limit_exceeded":
                    headers = self._last_headers()
                    reset = headers.get("ratelimit-reset")
                    if reset and reset.strip().isdigit():
                        delay = max(0.0, float(reset) - self.wall()) + 1.0
                        how = f"until RateLimit-Reset ({delay:.0f}s)"
                    else:
                        delay = self._backoff(rate_waits + 2)
                        how = f"{delay:.0f}s (no RateLimit-Reset header)"
                    if delay > self.policy.max_rate_limit_wait_seconds or rate_waits >= self.policy.rate_limit_waits:
                        raise BackendError(
                            f"{what}: Hetzner API rate limit exceeded (limit {headers.get('ratelimit-limit', '?')} requests/hour)",
                            code=code,
                            status=429,
                            hint=f"the limit resets in about {delay:.0f}s; re-run then (apply resumes where it stopped)",
                        ) from exc
                    self.notify(f"{what}: rate limited by the Hetzner API; waiting {how}")
                    self.clock.sleep(delay)
                    rate_waits += 1
                    continue
                if code in RETRY_CODES and attempt + 1 < self.policy.max_attempts:
                    delay = self._backoff(attempt)
                    self.notify(f"{what}: {code} ({exc.message}); retrying in {delay:.0f}s")
                    self.clock.sleep(delay)
                    attempt += 1
                    continue
                if code == "uniqueness_error" and adopt is not None:
                    found = adopt()
                    if found is not None:
                        self.notify(f"{what}: already exists; adopted the existing one")
                        return found
                if code in STOP_CODES:
                    raise BackendError(
                        f"{what}: {exc.message} ({code})",
                        code=code,
                        status=None,
                        hint=(
                            "the project's limit is reached: delete unused resources or ask Hetzner support to raise it"
                            if code == "resource_limit_exceeded"
                            else "Hetzner has no capacity for this server type here now: "
                            "choose another server-type or location in the inventory and re-run"
                        ),
                    ) from exc
                raise BackendError(f"{what}: {exc.message} ({code})", code=str(code), hint=_hint_for(str(code))) from exc
            except (rexc.Timeout, rexc.ConnectionError) as exc:
                if attempt + 1 < self.policy.max_attempts:
                    delay = self._backoff(attempt)
                    self.notify(f"{what}: {type(exc).__name__}; retrying in {delay:.0f}s")
                    self.clock.sleep(delay)
                    attempt += 1
                    continue
                raise BackendUnreachable(f"{what}: cannot reach the Hetzner API at {self.endpoint}: {exc}") from exc

    # ------------------------------------------------------------------------------------------ actions

    def wait_for_actions(self, actions: list[Any], what: str) -> list[ActionOutcome]:
        """Poll actions until each ends, with a growing interval. An action ending in ``error`` raises
        OperationFailed naming its command, code and message; running past the timeout raises OperationTimeout."""
        pending = [a for a in actions if a is not None]
        done: list[ActionOutcome] = []
        interval = self.policy.action_poll_seconds
        deadline = self.clock.now() + self.policy.action_timeout_seconds
        while pending:
            still = []
            for action in pending:
                if action.status == "running":
                    action = self._call(f"{what}: poll action {action.id}", lambda a=action: self._client.actions.get_by_id(a.id))
                outcome = _action(action)
                if outcome.status == "running":
                    still.append(action)
                elif outcome.status == "error":
                    raise OperationFailed(
                        f"{what}: Hetzner action {outcome.command} (id {outcome.id}) ended in error: "
                        f"{outcome.error_code}: {outcome.error_message}",
                        hint="re-run `gardenctl bootstrap apply`: it keeps what exists and retries only what is missing",
                    )
                else:
                    done.append(outcome)
            pending = still
            if pending:
                if self.clock.now() >= deadline:
                    names = ", ".join(f"{a.command} ({a.id})" for a in pending)
                    raise OperationTimeout(f"{what}: Hetzner actions still running after {self.policy.action_timeout_seconds:.0f}s: {names}")
                self.clock.sleep(interval)
                interval = min(self.policy.action_poll_cap_seconds, interval * 1.5)
        return done

    # ------------------------------------------------------------------------------------------ catalogue

    def list_server_types(self) -> list[ServerTypeInfo]:
        return [_server_type(t) for t in self._call("list server types", self._client.server_types.get_all)]

    # ------------------------------------------------------------------------------------------ reading by labels

    def list_servers(self, selector: str) -> list[CloudServer]:
        return [_server(s) for s in self._call("list servers", lambda: self._client.servers.get_all(label_selector=selector))]

    def get_server(self, server_id: int) -> CloudServer:
        return _server(self._call(f"get server {server_id}", lambda: self._client.servers.get_by_id(server_id)))

    def list_networks(self, selector: str) -> list[CloudNetwork]:
        return [_network(n) for n in self._call("list networks", lambda: self._client.networks.get_all(label_selector=selector))]

    def list_firewalls(self, selector: str) -> list[CloudFirewall]:
        return [_firewall(f) for f in self._call("list firewalls", lambda: self._client.firewalls.get_all(label_selector=selector))]

    def list_placement_groups(self, selector: str) -> list[CloudPlacementGroup]:
        return [_pg(p) for p in self._call("list placement groups", lambda: self._client.placement_groups.get_all(label_selector=selector))]

    def list_ssh_keys(self, selector: str | None = None) -> list[CloudSSHKey]:
        return [_ssh_key(k) for k in self._call("list SSH keys", lambda: self._client.ssh_keys.get_all(label_selector=selector))]

    # ------------------------------------------------------------------------------------------ adoption

    def _adopt(self, kind: str, name: str, labels: dict[str, str], getter: Callable[[], Any], convert: Callable[[Any], T]) -> T:
        existing = self._call(f"look up {kind} {name}", getter)
        if existing is None:
            return None  # type: ignore[return-value]
        found = convert(existing)
        theirs = getattr(found, "labels", {}) or {}
        if theirs.get(CLUSTER_LABEL) != labels.get(CLUSTER_LABEL):
            raise PreconditionFailed(
                f"a {kind} named {name!r} already exists in the project but does not carry "
                f"{CLUSTER_LABEL}={labels.get(CLUSTER_LABEL)} (its labels: {theirs or 'none'})",
                hint=f"gardenctl never takes over resources it did not create: rename or delete that {kind}, or rename the cluster",
            )
        return found

    # ------------------------------------------------------------------------------------------ creating

    def ensure_ssh_key(self, name: str, public_key: str, labels: dict[str, str]) -> tuple[CloudSSHKey, bool]:
        """Upload a public key. If the same key is already in the project (under any name), use that one:
        Hetzner refuses duplicates by fingerprint. Returns (key, created)."""
        created: list[bool] = []

        def create() -> CloudSSHKey:
            key = self._client.ssh_keys.create(name=name, public_key=public_key, labels=labels)
            created.append(True)
            return _ssh_key(key)

        def adopt() -> CloudSSHKey | None:
            by_name = self._call(f"look up SSH key {name}", lambda: self._client.ssh_keys.get_by_name(name))
            if by_name is not None and _same_key(by_name.public_key, public_key):
                return _ssh_key(by_name)
            blob = public_key.split()[1] if len(public_key.split()) > 1 else public_key
            for key in self._call("list SSH keys", self._client.ssh_keys.get_all):
                if len(key.public_key.split()) > 1 and key.public_key.split()[1] == blob:
                    return _ssh_key(key)
            if by_name is not None:
                raise PreconditionFailed(
                    f"an SSH key named {name!r} already exists in the project with a different public key",
                    hint="rename or delete that key in the Hetzner console, or rename the cluster",
                )
            return None

        key = self._call(f"create SSH key {name}", create, adopt=adopt)
        return key, bool(created)

    def create_network(self, name: str, ip_range: str, subnet: str, zone: str, labels: dict[str, str]) -> tuple[CloudNetwork, bool]:
        from hcloud.networks import NetworkSubnet

        created: list[bool] = []

        def create() -> CloudNetwork:
            net = self._client.networks.create(
                name=name,
                ip_range=ip_range,
                subnets=[NetworkSubnet(type="cloud", ip_range=subnet, network_zone=zone)],
                labels=labels,
            )
            created.append(True)
            return _network(net)

        def adopt() -> CloudNetwork | None:
            return self._adopt("network", name, labels, lambda: self._client.networks.get_by_name(name), _network)

        return self._call(f"create network {name}", create, adopt=adopt), bool(created)

    def add_subnet(self, network_id: int, subnet: str, zone: str) -> None:
        from hcloud.networks import Network, NetworkSubnet

        action = self._call(
            f"add subnet {subnet}",
            lambda: self._client.networks.add_subnet(Network(id=network_id), NetworkSubnet(type="cloud", ip_range=subnet, network_zone=zone)),
        )
        self.wait_for_actions([action], f"add subnet {subnet}")

    def create_firewall(self, name: str, rules: list[FirewallRuleSpec], labels: dict[str, str], apply_selector: str) -> tuple[CloudFirewall, bool]:
        from hcloud.firewalls import FirewallResource, FirewallResourceLabelSelector

        created: list[bool] = []

        def create() -> CloudFirewall:
            resp = self._client.firewalls.create(
                name=name,
                rules=[_hc_rule(r) for r in rules],
                labels=labels,  # type: ignore[arg-type]
                resources=[FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector(selector=apply_selector))],
            )
            created.append(True)
            self.wait_for_actions(list(resp.actions or []), f"create firewall {name}")
            return _firewall(resp.firewall)

        def adopt() -> CloudFirewall | None:
            return self._adopt("firewall", name, labels, lambda: self._client.firewalls.get_by_name(name), _firewall)

        return self._call(f"create firewall {name}", create, adopt=adopt), bool(created)

    def set_firewall_rules(self, firewall_id: int, rules: list[FirewallRuleSpec]) -> None:
        from hcloud.firewalls import Firewall

        actions = self._call("set firewall rules", lambda: self._client.firewalls.set_rules(Firewall(id=firewall_id), [_hc_rule(r) for r in rules]))
        self.wait_for_actions(list(actions or []), "set firewall rules")

    def apply_firewall_to_selector(self, firewall_id: int, selector: str) -> None:
        from hcloud.firewalls import Firewall, FirewallResource, FirewallResourceLabelSelector

        res = FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector(selector=selector))
        actions = self._call("apply firewall", lambda: self._client.firewalls.apply_to_resources(Firewall(id=firewall_id), [res]))
        self.wait_for_actions(list(actions or []), "apply firewall")

    def create_placement_group(self, name: str, labels: dict[str, str]) -> tuple[CloudPlacementGroup, bool]:
        created: list[bool] = []

        def create() -> CloudPlacementGroup:
            resp = self._client.placement_groups.create(name=name, type="spread", labels=labels)
            created.append(True)
            return _pg(resp.placement_group)

        def adopt() -> CloudPlacementGroup | None:
            return self._adopt("placement group", name, labels, lambda: self._client.placement_groups.get_by_name(name), _pg)

        return self._call(f"create placement group {name}", create, adopt=adopt), bool(created)

    def create_server(self, spec: ServerCreate) -> tuple[CloudServer, bool]:
        """Create a server powered off, wait for it; returns (server, created). Attaching the private network and
        powering on are separate steps (`attach_to_network`, `power_on`), so the first boot already has the private
        address that cloud-init's configs name."""
        from hcloud.images import Image
        from hcloud.locations import Location
        from hcloud.placement_groups import PlacementGroup
        from hcloud.server_types import ServerType
        from hcloud.ssh_keys import SSHKey

        created: list[bool] = []

        def create() -> CloudServer:
            resp = self._client.servers.create(
                name=spec.name,
                server_type=ServerType(name=spec.server_type),
                image=Image(name=spec.image),
                location=Location(name=spec.location),
                ssh_keys=[SSHKey(id=i) for i in spec.ssh_key_ids],
                labels=dict(spec.labels),
                user_data=spec.user_data,
                placement_group=PlacementGroup(id=spec.placement_group_id) if spec.placement_group_id else None,
                start_after_create=False,
            )
            created.append(True)
            return _server(resp.server), [resp.action, *(resp.next_actions or [])]  # type: ignore[return-value]

        def adopt() -> Any:
            found = self._adopt("server", spec.name, spec.labels, lambda: self._client.servers.get_by_name(spec.name), _server)
            return (found, []) if found is not None else None

        server, actions = self._call(f"create server {spec.name}", create, adopt=adopt)  # type: ignore[misc]
        self.wait_for_actions(actions, f"create server {spec.name}")
        return server, bool(created)

    def attach_to_network(self, server_id: int, network_id: int, ip: str, what: str) -> None:
        from hcloud.networks import Network
        from hcloud.servers import Server

        action = self._call(
            f"attach {what} to the private network",
            lambda: self._client.servers.attach_to_network(Server(id=server_id), Network(id=network_id), ip=ip),
        )
        self.wait_for_actions([action], f"attach {what} to the private network")

    def power_on(self, server_id: int, what: str) -> None:
        from hcloud.servers import Server

        action = self._call(f"power on {what}", lambda: self._client.servers.power_on(Server(id=server_id)))
        self.wait_for_actions([action], f"power on {what}")

    def update_labels(self, kind: str, resource_id: int, labels: dict[str, str]) -> None:
        clients = {"server": self._client.servers, "network": self._client.networks, "firewall": self._client.firewalls, "placement_group": self._client.placement_groups}
        client = clients[kind]
        self._call(f"label {kind} {resource_id}", lambda: client.update(client.get_by_id(resource_id), labels=labels))

    # ------------------------------------------------------------------------------------------ deleting

    def delete_server(self, server_id: int, what: str) -> None:
        from hcloud.servers import Server

        action = self._call(f"delete server {what}", lambda: self._client.servers.delete(Server(id=server_id)))
        self.wait_for_actions([action], f"delete server {what}")

    def delete_firewall(self, firewall: CloudFirewall) -> None:
        from hcloud.firewalls import Firewall, FirewallResource, FirewallResourceLabelSelector

        if firewall.applied_selectors:
            resources = [FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector(selector=s)) for s in firewall.applied_selectors]
            actions = self._call(
                f"detach firewall {firewall.name}",
                lambda: self._client.firewalls.remove_from_resources(Firewall(id=firewall.id), resources),
            )
            self.wait_for_actions(list(actions or []), f"detach firewall {firewall.name}")
        self._call(f"delete firewall {firewall.name}", lambda: self._client.firewalls.delete(Firewall(id=firewall.id)))

    def delete_network(self, network_id: int, what: str) -> None:
        from hcloud.networks import Network

        self._call(f"delete network {what}", lambda: self._client.networks.delete(Network(id=network_id)))

    def delete_placement_group(self, pg_id: int, what: str) -> None:
        from hcloud.placement_groups import PlacementGroup

        self._call(f"delete placement group {what}", lambda: self._client.placement_groups.delete(PlacementGroup(id=pg_id)))

    def delete_ssh_key(self, key_id: int, what: str) -> None:
        from hcloud.ssh_keys import SSHKey

        self._call(f"delete SSH key {what}", lambda: self._client.ssh_keys.delete(SSHKey(id=key_id)))


# ------------------------------------------------------------------------------------------------ conversions


def _hint_for(code: str) -> str | None:
    return {
        "unauthorized": "the API token is wrong or revoked: create a read-write token in the Hetzner console (project > Security > API tokens)",
        "token_readonly": "the API token is read-only: bootstrap needs a read-write token",
        "forbidden": "the token's project may not do this",
        "invalid_input": "the inventory produced a request the API refused: check server types, images and locations",
        "protected": "the resource has delete protection on: turn it off in the Hetzner console first",
        "resource_in_use": "something outside this cluster still uses the resource",
    }.get(code)


def _same_key(a: str, b: str) -> bool:
    pa, pb = a.split(), b.split()
    return len(pa) > 1 and len(pb) > 1 and pa[:2] == pb[:2]


def _action(a: Any) -> ActionOutcome:
    error = getattr(a, "error", None) or {}
    return ActionOutcome(
        id=int(a.id),
        command=str(getattr(a, "command", None) or "?"),
        status=str(getattr(a, "status", None) or "unknown"),
        error_code=error.get("code") if isinstance(error, dict) else None,
        error_message=error.get("message") if isinstance(error, dict) else None,
    )


def _dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return parse_time(value)


def _server_type(t: Any) -> ServerTypeInfo:
    locations = []
    for loc in getattr(t, "locations", None) or []:
        dep = getattr(loc, "deprecation", None)
        locations.append(
            TypeLocation(
                location=loc.location.name,
                available=loc.available if isinstance(loc.available, bool) else None,
                deprecation_announced=_dt(getattr(dep, "announced", None)) if dep else None,
                unavailable_after=_dt(getattr(dep, "unavailable_after", None)) if dep else None,
            )
        )
    with warnings.catch_warnings():
        # hcloud warns on the top-level fields (superseded by locations[].deprecation, which decides here); they
        # are only a fallback for a location the type does not list.
        warnings.simplefilter("ignore", DeprecationWarning)
        dep = getattr(t, "deprecation", None)
        deprecated = bool(getattr(t, "deprecated", False))
    return ServerTypeInfo(
        name=t.name,
        architecture=t.architecture,
        cores=t.cores,
        memory_gb=t.memory,
        disk_gb=t.disk,
        cpu_type=t.cpu_type,
        deprecated=deprecated,
        unavailable_after=_dt(getattr(dep, "unavailable_after", None)) if dep else None,
        locations=tuple(locations),
    )


def _server(s: Any) -> CloudServer:
    ipv4 = s.public_net.ipv4.ip if s.public_net is not None and s.public_net.ipv4 is not None else None
    location = s.location.name if getattr(s, "location", None) is not None else None
    private = tuple(PrivateAddress(network_id=int(p.network.id), ip=p.ip) for p in (s.private_net or []))
    pg = getattr(s, "placement_group", None)
    return CloudServer(
        id=int(s.id),
        name=s.name,
        status=s.status or "unknown",
        server_type=s.server_type.name if s.server_type is not None else "unknown",
        location=location,
        labels=dict(s.labels or {}),
        public_ipv4=ipv4,
        private=private,
        placement_group_id=pg.id if pg is not None else None,
        image=s.image.name if getattr(s, "image", None) is not None else None,
        created=_dt(s.created),
    )


def _network(n: Any) -> CloudNetwork:
    return CloudNetwork(
        id=int(n.id),
        name=n.name,
        ip_range=n.ip_range,
        subnets=tuple(CloudSubnet(ip_range=s.ip_range, network_zone=s.network_zone, type=s.type) for s in (n.subnets or [])),
        labels=dict(n.labels or {}),
    )


def _firewall(f: Any) -> CloudFirewall:
    rules = tuple(
        FirewallRuleSpec(
            direction=r.direction,
            protocol=r.protocol,
            port=r.port,
            source_ips=tuple(r.source_ips or ()),
            description=r.description,
        )
        for r in (f.rules or [])
    )
    selectors = tuple(a.label_selector.selector for a in (f.applied_to or []) if a.type == "label_selector" and a.label_selector is not None)
    return CloudFirewall(id=int(f.id), name=f.name, labels=dict(f.labels or {}), rules=rules, applied_selectors=selectors)


def _pg(p: Any) -> CloudPlacementGroup:
    return CloudPlacementGroup(id=int(p.id), name=p.name, type=p.type, labels=dict(p.labels or {}), server_ids=tuple(p.servers or ()))


def _ssh_key(k: Any) -> CloudSSHKey:
    return CloudSSHKey(id=int(k.id), name=k.name, fingerprint=k.fingerprint, public_key=k.public_key, labels=dict(k.labels or {}))


def _hc_rule(r: FirewallRuleSpec) -> Any:
    from hcloud.firewalls import FirewallRule

    return FirewallRule(
        direction=r.direction,
        protocol=r.protocol,
        source_ips=list(r.source_ips),
        port=r.port,
        description=r.description,
    )
