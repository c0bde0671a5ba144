"""A fake Hetzner Cloud API server for tests, spoken to by the real ``hcloud`` library.

Start it with :func:`tests.fakes.hetzner.fixture.start_fake_hcloud` (or the ``fake_hcloud``
pytest fixture) and point ``hcloud.Client(api_endpoint=fake.endpoint, ...)`` at it.

Semantics that follow the real API
----------------------------------
* Bearer-token auth (401 ``unauthorized``), ``RateLimit-*`` headers on every response, a real
  token bucket (``rate_limit`` requests, refilled at ``rate_limit``/hour) -> 429.
* Every request body and every JSON response body is validated against the operation's schema
  in ``spec/hcloud-openapi.json``. Bad request -> 422 ``invalid_input`` with
  ``details.fields``; a response that does not validate is recorded in ``fake.violations``
  and answered with 500, and the pytest fixture fails the test at teardown.
* ``name``/``label_selector``/``sort``/``page``/``per_page`` on list endpoints, ``meta.pagination``
  and a ``Link`` header; name uniqueness -> 409 ``uniqueness_error``.
* Actions stay ``running`` for ``action_polls`` observations (default 2), then end in
  ``success`` (or ``error`` when injected with :meth:`FakeHcloud.fail_next_action`).
  An observation is any GET that returns the action (``/actions/{id}``, ``/actions?id=``,
  ``/<resource>/actions...``) and ``GET /servers/{id}`` for that server's actions.

Relationships have one source of truth each: a server's ``private_net`` (network membership;
``network.servers`` is derived), a placement group's ``servers`` (``server.placement_group`` is
derived) and a firewall's ``applied_to`` (``server.public_net.firewalls`` is derived).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import itertools
import json
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

from . import seed
from .spec import describe_errors, get_spec

# Status codes per error code, from the "Errors" table of the Hetzner Cloud API reference
# (docs.hetzner.cloud/reference/cloud#description/errors) and, for operation-specific codes, the
# "Operation specific errors" tables of the same reference.
ERROR_STATUS: dict[str, int] = {
    "json_error": 400,
    "unauthorized": 401,
    "token_readonly": 401,
    "forbidden": 403,
    "maintenance": 403,
    "resource_limit_exceeded": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "uniqueness_error": 409,
    "conflict": 409,
    "deprecated_api_endpoint": 410,
    "resource_unavailable": 412,
    "invalid_input": 422,
    "service_error": 422,
    "unsupported_error": 422,
    "locked": 423,
    "protected": 423,
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "bad_gateway": 502,
    "unavailable": 503,
    "timeout": 504,
    # operation specific (all 422 in the reference's operation tables)
    "placement_error": 422,
    "placement_group_member_limit_reached": 422,
    "already_in_placement_group": 422,
    "server_already_attached": 422,
    "server_not_attached_to_network": 422,
    "no_subnet_available": 422,
    "ip_not_available": 422,
    "networks_overlap": 422,
    "resource_in_use": 422,
    "firewall_already_applied": 422,
    "firewall_already_removed": 422,
    "server_already_added": 422,
    "invalid_server_type": 422,
    "server_not_stopped": 422,
}

# Injectable non-JSON gateway answers, as a load balancer in front of the API sends them.
HTML_ERRORS = {
    "html_502": (502, "Bad Gateway"),
    "html_503": (503, "Service Temporarily Unavailable"),
    "html_504": (504, "Gateway Time-out"),
}

_VALID_BODIES: set[tuple] = set()  # (method, template, status, sha1 of body) that validated

MAX_PER_PAGE = 50
DEFAULT_PER_PAGE = 25
SPREAD_GROUP_LIMIT = 10
NETWORK_ZONES = ("eu-central", "us-east", "us-west", "ap-southeast")


class ApiError(Exception):
    """Raised by handlers; rendered as ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None, status: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details if details is not None else {}
        self.status = status or ERROR_STATUS.get(code, 422)


@dataclass
class RequestRecord:
    method: str
    path: str  # relative to the endpoint, e.g. "/servers/42"
    query: dict[str, list[str]]
    body: Any  # parsed JSON, raw text if it was not JSON, None without body
    status: int = 0
    injected: str | None = None  # error code when the answer came from fake.inject(...)
    response: Any = None


@dataclass
class Injection:
    method: str | None
    path_regex: re.Pattern
    code: str
    times: int | None
    skip: int
    message: str | None
    details: dict[str, Any] | None
    status: int | None
    headers: dict[str, str]
    hits: int = 0  # matching requests seen so far (including skipped ones)


@dataclass
class _ActionState:
    polls_left: int
    on_success: Callable[[], None] | None = None
    on_error: Callable[[], None] | None = None
    fail: tuple[str, str] | None = None


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_LABEL_NAME = re.compile(r"^[a-z0-9A-Z]([a-z0-9A-Z._-]{0,61}[a-z0-9A-Z])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")


def validate_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix:
        if len(prefix) > 253 or prefix.startswith("hetzner.cloud") or not all(_DNS_LABEL.match(p) for p in prefix.split(".")):
            return False
    return bool(_LABEL_NAME.match(name))


# -- label selectors -------------------------------------------------------------------------------
def _split_top_level(selector: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def parse_label_selector(selector: str) -> Callable[[dict[str, str]], bool]:
    """Compile a label selector (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``,
    ``k notin (a,b)``, comma = AND) into a predicate over a labels dict."""
    preds: list[Callable[[dict[str, str]], bool]] = []
    for expr in _split_top_level(selector):
        if not expr:
            raise ApiError("invalid_input", f"invalid label selector: {selector!r}", {"fields": [{"name": "label_selector", "messages": ["is invalid"]}]})
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", expr)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                preds.append(lambda labels, k=key, vs=values: k in labels and labels[k] in vs)
            else:
                preds.append(lambda labels, k=key, vs=values: k not in labels or labels[k] not in vs)
            continue
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)", expr)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                preds.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                preds.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        m = re.fullmatch(r"!\s*([^=!\s]+)", expr)
        if m:
            preds.append(lambda labels, k=m.group(1): k not in labels)
            continue
        if re.fullmatch(r"[^=!\s(),]+", expr):
            preds.append(lambda labels, k=expr: k in labels)
            continue
        raise ApiError("invalid_input", f"invalid label selector: {selector!r}", {"fields": [{"name": "label_selector", "messages": ["is invalid"]}]})
    return lambda labels: all(p(labels or {}) for p in preds)


def ssh_fingerprint(public_key: str) -> str:
    parts = public_key.strip().split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise ValueError("not an OpenSSH public key")
    blob = base64.b64decode(parts[1], validate=True)
    digest = hashlib.md5(blob).hexdigest()  # noqa: S324 - this is what Hetzner reports
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def make_test_public_key(seed_text: str) -> str:
    """A syntactically valid ed25519 public key, deterministic per seed."""
    raw = hashlib.sha256(seed_text.encode()).digest()
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + raw
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {seed_text}"


# ==================================================================================================
class FakeHcloud:
    """State, behaviour and the HTTP server of the fake API.

    Public attributes for tests (all dicts keyed by id, holding API-shaped dicts; mutate them
    under ``fake.lock`` if the server may be serving concurrently):
    ``servers``, ``ssh_keys``, ``networks``, ``firewalls``, ``placement_groups``, ``actions``,
    ``locations``, ``datacenters``, ``server_types``, ``images``; ``requests`` (list of
    :class:`RequestRecord`), ``violations`` (list of str: responses that broke the spec).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        action_polls: int = 2,
        rate_limit: int = 3600,
        validate_responses: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.token = token or "fake-" + secrets.token_hex(16)
        self.action_polls = action_polls
        self.validate_responses = validate_responses
        self.lock = threading.RLock()
        self.spec = get_spec()

        catalog = seed.build_catalog()
        self.locations: dict[int, dict[str, Any]] = catalog["locations"]
        self.datacenters: dict[int, dict[str, Any]] = catalog["datacenters"]
        self.server_types: dict[int, dict[str, Any]] = catalog["server_types"]
        self.images: dict[int, dict[str, Any]] = catalog["images"]

        self.servers: dict[int, dict[str, Any]] = {}
        self.ssh_keys: dict[int, dict[str, Any]] = {}
        self.networks: dict[int, dict[str, Any]] = {}
        self.firewalls: dict[int, dict[str, Any]] = {}
        self.placement_groups: dict[int, dict[str, Any]] = {}
        self.actions: dict[int, dict[str, Any]] = {}
        self._action_state: dict[int, _ActionState] = {}
        self._action_failures: list[list[Any]] = []  # [command, code, message, times_left]
        # fake-only bookkeeping that the API's server shape does not show
        self._ssh_keys_of: dict[int, list[int]] = {}
        self._user_data_of: dict[int, str | None] = {}

        self._ids = {
            "servers": itertools.count(10_000_001),
            "ssh_keys": itertools.count(20_000_001),
            "networks": itertools.count(30_000_001),
            "firewalls": itertools.count(40_000_001),
            "placement_groups": itertools.count(50_000_001),
            "actions": itertools.count(90_000_001),
            "primary_ips": itertools.count(60_000_001),
        }

        self.requests: list[RequestRecord] = []
        self.violations: list[str] = []
        self._injections: list[Injection] = []

        # token bucket
        self.rate_limit = rate_limit
        self._bucket = float(rate_limit)
        self._bucket_ts = time.monotonic()

        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------------
    # lifecycle
    # ---------------------------------------------------------------------------------------------
    def start(self) -> "FakeHcloud":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer((self._host, self._port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-hcloud", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def endpoint(self) -> str:
        assert self._httpd is not None, "fake not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeHcloud":
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------------
    # test API: failures
    # ---------------------------------------------------------------------------------------------
    def inject(
        self,
        method: str | None,
        path_regex: str,
        error_code: str,
        times: int | None = 1,
        *,
        skip: int = 0,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Injection:
        """Answer matching requests with an error instead of handling them.

        ``method``: "GET"/"POST"/... or None for any. ``path_regex`` is matched with
        ``re.fullmatch`` against the path relative to the endpoint (``/servers``,
        ``/servers/\\d+/actions/poweron``; the query string is not part of it).
        ``error_code``: any API error code (status taken from :data:`ERROR_STATUS` unless
        ``status`` is given) or ``html_502``/``html_503``/``html_504`` for an HTML gateway page.
        ``times``: how many requests get the error (None = forever); ``skip``: let that many
        matching requests through first. ``rate_limit_exceeded`` answers carry
        ``RateLimit-Remaining: 0``. Injected answers are logged (``RequestRecord.injected``).
        """
        if error_code not in ERROR_STATUS and error_code not in HTML_ERRORS and status is None:
            raise ValueError(f"unknown error code {error_code!r}: pass status=...")
        inj = Injection(
            method=method.upper() if method else None,
            path_regex=re.compile(path_regex),
            code=error_code,
            times=times,
            skip=skip,
            message=message,
            details=details,
            status=status,
            headers=dict(headers or {}),
        )
        with self.lock:
            self._injections.append(inj)
        return inj

    def clear_injections(self) -> None:
        with self.lock:
            self._injections.clear()
            self._action_failures.clear()

    def fail_next_action(self, command: str, code: str = "action_failed", message: str = "Action failed", times: int = 1) -> None:
        """The next ``times`` actions with this ``command`` (e.g. ``create_server``,
        ``start_server``, ``apply_firewall``, ``add_subnet``) end in status ``error`` with
        ``error: {code, message}`` instead of ``success``."""
        with self.lock:
            self._action_failures.append([command, code, message, times])

    # ---------------------------------------------------------------------------------------------
    # test API: introspection
    # ---------------------------------------------------------------------------------------------
    def count(self, method: str | None = None, path_prefix: str = "", *, exact: bool = False, status: int | None = None) -> int:
        """Number of logged requests. ``path_prefix`` matches the path itself or anything below
        it (``/servers`` matches ``/servers`` and ``/servers/1/actions/poweron``, not
        ``/servers_x``); ``exact=True`` matches only the path itself."""
        return len(self.find_requests(method, path_prefix, exact=exact, status=status))

    def find_requests(self, method: str | None = None, path_prefix: str = "", *, exact: bool = False, status: int | None = None) -> list[RequestRecord]:
        prefix = path_prefix.rstrip("/")
        out = []
        with self.lock:
            records = list(self.requests)
        for r in records:
            if method and r.method != method.upper():
                continue
            if prefix:
                if exact and r.path.rstrip("/") != prefix:
                    continue
                if not exact and not (r.path == prefix or r.path.startswith(prefix + "/")):
                    continue
            if status is not None and r.status != status:
                continue
            out.append(r)
        return out

    def complete_all_actions(self) -> None:
        """Finish every running action now (as if enough time had passed)."""
        with self.lock:
            for aid in list(self._action_state):
                self._finish_action(aid)

    # ---------------------------------------------------------------------------------------------
    # test API: pre-seeding (no actions are created; resources are ready at once)
    # ---------------------------------------------------------------------------------------------
    def add_ssh_key(self, name: str, public_key: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
        with self.lock:
            return self._create_ssh_key({"name": name, "public_key": public_key or make_test_public_key(name), "labels": labels or {}})

    def add_network(
        self,
        name: str,
        ip_range: str = "10.0.0.0/16",
        subnets: list[dict[str, Any]] | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if subnets is None:
            subnets = [{"type": "cloud", "network_zone": "eu-central", "ip_range": str(next(ipaddress.ip_network(ip_range).subnets(new_prefix=24)))}]
        with self.lock:
            return self._create_network({"name": name, "ip_range": ip_range, "subnets": subnets, "labels": labels or {}})

    def add_firewall(
        self,
        name: str,
        rules: list[dict[str, Any]] | None = None,
        labels: dict[str, str] | None = None,
        apply_to: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            fw, _ = self._create_firewall({"name": name, "rules": rules or [], "labels": labels or {}, "apply_to": apply_to or []}, with_actions=False)
            return fw

    def add_placement_group(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        with self.lock:
            return self._create_placement_group({"name": name, "type": "spread", "labels": labels or {}})

    def add_server(
        self,
        name: str,
        server_type: str | int = "cx23",
        image: str | int = "ubuntu-24.04",
        location: str | int | None = "fsn1",
        *,
        labels: dict[str, str] | None = None,
        status: str = "running",
        networks: list[int] = (),  # type: ignore[assignment]
        firewalls: list[int] = (),  # type: ignore[assignment]
        placement_group: int | None = None,
        ssh_keys: list[str | int] = (),  # type: ignore[assignment]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "server_type": server_type, "image": image, "labels": labels or {}}
        if location is not None:
            body["location"] = location
        if networks:
            body["networks"] = list(networks)
        if firewalls:
            body["firewalls"] = [{"firewall": f} for f in firewalls]
        if placement_group is not None:
            body["placement_group"] = placement_group
        if ssh_keys:
            body["ssh_keys"] = list(ssh_keys)
        with self.lock:
            server = self._create_server_record(body)
            server["status"] = status
            return server

    # ---------------------------------------------------------------------------------------------
    # rendering (derived fields) -- what GET returns
    # ---------------------------------------------------------------------------------------------
    def render_server(self, server: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(server)
        sid = server["id"]
        out["placement_group"] = None
        for pg in self.placement_groups.values():
            if sid in pg["servers"]:
                out["placement_group"] = copy.deepcopy(pg)
                break
        fws = []
        for fw in self.firewalls.values():
            if sid in self._firewall_server_ids(fw):
                fws.append({"id": fw["id"], "status": "applied"})
        out["public_net"]["firewalls"] = fws
        return out

    def render_network(self, network: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(network)
        nid = network["id"]
        out["servers"] = sorted(s["id"] for s in self.servers.values() if any(p["network"] == nid for p in s["private_net"]))
        return out

    def render_firewall(self, fw: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(fw)
        for entry in out["applied_to"]:
            if entry["type"] == "label_selector":
                match = parse_label_selector(entry["label_selector"]["selector"])
                entry["applied_to_resources"] = [
                    {"type": "server", "server": {"id": s["id"]}} for s in sorted(self.servers.values(), key=lambda s: s["id"]) if match(s["labels"])
                ]
        return out

    def _firewall_server_ids(self, fw: dict[str, Any]) -> set[int]:
        ids = set()
        for entry in fw["applied_to"]:
            if entry["type"] == "server":
                ids.add(entry["server"]["id"])
            elif entry["type"] == "label_selector":
                match = parse_label_selector(entry["label_selector"]["selector"])
                ids.update(s["id"] for s in self.servers.values() if match(s["labels"]))
        return ids

    # ---------------------------------------------------------------------------------------------
    # actions
    # ---------------------------------------------------------------------------------------------
    def _new_action(
        self,
        command: str,
        resources: list[tuple[str, int]],
        on_success: Callable[[], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        aid = next(self._ids["actions"])
        action = {
            "id": aid,
            "command": command,
            "status": "running",
            "progress": 0,
            "started": now_iso(),
            "finished": None,
            "resources": [{"id": rid, "type": rtype} for rtype, rid in resources],
            "error": None,
        }
        fail = None
        for entry in self._action_failures:
            if entry[0] == command and entry[3] > 0:
                entry[3] -= 1
                fail = (entry[1], entry[2])
                break
        self._action_failures = [e for e in self._action_failures if e[3] > 0]
        self.actions[aid] = action
        self._action_state[aid] = _ActionState(self.action_polls, on_success, on_error, fail)
        return action

    def _poll_action(self, aid: int) -> None:
        state = self._action_state.get(aid)
        if state is None:
            return
        if state.polls_left > 0:
            state.polls_left -= 1
            action = self.actions.get(aid)
            if action is not None:
                action["progress"] = min(90, action["progress"] + 30)
            return
        self._finish_action(aid)

    def _finish_action(self, aid: int) -> None:
        state = self._action_state.pop(aid, None)
        action = self.actions.get(aid)
        if state is None or action is None:
            return
        action["finished"] = now_iso()
        if state.fail:
            action["status"] = "error"
            action["error"] = {"code": state.fail[0], "message": state.fail[1]}
            if state.on_error:
                state.on_error()
        else:
            action["status"] = "success"
            action["progress"] = 100
            if state.on_success:
                state.on_success()

    # ---------------------------------------------------------------------------------------------
    # lookups
    # ---------------------------------------------------------------------------------------------
    @staticmethod
    def _by_id_or_name(store: dict[int, dict[str, Any]], value: Any) -> dict[str, Any] | None:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            found = store.get(int(value))
            if found is not None:
                return found
        for obj in store.values():
            if obj.get("name") == value:
                return obj
        return None

    def _get(self, store: dict[int, dict[str, Any]], kind: str, raw_id: str) -> dict[str, Any]:
        try:
            rid = int(raw_id)
        except ValueError:
            raise ApiError("invalid_input", f"invalid ID {raw_id!r}", {"fields": [{"name": "id", "messages": ["must be an integer"]}]})
        obj = store.get(rid)
        if obj is None:
            raise ApiError("not_found", f"{kind} with ID '{rid}' not found")
        return obj

    def _check_name_unique(self, store: dict[int, dict[str, Any]], kind: str, name: str, exclude: int | None = None) -> None:
        for obj in store.values():
            if obj["name"] == name and obj["id"] != exclude:
                raise ApiError("uniqueness_error", f"{kind} name is already used", {"fields": [{"name": "name"}]})

    @staticmethod
    def _check_labels(labels: dict[str, str] | None, field_name: str = "labels") -> None:
        for key in labels or {}:
            if not validate_label_key(key):
                raise ApiError(
                    "invalid_input",
                    f"invalid input in field '{field_name}': label key '{key}' is invalid",
                    {"fields": [{"name": field_name, "messages": [f"label key '{key}' is invalid"]}]},
                )

    @staticmethod
    def _invalid(field_name: str, message: str) -> ApiError:
        return ApiError("invalid_input", f"invalid input in field '{field_name}': {message}", {"fields": [{"name": field_name, "messages": [message]}]})

    # ---------------------------------------------------------------------------------------------
    # ssh keys
    # ---------------------------------------------------------------------------------------------
    def _create_ssh_key(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_labels(body.get("labels"))
        try:
            fingerprint = ssh_fingerprint(body["public_key"])
        except (ValueError, TypeError):
            raise self._invalid("public_key", "is not a valid public key")
        self._check_name_unique(self.ssh_keys, "SSH key", body["name"])
        for key in self.ssh_keys.values():
            if key["fingerprint"] == fingerprint:
                raise ApiError("uniqueness_error", "SSH key with the same fingerprint already exists", {"fields": [{"name": "public_key"}]})
        kid = next(self._ids["ssh_keys"])
        key = {
            "id": kid,
            "name": body["name"],
            "fingerprint": fingerprint,
            "public_key": body["public_key"].strip(),
            "labels": dict(body.get("labels") or {}),
            "created": now_iso(),
        }
        self.ssh_keys[kid] = key
        return key

    # ---------------------------------------------------------------------------------------------
    # networks
    # ---------------------------------------------------------------------------------------------
    def _parse_private_range(self, value: str, field_name: str) -> ipaddress.IPv4Network:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except (ValueError, TypeError):
            raise self._invalid(field_name, "is not a valid CIDR network")
        if net.version != 4 or not net.is_private or net.prefixlen > 30:
            raise self._invalid(field_name, "must be a private IPv4 range (RFC 1918)")
        return net  # type: ignore[return-value]

    def _make_subnet(self, network: dict[str, Any], sub: dict[str, Any], field_name: str) -> dict[str, Any]:
        net = ipaddress.ip_network(network["ip_range"])
        if sub.get("network_zone") not in NETWORK_ZONES:
            raise self._invalid(f"{field_name}.network_zone", "is not a valid network zone")
        if sub.get("type") == "vswitch" and not sub.get("vswitch_id"):
            raise self._invalid(f"{field_name}.vswitch_id", "is required for type vswitch")
        existing = [ipaddress.ip_network(s["ip_range"]) for s in network["subnets"]]
        if sub.get("ip_range"):
            rng = self._parse_private_range(sub["ip_range"], f"{field_name}.ip_range")
            if not rng.subnet_of(net):  # type: ignore[arg-type]
                raise self._invalid(f"{field_name}.ip_range", "must be within the network's ip_range")
        else:
            rng = next((c for c in net.subnets(new_prefix=max(24, net.prefixlen)) if not any(c.overlaps(e) for e in existing)), None)
            if rng is None:
                raise ApiError("invalid_input", "no free ip_range left in network for subnet")
        if any(rng.overlaps(e) for e in existing):
            raise self._invalid(f"{field_name}.ip_range", "overlaps with an existing subnet")
        return {
            "type": sub["type"],
            "ip_range": str(rng),
            "network_zone": sub["network_zone"],
            "gateway": str(net.network_address + 1),
            "vswitch_id": sub.get("vswitch_id"),
        }

    def _create_network(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_labels(body.get("labels"))
        self._parse_private_range(body["ip_range"], "ip_range")
        self._check_name_unique(self.networks, "network", body["name"])
        nid = next(self._ids["networks"])
        network = {
            "id": nid,
            "name": body["name"],
            "ip_range": body["ip_range"],
            "subnets": [],
            "routes": [dict(r) for r in body.get("routes") or []],
            "servers": [],
            "load_balancers": [],
            "protection": {"delete": False},
            "labels": dict(body.get("labels") or {}),
            "created": now_iso(),
            "expose_routes_to_vswitch": bool(body.get("expose_routes_to_vswitch", False)),
        }
        for i, sub in enumerate(body.get("subnets") or []):
            network["subnets"].append(self._make_subnet(network, sub, f"subnets.{i}"))
        self.networks[nid] = network
        return network

    def _allocate_private_ip(self, network: dict[str, Any], zone: str, wanted: str | None = None) -> str:
        used = {p["ip"] for s in self.servers.values() for p in s["private_net"] if p["network"] == network["id"]}
        candidates = [s for s in network["subnets"] if s["type"] in ("cloud", "server") and s["network_zone"] == zone]
        if not candidates:
            raise ApiError("no_subnet_available", "no subnet or IP is available for the server within the network")
        if wanted:
            ip = ipaddress.ip_address(wanted)
            if not any(ip in ipaddress.ip_network(s["ip_range"]) for s in candidates) or wanted in used:
                raise ApiError("ip_not_available", "the provided network IP is not available")
            return wanted
        for sub in candidates:
            rng = ipaddress.ip_network(sub["ip_range"])
            for host in rng.hosts():
                if str(host) != sub["gateway"] and str(host) not in used:
                    return str(host)
        raise ApiError("no_subnet_available", "no subnet or IP is available for the server within the network")

    # ---------------------------------------------------------------------------------------------
    # firewalls
    # ---------------------------------------------------------------------------------------------
    def _check_rules(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for i, rule in enumerate(rules):
            proto, direction = rule["protocol"], rule["direction"]
            if proto in ("tcp", "udp"):
                port = rule.get("port")
                if not port or not re.fullmatch(r"(any|\d{1,5}(-\d{1,5})?)", str(port)):
                    raise self._invalid(f"rules.{i}.port", "is required for protocol tcp/udp and must be a port or range")
            elif rule.get("port") is not None:
                raise self._invalid(f"rules.{i}.port", f"is not allowed for protocol {proto}")
            ips_field = "source_ips" if direction == "in" else "destination_ips"
            other = "destination_ips" if direction == "in" else "source_ips"
            if not rule.get(ips_field):
                raise self._invalid(f"rules.{i}.{ips_field}", f"is required for direction {direction}")
            if rule.get(other):
                raise self._invalid(f"rules.{i}.{other}", f"is not allowed for direction {direction}")
            for ip in rule[ips_field]:
                try:
                    ipaddress.ip_network(ip, strict=False)
                except ValueError:
                    raise self._invalid(f"rules.{i}.{ips_field}", f"'{ip}' is not a valid CIDR")
            out.append(
                {
                    "direction": direction,
                    "protocol": proto,
                    "port": rule.get("port"),
                    "source_ips": list(rule.get("source_ips") or []),
                    "destination_ips": list(rule.get("destination_ips") or []),
                    "description": rule.get("description"),
                }
            )
        return out

    def _check_apply_to(self, fw: dict[str, Any] | None, apply_to: list[dict[str, Any]], not_found_code_status: int) -> list[dict[str, Any]]:
        entries = []
        seen: set[Any] = set()
        for i, res in enumerate(apply_to):
            if res["type"] == "server":
                sid = (res.get("server") or {}).get("id")
                if sid is None:
                    raise self._invalid(f"apply_to.{i}.server", "is required for type server")
                if sid not in self.servers:
                    raise ApiError("firewall_resource_not_found", "the resource the Firewall should be applied to was not found", status=not_found_code_status)
                if ("server", sid) in seen:
                    raise ApiError("server_already_added", "the Server was applied more than once")
                if fw is not None and any(e["type"] == "server" and e["server"]["id"] == sid for e in fw["applied_to"]):
                    raise ApiError("firewall_already_applied", "firewall is already applied to resource")
                seen.add(("server", sid))
                entries.append({"type": "server", "server": {"id": sid}})
            else:
                selector = (res.get("label_selector") or {}).get("selector")
                if not selector:
                    raise self._invalid(f"apply_to.{i}.label_selector", "is required for type label_selector")
                parse_label_selector(selector)
                if fw is not None and any(e["type"] == "label_selector" and e["label_selector"]["selector"] == selector for e in fw["applied_to"]):
                    raise ApiError("firewall_already_applied", "firewall is already applied to resource")
                entries.append({"type": "label_selector", "label_selector": {"selector": selector}, "applied_to_resources": []})
        return entries

    def _apply_actions(self, fw_id: int, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        actions = []
        for entry in entries:
            resources = [("firewall", fw_id)]
            if entry["type"] == "server":
                resources.append(("server", entry["server"]["id"]))
            actions.append(self._new_action("apply_firewall", resources))
        return actions

    def _create_firewall(self, body: dict[str, Any], with_actions: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        self._check_labels(body.get("labels"))
        rules = self._check_rules(body.get("rules") or [])
        self._check_name_unique(self.firewalls, "firewall", body["name"])
        entries = self._check_apply_to(None, body.get("apply_to") or [], 422)
        fid = next(self._ids["firewalls"])
        fw = {
            "id": fid,
            "name": body["name"],
            "labels": dict(body.get("labels") or {}),
            "created": now_iso(),
            "rules": rules,
            "applied_to": entries,
        }
        self.firewalls[fid] = fw
        actions: list[dict[str, Any]] = []
        if with_actions:
            if rules:
                actions.append(self._new_action("set_firewall_rules", [("firewall", fid)]))
            actions.extend(self._apply_actions(fid, entries))
        return fw, actions

    # ---------------------------------------------------------------------------------------------
    # placement groups
    # ---------------------------------------------------------------------------------------------
    def _create_placement_group(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_labels(body.get("labels"))
        self._check_name_unique(self.placement_groups, "placement group", body["name"])
        pid = next(self._ids["placement_groups"])
        pg = {
            "id": pid,
            "name": body["name"],
            "type": body["type"],
            "labels": dict(body.get("labels") or {}),
            "servers": [],
            "created": now_iso(),
        }
        self.placement_groups[pid] = pg
        return pg

    def _check_pg_room(self, pg: dict[str, Any]) -> None:
        if pg["type"] == "spread" and len(pg["servers"]) >= SPREAD_GROUP_LIMIT:
            raise ApiError(
                "placement_group_member_limit_reached",
                f"placement group with ID {pg['id']} contains already {SPREAD_GROUP_LIMIT} servers",
            )

    # ---------------------------------------------------------------------------------------------
    # servers
    # ---------------------------------------------------------------------------------------------
    def _resolve(self, store: dict[int, dict[str, Any]], value: Any, field_name: str, kind: str) -> dict[str, Any]:
        found = self._by_id_or_name(store, value)
        if found is None:
            raise ApiError("invalid_input", f"{kind} '{value}' not found", {"fields": [{"name": field_name, "messages": ["not found"]}]})
        return found

    def _create_server_record(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["name"]
        if not _HOSTNAME.match(name):
            raise self._invalid("name", "must be a valid hostname (RFC 1123)")
        self._check_labels(body.get("labels"))
        if len(body.get("user_data") or "") > 32 * 1024:
            raise self._invalid("user_data", "is too long (max 32 KiB)")
        if body.get("datacenter") is not None and body.get("location") is not None:
            raise self._invalid("location", "must not be used together with datacenter")

        stype = self._resolve(self.server_types, body["server_type"], "server_type", "server type")
        if body.get("location") is not None:
            location = self._resolve(self.locations, body["location"], "location", "location")
        elif body.get("datacenter") is not None:
            dc = self._resolve(self.datacenters, body["datacenter"], "datacenter", "datacenter")
            location = self.locations[dc["location"]["id"]]
        else:
            avail = [l for l in stype["locations"] if l.get("available", True) and l["deprecation"] is None]
            location = self.locations[(avail or stype["locations"])[0]["id"]]

        st_loc = next((l for l in stype["locations"] if l["id"] == location["id"]), None)
        if st_loc is None:
            raise ApiError("invalid_input", "unsupported location for server type")
        if st_loc["deprecation"] is not None and st_loc["deprecation"]["unavailable_after"] < now_iso():
            raise ApiError("invalid_input", "unsupported location for server type")
        if st_loc.get("available") is False:
            raise ApiError("resource_unavailable", "error during placement")

        image = self._resolve_image(body["image"], stype["architecture"])
        ssh_keys = [self._resolve(self.ssh_keys, k, "ssh_keys", "SSH key") for k in body.get("ssh_keys") or []]
        networks = [self._resolve(self.networks, n, "networks", "network") for n in body.get("networks") or []]
        firewalls = [self._resolve(self.firewalls, f["firewall"], "firewalls", "firewall") for f in body.get("firewalls") or []]
        pg = None
        if body.get("placement_group") is not None:
            pg = self._resolve(self.placement_groups, body["placement_group"], "placement_group", "placement group")
            self._check_pg_room(pg)
        self._check_name_unique(self.servers, "server", name)

        public = body.get("public_net") or {}
        enable_v4 = public.get("enable_ipv4", True)
        enable_v6 = public.get("enable_ipv6", True)
        if not enable_v4 and not enable_v6 and not networks:
            raise self._invalid("public_net", "a server without public IPs must be attached to a network")

        sid = next(self._ids["servers"])
        zone = location["network_zone"]
        private_net = []
        for n in networks:
            ip = self._allocate_private_ip(n, zone)
            private_net.append({"network": n["id"], "ip": ip, "alias_ips": [], "mac_address": f"86:00:00:{(sid >> 16) & 255:02x}:{(sid >> 8) & 255:02x}:{n['id'] & 255:02x}"})
        dc_id = seed.DATACENTERS[location["name"]][0]
        price = next((p for p in stype["prices"] if p["location"] == location["name"]), None)
        server = {
            "id": sid,
            "name": name,
            "status": "initializing",
            "created": now_iso(),
            "labels": dict(body.get("labels") or {}),
            "server_type": copy.deepcopy(stype),
            "image": copy.deepcopy(image),
            "location": copy.deepcopy(location),
            "datacenter": copy.deepcopy(self.datacenters[dc_id]),
            "iso": None,
            "backup_window": None,
            "rescue_enabled": False,
            "locked": False,
            "protection": {"delete": False, "rebuild": False},
            "primary_disk_size": int(stype["disk"]),
            "included_traffic": price["included_traffic"] if price else 0,
            "ingoing_traffic": 0,
            "outgoing_traffic": 0,
            "load_balancers": [],
            "volumes": [],
            "placement_group": None,
            "private_net": private_net,
            "public_net": {
                "ipv4": (
                    {"id": next(self._ids["primary_ips"]), "ip": f"49.13.{(sid >> 8) & 255}.{(sid & 254) + 1}", "blocked": False, "dns_ptr": f"static.{(sid & 254) + 1}.{(sid >> 8) & 255}.13.49.clients.your-server.de"}
                    if enable_v4
                    else None
                ),
                "ipv6": (
                    {"id": next(self._ids["primary_ips"]), "ip": f"2a01:4f8:c012:{sid & 0xFFFF:x}::/64", "blocked": False, "dns_ptr": []}
                    if enable_v6
                    else None
                ),
                "floating_ips": [],
                "firewalls": [],
            },
        }
        self.servers[sid] = server
        self._ssh_keys_of[sid] = [k["id"] for k in ssh_keys]
        self._user_data_of[sid] = body.get("user_data")
        if pg is not None:
            pg["servers"].append(sid)
        for fw in firewalls:
            if not any(e["type"] == "server" and e["server"]["id"] == sid for e in fw["applied_to"]):
                fw["applied_to"].append({"type": "server", "server": {"id": sid}})
        return server

    def _resolve_image(self, value: Any, arch: str) -> dict[str, Any]:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            img = self.images.get(int(value))
            if img is None:
                raise ApiError("invalid_input", f"image '{value}' not found", {"fields": [{"name": "image", "messages": ["not found"]}]})
        else:
            candidates = [i for i in self.images.values() if i["name"] == value]
            if not candidates:
                raise ApiError("invalid_input", f"image '{value}' not found", {"fields": [{"name": "image", "messages": ["not found"]}]})
            img = next((i for i in candidates if i["architecture"] == arch), candidates[0])
        if img["architecture"] != arch:
            raise ApiError("invalid_input", "image architecture does not match server type architecture", {"fields": [{"name": "image", "messages": ["architecture mismatch"]}]})
        return img

    def server_ssh_keys(self, server_id: int) -> list[int]:
        """IDs of the SSH keys a server was created with (not part of the API's server shape)."""
        return list(self._ssh_keys_of.get(server_id, []))

    def server_user_data(self, server_id: int) -> str | None:
        """The user_data a server was created with (not part of the API's server shape)."""
        return self._user_data_of.get(server_id)

    def _set_status(self, sid: int, status: str) -> Callable[[], None]:
        def apply() -> None:
            if sid in self.servers:
                self.servers[sid]["status"] = status

        return apply

    def _delete_server(self, sid: int) -> None:
        self.servers.pop(sid, None)
        for pg in self.placement_groups.values():
            if sid in pg["servers"]:
                pg["servers"].remove(sid)
        for fw in self.firewalls.values():
            fw["applied_to"] = [e for e in fw["applied_to"] if not (e["type"] == "server" and e["server"]["id"] == sid)]

    # ---------------------------------------------------------------------------------------------
    # list helpers
    # ---------------------------------------------------------------------------------------------
    @staticmethod
    def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
        values = query.get(name)
        if not values:
            return default
        try:
            value = int(values[-1])
        except ValueError:
            raise ApiError("invalid_input", f"invalid input in field '{name}': must be an integer", {"fields": [{"name": name, "messages": ["must be an integer"]}]})
        if value < 1:
            raise ApiError("invalid_input", f"invalid input in field '{name}': must be at least 1", {"fields": [{"name": name, "messages": ["must be at least 1"]}]})
        return value

    def _list(
        self,
        key: str,
        items: list[dict[str, Any]],
        query: dict[str, list[str]],
        path: str,
        filters: tuple[str, ...] = ("name", "label_selector"),
    ) -> tuple[dict[str, Any], dict[str, str]]:
        if "name" in filters and query.get("name"):
            items = [i for i in items if i.get("name") == query["name"][-1]]
        if "label_selector" in filters and query.get("label_selector"):
            match = parse_label_selector(query["label_selector"][-1])
            items = [i for i in items if match(i.get("labels") or {})]
        for sort in reversed(query.get("sort") or ["id"]):
            fld, _, direction = sort.partition(":")
            if direction not in ("", "asc", "desc"):
                raise ApiError("invalid_input", f"invalid sort direction {direction!r}")
            items = sorted(items, key=lambda i: (i.get(fld) is None, i.get(fld)), reverse=direction == "desc")
        page = self._int_param(query, "page", 1)
        per_page = min(self._int_param(query, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
        total = len(items)
        last = max(1, math.ceil(total / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        pagination = {
            "page": page,
            "per_page": per_page,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < last else None,
            "last_page": last,
            "total_entries": total,
        }
        links = []
        base = {k: v for k, v in query.items() if k not in ("page", "per_page")}
        for rel, num in (("prev", pagination["previous_page"]), ("next", pagination["next_page"]), ("last", last)):
            if num is None or (rel == "last" and last == page):
                continue
            qs = urlencode({**base, "page": [str(num)], "per_page": [str(per_page)]}, doseq=True)
            links.append(f'<{self.endpoint}{path}?{qs}>; rel="{rel}"')
        headers = {"Link": ", ".join(links)} if links else {}
        return {key: chunk, "meta": {"pagination": pagination}}, headers

    def _actions_for(self, rtype: str | None, rid: int | None) -> list[dict[str, Any]]:
        out = []
        for action in self.actions.values():
            if rtype is None or any(r["type"] == rtype and (rid is None or r["id"] == rid) for r in action["resources"]):
                out.append(action)
        return out

    def _list_actions(self, actions: list[dict[str, Any]], query: dict[str, list[str]], path: str) -> tuple[dict[str, Any], dict[str, str]]:
        for a in actions:
            self._poll_action(a["id"])
        if query.get("status"):
            wanted = set(query["status"])
            actions = [a for a in actions if a["status"] in wanted]
        return self._list("actions", [copy.deepcopy(a) for a in actions], query, path, filters=())

    # ---------------------------------------------------------------------------------------------
    # rate limiting
    # ---------------------------------------------------------------------------------------------
    def _take_token(self) -> tuple[bool, dict[str, str]]:
        now = time.monotonic()
        self._bucket = min(float(self.rate_limit), self._bucket + (now - self._bucket_ts) * self.rate_limit / 3600.0)
        self._bucket_ts = now
        allowed = self._bucket >= 1.0
        if allowed:
            self._bucket -= 1.0
        remaining = int(self._bucket)
        seconds_to_full = (self.rate_limit - self._bucket) * 3600.0 / max(self.rate_limit, 1)
        headers = {
            "RateLimit-Limit": str(self.rate_limit),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(int(time.time() + seconds_to_full)),
        }
        return allowed, headers

    # ---------------------------------------------------------------------------------------------
    # dispatch
    # ---------------------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Any, raw_body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Handle one HTTP request; returns (status, headers, body bytes)."""
        parts = urlsplit(raw_path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        if path.startswith("/v1/") or path == "/v1":
            path = path[3:] or "/"
        else:
            path = "\x00" + path  # outside the API root: never matches a route

        body: Any = None
        body_error: ApiError | None = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except (ValueError, UnicodeDecodeError) as exc:
                body = raw_body.decode("utf-8", "replace")
                body_error = ApiError("json_error", f"invalid JSON: {exc}")

        record = RequestRecord(method=method, path=path.lstrip("\x00") or "/", query=query, body=body)
        with self.lock:
            self.requests.append(record)
            allowed, out_headers = self._take_token()
            out_headers["X-Correlation-Id"] = secrets.token_hex(8)
            try:
                status, payload, extra = self._dispatch(method, path, query, headers, body, body_error, allowed, record, out_headers)
            except ApiError as err:
                status, payload, extra = err.status, {"error": {"code": err.code, "message": err.message, "details": err.details}}, {}
            out_headers.update(extra)
            record.status = status

            if isinstance(payload, bytes):  # HTML page
                record.response = payload.decode()
                out_headers.setdefault("Content-Type", "text/html")
                return status, out_headers, payload

            record.response = payload
            data = b"" if payload is None else json.dumps(payload).encode()
            problem = self._check_response(method, path, status, payload, data)
            if problem:
                self.violations.append(problem)
                status = 500
                payload = {"error": {"code": "server_error", "message": f"FAKE BUG: {problem}", "details": {}}}
                record.status = status
                data = json.dumps(payload).encode()
            if payload is not None:
                out_headers["Content-Type"] = "application/json"
            return status, out_headers, data

    def _check_response(self, method: str, path: str, status: int, payload: Any, data: bytes) -> str | None:
        if not self.validate_responses:
            return None
        # validation is a pure function of (operation, status, body): remember bodies that passed
        cache_key = (method, self.spec.match(path), status, hashlib.sha1(data).digest())
        if cache_key in _VALID_BODIES:
            return None
        problem = self._check_response_uncached(method, path, status, payload)
        if problem is None:
            if len(_VALID_BODIES) > 4096:
                _VALID_BODIES.clear()
            _VALID_BODIES.add(cache_key)
        return problem

    def _check_response_uncached(self, method: str, path: str, status: int, payload: Any) -> str | None:
        template = self.spec.match(path)
        if template is None or self.spec.operation(method, template) is None:
            # outside any operation (404/405 for unknown routes): must still be the error shape
            template_for_errors = ("GET", "/servers")
            if status < 400:
                return f"{method} {path}: {status} for a path without an operation"
            _, validator = self.spec.response_validator(*template_for_errors, status)
        else:
            documented, validator = self.spec.response_validator(method, template, status)
            if not documented:
                return f"{method} {template}: status {status} is not documented"
            if validator is None:
                if payload is not None:
                    return f"{method} {template}: status {status} must not have a body"
                return None
        if validator is None:
            return None
        if payload is None:
            return f"{method} {path}: status {status} needs a JSON body"
        errors = list(validator.iter_errors(payload))
        if errors:
            from jsonschema.exceptions import best_match

            err = best_match(errors)
            where = "/".join(str(p) for p in err.absolute_path)
            return f"{method} {path} -> {status}: response does not match the spec at '{where}': {err.message[:300]}"
        return None

    def _match_injection(self, method: str, path: str) -> Injection | None:
        for inj in list(self._injections):
            if inj.method and inj.method != method:
                continue
            if not inj.path_regex.fullmatch(path):
                continue
            inj.hits += 1
            if inj.hits <= inj.skip:
                continue
            if inj.times is not None:
                inj.times -= 1
                if inj.times <= 0:
                    self._injections.remove(inj)
            return inj
        return None

    def _dispatch(self, method, path, query, headers, body, body_error, allowed, record, out_headers):
        auth = headers.get("Authorization", "")
        if auth != f"Bearer {self.token}":
            raise ApiError("unauthorized", "unable to authenticate")
        if not allowed:
            raise ApiError("rate_limit_exceeded", "limit of requests per hour reached")

        inj = self._match_injection(method, path)
        if inj is not None:
            record.injected = inj.code
            if inj.code in HTML_ERRORS:
                st, reason = HTML_ERRORS[inj.code]
                page = f"<html>\r\n<head><title>{st} {reason}</title></head>\r\n<body>\r\n<center><h1>{st} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
                return inj.status or st, page.encode(), dict(inj.headers)
            extra = dict(inj.headers)
            if inj.code == "rate_limit_exceeded":
                extra.setdefault("RateLimit-Remaining", "0")
                extra.setdefault("RateLimit-Reset", str(int(time.time()) + 60))
            default_msgs = {
                "rate_limit_exceeded": "limit of requests per hour reached",
                "locked": "server is locked",
                "conflict": "the resource has changed during the request, please retry",
                "resource_unavailable": "error during placement",
                "resource_limit_exceeded": "server limit exceeded",
                "server_error": "internal server error",
                "unavailable": "service is currently not available",
                "timeout": "request timed out",
                "maintenance": "cannot perform operation due to maintenance",
            }
            err = ApiError(inj.code, inj.message or default_msgs.get(inj.code, inj.code.replace("_", " ")), inj.details, inj.status)
            return err.status, {"error": {"code": err.code, "message": err.message, "details": err.details}}, extra

        template = self.spec.match(path)
        if template is None:
            raise ApiError("not_found", "not found")
        op = self.spec.operation(method, template)
        if op is None:
            raise ApiError("method_not_allowed", f"method {method} is not allowed")

        if body_error is not None:
            raise body_error
        required, validator = self.spec.request_validator(method, template)
        if validator is not None:
            if body is None:
                if required:
                    raise ApiError("invalid_input", "invalid input: request body is required", {"fields": [{"name": "root", "messages": ["is required"]}]})
            else:
                fields = describe_errors(validator, body)
                if fields:
                    first = fields[0]
                    msg = first["messages"][0]
                    if msg.startswith("unknown field name"):
                        text = f"invalid input: {msg}"
                    else:
                        text = f"invalid input in field '{first['name']}': {msg}"
                    raise ApiError("invalid_input", text, {"fields": fields})

        handler = _ROUTES.get((method, template))
        if handler is None:
            self.violations.append(f"{method} {template} is in the spec but not implemented by the fake")
            raise ApiError("server_error", f"FAKE: {method} {template} is not implemented")
        params = _path_params(template, path)
        result = handler(self, params, query, body or {})
        if len(result) == 2:
            status, payload = result
            extra = {}
        else:
            status, payload, extra = result
        return status, payload, extra


def _path_params(template: str, path: str) -> dict[str, str]:
    params = {}
    for t, p in zip(template.strip("/").split("/"), path.strip("/").split("/")):
        if t.startswith("{"):
            params[t[1:-1]] = p
    return params


# ==================================================================================================
# route handlers: (fake, path params, query, body) -> (status, payload[, headers])
# ==================================================================================================
_ROUTES: dict[tuple[str, str], Callable[..., tuple]] = {}


def route(method: str, template: str):
    def deco(fn):
        _ROUTES[(method, template)] = fn
        return fn

    return deco


# -- catalogue --------------------------------------------------------------------------------------
@route("GET", "/locations")
def _list_locations(f: FakeHcloud, p, q, b):
    return (200, *f._list("locations", [copy.deepcopy(x) for x in f.locations.values()], q, "/locations", ("name",)))


@route("GET", "/locations/{id}")
def _get_location(f, p, q, b):
    return 200, {"location": copy.deepcopy(f._get(f.locations, "location", p["id"]))}


@route("GET", "/datacenters")
def _list_datacenters(f, p, q, b):
    return (200, *f._list("datacenters", [copy.deepcopy(x) for x in f.datacenters.values()], q, "/datacenters", ("name",)))


@route("GET", "/datacenters/{id}")
def _get_datacenter(f, p, q, b):
    return 200, {"datacenter": copy.deepcopy(f._get(f.datacenters, "datacenter", p["id"]))}


@route("GET", "/server_types")
def _list_server_types(f, p, q, b):
    return (200, *f._list("server_types", [copy.deepcopy(x) for x in f.server_types.values()], q, "/server_types", ("name",)))


@route("GET", "/server_types/{id}")
def _get_server_type(f, p, q, b):
    return 200, {"server_type": copy.deepcopy(f._get(f.server_types, "server type", p["id"]))}


@route("GET", "/images")
def _list_images(f, p, q, b):
    items = [copy.deepcopy(x) for x in f.images.values()]
    if q.get("type"):
        items = [i for i in items if i["type"] in q["type"]]
    if q.get("architecture"):
        items = [i for i in items if i["architecture"] in q["architecture"]]
    if q.get("status"):
        items = [i for i in items if i["status"] in q["status"]]
    if q.get("bound_to"):
        items = [i for i in items if str(i["bound_to"]) in q["bound_to"]]
    if (q.get("include_deprecated") or ["false"])[-1] != "true":
        items = [i for i in items if i["deprecated"] is None]
    return (200, *f._list("images", items, q, "/images"))


@route("GET", "/images/{id}")
def _get_image(f, p, q, b):
    return 200, {"image": copy.deepcopy(f._get(f.images, "image", p["id"]))}


# -- actions ----------------------------------------------------------------------------------------
@route("GET", "/actions")
def _list_actions_by_id(f, p, q, b):
    ids = q.get("id")
    if not ids:
        raise ApiError("invalid_input", "invalid input in field 'id': is required", {"fields": [{"name": "id", "messages": ["is required"]}]})
    try:
        wanted = [int(i) for i in ids]
    except ValueError:
        raise ApiError("invalid_input", "invalid input in field 'id': must be an integer", {"fields": [{"name": "id", "messages": ["must be an integer"]}]})
    return (200, *f._list_actions([f.actions[i] for i in wanted if i in f.actions], q, "/actions"))


@route("GET", "/actions/{id}")
def _get_action(f, p, q, b):
    action = f._get(f.actions, "action", p["id"])
    f._poll_action(action["id"])
    return 200, {"action": copy.deepcopy(action)}


def _register_resource_actions(kind: str, rtype: str, store_name: str):
    @route("GET", f"/{kind}/actions")
    def _all(f, p, q, b):
        return (200, *f._list_actions(f._actions_for(rtype, None), q, f"/{kind}/actions"))

    @route("GET", f"/{kind}/actions/{{id}}")
    def _one(f, p, q, b):
        action = f._get(f.actions, "action", p["id"])
        if not any(r["type"] == rtype for r in action["resources"]):
            raise ApiError("not_found", f"action with ID '{action['id']}' not found")
        f._poll_action(action["id"])
        return 200, {"action": copy.deepcopy(action)}

    @route("GET", f"/{kind}/{{id}}/actions")
    def _of(f, p, q, b):
        obj = f._get(getattr(f, store_name), rtype, p["id"])
        return (200, *f._list_actions(f._actions_for(rtype, obj["id"]), q, f"/{kind}/{obj['id']}/actions"))

    @route("GET", f"/{kind}/{{id}}/actions/{{action_id}}")
    def _of_one(f, p, q, b):
        obj = f._get(getattr(f, store_name), rtype, p["id"])
        action = f._get(f.actions, "action", p["action_id"])
        if not any(r["type"] == rtype and r["id"] == obj["id"] for r in action["resources"]):
            raise ApiError("not_found", f"action with ID '{action['id']}' not found")
        f._poll_action(action["id"])
        return 200, {"action": copy.deepcopy(action)}


_register_resource_actions("servers", "server", "servers")
_register_resource_actions("networks", "network", "networks")
_register_resource_actions("firewalls", "firewall", "firewalls")


# -- generic update / delete ------------------------------------------------------------------------
def _update(f: FakeHcloud, store, kind: str, key: str, render, p, b):
    obj = f._get(store, kind, p["id"])
    if "name" in b and b["name"] is not None:
        if key == "server" and not _HOSTNAME.match(b["name"]):
            raise f._invalid("name", "must be a valid hostname (RFC 1123)")
        f._check_name_unique(store, kind, b["name"], exclude=obj["id"])
        obj["name"] = b["name"]
    if b.get("labels") is not None:
        f._check_labels(b["labels"])
        obj["labels"] = dict(b["labels"])
    if "expose_routes_to_vswitch" in b and key == "network":
        obj["expose_routes_to_vswitch"] = bool(b["expose_routes_to_vswitch"])
    return 200, {key: render(obj)}


# -- ssh keys ---------------------------------------------------------------------------------------
@route("GET", "/ssh_keys")
def _list_ssh_keys(f, p, q, b):
    items = [copy.deepcopy(x) for x in f.ssh_keys.values()]
    if q.get("fingerprint"):
        items = [i for i in items if i["fingerprint"] == q["fingerprint"][-1]]
    return (200, *f._list("ssh_keys", items, q, "/ssh_keys"))


@route("POST", "/ssh_keys")
def _create_ssh_key(f, p, q, b):
    return 201, {"ssh_key": copy.deepcopy(f._create_ssh_key(b))}


@route("GET", "/ssh_keys/{id}")
def _get_ssh_key(f, p, q, b):
    return 200, {"ssh_key": copy.deepcopy(f._get(f.ssh_keys, "SSH key", p["id"]))}


@route("PUT", "/ssh_keys/{id}")
def _update_ssh_key(f, p, q, b):
    return _update(f, f.ssh_keys, "SSH key", "ssh_key", copy.deepcopy, p, b)


@route("DELETE", "/ssh_keys/{id}")
def _delete_ssh_key(f, p, q, b):
    key = f._get(f.ssh_keys, "SSH key", p["id"])
    del f.ssh_keys[key["id"]]
    return 204, None


# -- networks ---------------------------------------------------------------------------------------
@route("GET", "/networks")
def _list_networks(f, p, q, b):
    return (200, *f._list("networks", [f.render_network(x) for x in f.networks.values()], q, "/networks"))


@route("POST", "/networks")
def _create_network(f, p, q, b):
    return 201, {"network": f.render_network(f._create_network(b))}


@route("GET", "/networks/{id}")
def _get_network(f, p, q, b):
    return 200, {"network": f.render_network(f._get(f.networks, "network", p["id"]))}


@route("PUT", "/networks/{id}")
def _update_network(f, p, q, b):
    return _update(f, f.networks, "network", "network", f.render_network, p, b)


@route("DELETE", "/networks/{id}")
def _delete_network(f, p, q, b):
    net = f._get(f.networks, "network", p["id"])
    if net["protection"]["delete"]:
        raise ApiError("protected", "network is delete protected")
    if f.render_network(net)["servers"]:
        raise ApiError("resource_in_use", "network is still in use by servers")
    del f.networks[net["id"]]
    return 204, None


@route("POST", "/networks/{id}/actions/add_subnet")
def _add_subnet(f, p, q, b):
    net = f._get(f.networks, "network", p["id"])
    net["subnets"].append(f._make_subnet(net, b, "subnet"))
    return 201, {"action": copy.deepcopy(f._new_action("add_subnet", [("network", net["id"])]))}


@route("POST", "/networks/{id}/actions/delete_subnet")
def _delete_subnet(f, p, q, b):
    net = f._get(f.networks, "network", p["id"])
    sub = next((s for s in net["subnets"] if s["ip_range"] == b["ip_range"]), None)
    if sub is None:
        raise f._invalid("ip_range", "subnet not found")
    rng = ipaddress.ip_network(sub["ip_range"])
    if any(pn["network"] == net["id"] and ipaddress.ip_address(pn["ip"]) in rng for s in f.servers.values() for pn in s["private_net"]):
        raise ApiError("resource_in_use", "subnet is still in use")
    net["subnets"].remove(sub)
    return 201, {"action": copy.deepcopy(f._new_action("delete_subnet", [("network", net["id"])]))}


# -- firewalls --------------------------------------------------------------------------------------
@route("GET", "/firewalls")
def _list_firewalls(f, p, q, b):
    return (200, *f._list("firewalls", [f.render_firewall(x) for x in f.firewalls.values()], q, "/firewalls"))


@route("POST", "/firewalls")
def _create_firewall(f, p, q, b):
    fw, actions = f._create_firewall(b)
    return 201, {"firewall": f.render_firewall(fw), "actions": copy.deepcopy(actions)}


@route("GET", "/firewalls/{id}")
def _get_firewall(f, p, q, b):
    return 200, {"firewall": f.render_firewall(f._get(f.firewalls, "firewall", p["id"]))}


@route("PUT", "/firewalls/{id}")
def _update_firewall(f, p, q, b):
    return _update(f, f.firewalls, "firewall", "firewall", f.render_firewall, p, b)


@route("DELETE", "/firewalls/{id}")
def _delete_firewall(f, p, q, b):
    fw = f._get(f.firewalls, "firewall", p["id"])
    if fw["applied_to"]:
        raise ApiError("resource_in_use", "firewall still applied to a resource")
    del f.firewalls[fw["id"]]
    return 204, None


@route("POST", "/firewalls/{id}/actions/set_rules")
def _set_rules(f, p, q, b):
    fw = f._get(f.firewalls, "firewall", p["id"])
    fw["rules"] = f._check_rules(b["rules"])
    actions = [f._new_action("set_firewall_rules", [("firewall", fw["id"])])]
    for sid in sorted(f._firewall_server_ids(fw)):
        actions.append(f._new_action("apply_firewall", [("firewall", fw["id"]), ("server", sid)]))
    return 201, {"actions": copy.deepcopy(actions)}


@route("POST", "/firewalls/{id}/actions/apply_to_resources")
def _apply_to_resources(f, p, q, b):
    fw = f._get(f.firewalls, "firewall", p["id"])
    entries = f._check_apply_to(fw, b["apply_to"], 404)
    fw["applied_to"].extend(entries)
    return 201, {"actions": copy.deepcopy(f._apply_actions(fw["id"], entries))}


@route("POST", "/firewalls/{id}/actions/remove_from_resources")
def _remove_from_resources(f, p, q, b):
    fw = f._get(f.firewalls, "firewall", p["id"])
    actions = []
    for res in b["remove_from"]:
        if res["type"] == "server":
            sid = (res.get("server") or {}).get("id")
            entry = next((e for e in fw["applied_to"] if e["type"] == "server" and e["server"]["id"] == sid), None)
        else:
            sel = (res.get("label_selector") or {}).get("selector")
            entry = next((e for e in fw["applied_to"] if e["type"] == "label_selector" and e["label_selector"]["selector"] == sel), None)
        if entry is None:
            raise ApiError("firewall_resource_not_found", "the resource the Firewall should be removed from was not found", status=404)
        fw["applied_to"].remove(entry)
        resources = [("firewall", fw["id"])] + ([("server", entry["server"]["id"])] if entry["type"] == "server" else [])
        actions.append(f._new_action("remove_firewall", resources))
    return 201, {"actions": copy.deepcopy(actions)}


# -- placement groups -------------------------------------------------------------------------------
@route("GET", "/placement_groups")
def _list_pgs(f, p, q, b):
    items = [copy.deepcopy(x) for x in f.placement_groups.values()]
    if q.get("type"):
        items = [i for i in items if i["type"] in q["type"]]
    return (200, *f._list("placement_groups", items, q, "/placement_groups"))


@route("POST", "/placement_groups")
def _create_pg(f, p, q, b):
    return 201, {"placement_group": copy.deepcopy(f._create_placement_group(b)), "action": None}


@route("GET", "/placement_groups/{id}")
def _get_pg(f, p, q, b):
    return 200, {"placement_group": copy.deepcopy(f._get(f.placement_groups, "placement group", p["id"]))}


@route("PUT", "/placement_groups/{id}")
def _update_pg(f, p, q, b):
    return _update(f, f.placement_groups, "placement group", "placement_group", copy.deepcopy, p, b)


@route("DELETE", "/placement_groups/{id}")
def _delete_pg(f, p, q, b):
    pg = f._get(f.placement_groups, "placement group", p["id"])
    del f.placement_groups[pg["id"]]
    return 204, None


# -- servers ----------------------------------------------------------------------------------------
@route("GET", "/servers")
def _list_servers(f, p, q, b):
    items = [f.render_server(x) for x in f.servers.values()]
    if q.get("status"):
        items = [i for i in items if i["status"] in q["status"]]
    return (200, *f._list("servers", items, q, "/servers"))


@route("POST", "/servers")
def _create_server(f, p, q, b):
    server = f._create_server_record(b)
    sid = server["id"]
    start = b.get("start_after_create", True) is not False
    create = f._new_action(
        "create_server",
        [("server", sid)],
        on_success=f._set_status(sid, "running" if start else "off"),
        on_error=f._set_status(sid, "off"),
    )
    next_actions = [f._new_action("start_server", [("server", sid)])] if start else []
    return 201, {
        "server": f.render_server(server),
        "action": copy.deepcopy(create),
        "next_actions": copy.deepcopy(next_actions),
        "root_password": None if b.get("ssh_keys") else secrets.token_urlsafe(15),
    }


@route("GET", "/servers/{id}")
def _get_server(f, p, q, b):
    server = f._get(f.servers, "server", p["id"])
    for action in f._actions_for("server", server["id"]):
        f._poll_action(action["id"])
    server = f._get(f.servers, "server", p["id"])
    return 200, {"server": f.render_server(server)}


@route("PUT", "/servers/{id}")
def _update_server(f, p, q, b):
    return _update(f, f.servers, "server", "server", f.render_server, p, b)


@route("DELETE", "/servers/{id}")
def _delete_server(f, p, q, b):
    server = f._get(f.servers, "server", p["id"])
    if server["protection"]["delete"]:
        raise ApiError("protected", "server is delete protected")
    action = f._new_action("delete_server", [("server", server["id"])])
    f._delete_server(server["id"])
    return 200, {"action": copy.deepcopy(action)}


def _power(command: str, status: str):
    def handler(f, p, q, b):
        server = f._get(f.servers, "server", p["id"])
        action = f._new_action(command, [("server", server["id"])], on_success=f._set_status(server["id"], status))
        return 201, {"action": copy.deepcopy(action)}

    return handler


for _cmd, _path, _status in (
    ("start_server", "poweron", "running"),
    ("stop_server", "poweroff", "off"),
    ("shutdown_server", "shutdown", "off"),
    ("reboot_server", "reboot", "running"),
    ("reset_server", "reset", "running"),
):
    route("POST", f"/servers/{{id}}/actions/{_path}")(_power(_cmd, _status))


@route("POST", "/servers/{id}/actions/attach_to_network")
def _attach_to_network(f, p, q, b):
    server = f._get(f.servers, "server", p["id"])
    net = f.networks.get(b["network"])
    if net is None:
        raise ApiError("not_found", f"network with ID '{b['network']}' not found")
    if any(pn["network"] == net["id"] for pn in server["private_net"]):
        raise ApiError("server_already_attached", "the server is already attached to the network")
    ip = f._allocate_private_ip(net, server["location"]["network_zone"], b.get("ip"))
    sid = server["id"]
    server["private_net"].append(
        {"network": net["id"], "ip": ip, "alias_ips": list(b.get("alias_ips") or []), "mac_address": f"86:00:00:{(sid >> 16) & 255:02x}:{(sid >> 8) & 255:02x}:{net['id'] & 255:02x}"}
    )
    return 201, {"action": copy.deepcopy(f._new_action("attach_to_network", [("server", sid), ("network", net["id"])]))}


@route("POST", "/servers/{id}/actions/detach_from_network")
def _detach_from_network(f, p, q, b):
    server = f._get(f.servers, "server", p["id"])
    entry = next((pn for pn in server["private_net"] if pn["network"] == b["network"]), None)
    if entry is None:
        raise ApiError("server_not_attached_to_network", "the server is not attached to the network")
    server["private_net"].remove(entry)
    return 201, {"action": copy.deepcopy(f._new_action("detach_from_network", [("server", server["id"]), ("network", b["network"])]))}


@route("POST", "/servers/{id}/actions/add_to_placement_group")
def _add_to_pg(f, p, q, b):
    server = f._get(f.servers, "server", p["id"])
    pg = f.placement_groups.get(b["placement_group"])
    if pg is None:
        raise ApiError("not_found", f"placement group with ID '{b['placement_group']}' not found")
    if any(server["id"] in g["servers"] for g in f.placement_groups.values()):
        raise ApiError("already_in_placement_group", "server is already in a placement group")
    f._check_pg_room(pg)
    pg["servers"].append(server["id"])
    return 201, {"action": copy.deepcopy(f._new_action("add_to_placement_group", [("server", server["id"])]))}


@route("POST", "/servers/{id}/actions/remove_from_placement_group")
def _remove_from_pg(f, p, q, b):
    server = f._get(f.servers, "server", p["id"])
    pg = next((g for g in f.placement_groups.values() if server["id"] in g["servers"]), None)
    if pg is None:
        raise ApiError("invalid_input", "server is not in a placement group")
    pg["servers"].remove(server["id"])
    return 201, {"action": copy.deepcopy(f._new_action("remove_from_placement_group", [("server", server["id"])]))}


# ==================================================================================================
# HTTP plumbing
# ==================================================================================================
class _Handler(BaseHTTPRequestHandler):
    fake: FakeHcloud  # set on the per-server subclass
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 10  # idle keep-alive connections are dropped after this

    def _serve(self) -> None:
        if self.fake._httpd is None:  # stopped: a kept-alive connection must not be served any more
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            status, headers, data = self.fake.handle(self.command, self.path, self.headers, raw)
        except Exception as exc:  # a crash in the fake: record it loudly, answer 500
            self.fake.violations.append(f"fake crashed on {self.command} {self.path}: {exc!r}")
            status, headers = 500, {"Content-Type": "application/json"}
            data = json.dumps({"error": {"code": "server_error", "message": f"FAKE CRASH: {exc!r}", "details": {}}}).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass
