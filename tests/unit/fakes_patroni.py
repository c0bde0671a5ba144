"""Hand-written fakes for switchover/failover tests: an in-memory Patroni cluster with the interface of
`gardenctl.backends.patroni.PatroniClient`, an etcd and an HAProxy read-write probe that follow it, a clock that
never sleeps, and a loopback HTTP server that serves the same state as Patroni's and etcd's REST APIs (so CLI tests
run `gardenctl` as a user would).

The cluster is kept as the JSON Patroni serves (``GET /cluster``, ``GET /config``) and parsed by the real parser, so
the payloads below are shaped like the field cases. Named states: `healthy_cluster`, `cluster_with_lagging_replica`,
`sync_cluster`, `paused_cluster`, `tagged_cluster` (F04), `cluster_with_unknown_lag` (F01), ...

Scripting a switchover: ``fake.answers`` is the list of answers POST /switchover|/failover gives in turn (an
`ActionAnswer`, or an exception to raise). An answer in 2xx or a 503 "status unknown" starts the change; the
candidate leads after ``leader_change_after_polls`` further ``get_cluster`` calls (None: never), and the old leader
streams ``old_leader_streaming_after_polls`` calls after that (None: never).
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gardenctl.backends.patroni import ActionAnswer, endpoint_of, parse_cluster, parse_config, parse_history
from gardenctl.backends.postgres import Landing
from gardenctl.errors import BackendUnreachable
from gardenctl.model import EtcdAlarm, EtcdCluster, EtcdMember, PatroniCluster, TimelineEntry
from gardenctl.wait import Clock

LAB_CONFIG = {"ttl": 20, "loop_wait": 2, "retry_timeout": 5, "maximum_lag_on_failover": 1048576, "synchronous_mode": False}


class FakeClock(Clock):
    """Time moves only when someone sleeps: zero real delay, deterministic moments."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps = 0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.t += max(seconds, 0.0)


def member(name: str, role: str = "replica", state: str | None = None, *, timeline: int | None = 4, lag: Any = 0, index: int = 0, tags: dict[str, Any] | None = None, base: str = "http://10.0.0.1") -> dict[str, Any]:
    """One entry of ``GET /cluster`` as Patroni 4 writes it (leaders carry no lag)."""
    host = f"10.0.0.{11 + index}"
    raw: dict[str, Any] = {
        "name": name,
        "role": role,
        "state": state or ("running" if role == "leader" else "streaming"),
        "api_url": f"http://{host}:8008/patroni",
        "host": host,
        "port": 5432,
    }
    if timeline is not None:
        raw["timeline"] = timeline
    if role != "leader":
        raw["lag"] = lag
    if tags is not None:
        raw["tags"] = tags
    return raw


def three_nodes(**overrides: dict[str, Any]) -> list[dict[str, Any]]:
    members = [member("node-a", "leader", index=0), member("node-b", index=1), member("node-c", index=2)]
    for m in members:
        m.update(overrides.get(m["name"].replace("-", "_"), {}))
    return members


# ------------------------------------------------------------------------------------------------ Patroni


@dataclass
class Post:
    path: str
    body: dict[str, Any]
    prefer: tuple[str, ...]


class FakePatroni:
    """In-memory Patroni with `PatroniClient`'s interface. Thread-safe enough for the member fan-out."""

    def __init__(self, members: list[dict[str, Any]], *, config: dict[str, Any] | None = None, pause: bool = False, scheduled: dict[str, Any] | None = None, scope: str = "pg-main") -> None:
        self.raw: dict[str, Any] = {"scope": scope, "members": copy.deepcopy(members)}
        if pause:
            self.raw["pause"] = True
        if scheduled:
            self.raw["scheduled_switchover"] = scheduled
        self.config_raw: dict[str, Any] = copy.deepcopy(config if config is not None else LAB_CONFIG)
        self.endpoints = tuple(endpoint_of_raw(m) for m in members)
        self.answers: list[ActionAnswer | Exception] = [ActionAnswer(200, 'Successfully switched over to "?"')]
        self.leader_change_after_polls: int | None = 1
        self.old_leader_streaming_after_polls: int | None = 2
        self.promote_instead: str | None = None  # promote this member instead of the candidate
        self.unreachable: set[str] = set()  # members whose own REST API does not answer
        self.down = False  # no member answers at all
        self.posts: list[Post] = []
        self.cluster_calls = 0
        self.history_raw: list[list[Any]] = [[1, 25165984, "no recovery target specified", "2030-01-01T10:00:00.000000+00:00", "node-a"]]
        self._pending: dict[str, Any] | None = None
        self._lock = threading.RLock()

    # -- views
    def _member(self, name: str) -> dict[str, Any] | None:
        return next((m for m in self.raw["members"] if m["name"] == name), None)

    @property
    def leader_name(self) -> str | None:
        leaders = [m["name"] for m in self.raw["members"] if m["role"] == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.raw)

    # -- PatroniClient interface
    def close(self) -> None:
        pass

    def get_cluster(self, *, with_config: bool = True, every_endpoint: bool = False) -> PatroniCluster:
        with self._lock:
            if self.down:
                raise BackendUnreachable("patroni: no member answered GET /cluster: connection refused")
            self.cluster_calls += 1
            self._advance()
            config = parse_config(copy.deepcopy(self.config_raw)) if with_config else None
            return parse_cluster(copy.deepcopy(self.raw), self.endpoints[0] if self.endpoints else "fake", config)

    def get_config(self):  # noqa: ANN201
        return parse_config(copy.deepcopy(self.config_raw))

    def get_history(self) -> tuple[TimelineEntry, ...]:
        if self.down:
            raise BackendUnreachable("patroni: no member answered GET /history: connection refused")
        return parse_history(copy.deepcopy(self.history_raw))

    def get_member_status(self, api_url: str) -> dict[str, Any]:
        with self._lock:
            m = next((m for m in self.raw["members"] if m.get("api_url") == api_url), None)
            if self.down or m is None or m["name"] in self.unreachable:
                raise BackendUnreachable(f"patroni: {api_url}: connection refused")
            role = "primary" if m["role"] == "leader" else "replica"
            return {"state": m["state"], "role": role, "timeline": m.get("timeline"), "patroni": {"name": m["name"], "version": "4.1.5"}}

    def switchover(self, leader: str, candidate: str | None, scheduled_at: datetime | None = None, prefer: tuple[str, ...] = ()) -> ActionAnswer:
        body: dict[str, Any] = {"leader": leader}
        if candidate:
            body["candidate"] = candidate
        if scheduled_at is not None:
            body["scheduled_at"] = scheduled_at.isoformat()
        return self._post("/switchover", body, prefer)

    def failover(self, candidate: str, prefer: tuple[str, ...] = ()) -> ActionAnswer:
        return self._post("/failover", {"candidate": candidate}, prefer)

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            if paused:
                self.raw["pause"] = True
            else:
                self.raw.pop("pause", None)

    def cancel_scheduled_switchover(self) -> None:
        with self._lock:
            self.raw.pop("scheduled_switchover", None)

    # -- behaviour
    def _post(self, path: str, body: dict[str, Any], prefer: tuple[str, ...]) -> ActionAnswer:
        with self._lock:
            self.posts.append(Post(path, dict(body), tuple(prefer)))
            answer = self.answers.pop(0) if self.answers else ActionAnswer(200, "Successfully switched over")
            if isinstance(answer, Exception):
                raise answer
            if body.get("scheduled_at") and answer.status == 202:
                self.raw["scheduled_switchover"] = {"at": body["scheduled_at"], "from": body.get("leader"), **({"to": body["candidate"]} if body.get("candidate") else {})}
            elif 200 <= answer.status < 300 or answer.in_progress:
                self._pending = {"leader": self.leader_name, "candidate": self.promote_instead or body.get("candidate"), "polls": 0}
            return answer

    def _advance(self) -> None:
        """One poll of the cluster: move a pending switchover along its script."""
        p = self._pending
        if p is None:
            return
        p["polls"] += 1
        change_at = self.leader_change_after_polls
        if change_at is None:
            return
        old, new = p["leader"], p["candidate"]
        if p["polls"] == change_at:
            old_m = self._member(old) if old else None
            new_m = self._member(new) if new else None
            timeline = (max((m.get("timeline") or 0) for m in self.raw["members"]) or 1) + 1
            if new_m is not None:
                new_m.update(role="leader", state="running", timeline=timeline)
                new_m.pop("lag", None)
            if old_m is not None:
                old_m.update(role="replica", state="stopped", lag="unknown")
                old_m.pop("timeline", None)
            for m in self.raw["members"]:
                if m["name"] not in (old, new) and m["role"] != "leader" and m.get("state") in ("streaming", "running"):
                    m.update(timeline=timeline, state="streaming", lag=0)
            p["timeline"] = timeline
        streaming_after = self.old_leader_streaming_after_polls
        if streaming_after is not None and p["polls"] == change_at + streaming_after:
            old_m = self._member(old) if old else None
            if old_m is not None and old not in self.unreachable:
                old_m.update(role="replica", state="streaming", timeline=p["timeline"], lag=0)
            self._pending = None


def endpoint_of_raw(raw: dict[str, Any]) -> str:
    url = str(raw.get("api_url", ""))
    return url[: -len("/patroni")] if url.endswith("/patroni") else url


# ------------------------------------------------------------------------------------------------ etcd, HAProxy


class FakeEtcd:
    def __init__(self, voters: int = 3, healthy: int = 3, *, reachable: bool = True, alarms: tuple[str, ...] = ()) -> None:
        self.voters, self.healthy, self.reachable, self.alarms = voters, healthy, reachable, alarms

    def get_cluster(self, quota_bytes: int | None = None) -> EtcdCluster:
        if not self.reachable:
            raise BackendUnreachable("etcd: no endpoint answered: connection refused")
        members = tuple(
            EtcdMember(id=0xA000000000000000 + i, name=f"etcd{i}", client_urls=(f"http://10.0.0.2{i}:2379",), healthy=i < self.healthy, is_leader=i == 0)
            for i in range(self.voters)
        )
        return EtcdCluster(members=members, alarms=tuple(EtcdAlarm(members[0].id, a) for a in self.alarms))


class FakeRw:
    """The HAProxy read-write port: a new connection lands on the Patroni leader ``lag_polls`` polls after the leader
    changed (HAProxy's checks take a moment); with no leader, the connection fails like HAProxy with no server UP."""

    def __init__(self, patroni: FakePatroni, *, lag_polls: int = 1, never_routes: bool = False, writable: bool = True) -> None:
        self.patroni = patroni
        self.where = "127.0.0.1:5000"
        self.lag_polls = lag_polls
        self.never_routes = never_routes
        self.writable = writable
        self._routed_to: str | None = patroni.leader_name
        self._seen_leader: str | None = patroni.leader_name
        self._polls_since_change = 0
        self.landings = 0

    def _target(self) -> dict[str, Any] | None:
        with self.patroni._lock:
            leader = self.patroni.leader_name
            if leader != self._seen_leader:
                self._seen_leader = leader
                self._polls_since_change = 0
            if leader != self._routed_to and not self.never_routes:
                self._polls_since_change += 1
                if self._polls_since_change > self.lag_polls:
                    self._routed_to = leader
            m = self.patroni._member(self._routed_to) if self._routed_to else None
            if m is not None and m["name"] in self.patroni.unreachable and m["role"] == "leader":
                return None
            return copy.deepcopy(m) if m else None

    def where_am_i(self) -> Landing:
        self.landings += 1
        m = self._target()
        if m is None:
            raise BackendUnreachable(f"postgres: {self.where}: server closed the connection unexpectedly")
        return Landing(server_addr=m["host"], server_port=m["port"], in_recovery=m["role"] != "leader", timeline=m.get("timeline"))

    def can_write(self) -> bool:
        m = self._target()
        if m is None:
            raise BackendUnreachable(f"postgres: {self.where}: server closed the connection unexpectedly")
        return self.writable and m["role"] == "leader"


# ------------------------------------------------------------------------------------------------ named states


def healthy_cluster() -> FakePatroni:
    return FakePatroni(three_nodes())


def cluster_with_lagging_replica() -> FakePatroni:
    """node-b is 50 MiB behind (above the default 1 MiB maximum_lag_on_failover); node-c is current."""
    return FakePatroni(three_nodes(node_b={"lag": 50 * 1024 * 1024}))


def sync_cluster() -> FakePatroni:
    """F02: synchronous_mode on, node-b the sync standby, node-c an async replica."""
    return FakePatroni(three_nodes(node_b={"role": "sync_standby"}), config={**LAB_CONFIG, "synchronous_mode": True})


def sync_cluster_without_standby() -> FakePatroni:
    return FakePatroni(three_nodes(), config={**LAB_CONFIG, "synchronous_mode": True})


def paused_cluster() -> FakePatroni:
    """F05: maintenance mode on (``"pause": true`` at the top of /cluster)."""
    return FakePatroni(three_nodes(), pause=True)


def tagged_cluster() -> FakePatroni:
    """F04: node-b failover_priority 0, node-c nofailover, node-d eligible with conflicting tags (strings too)."""
    members = [
        member("node-a", "leader", index=0),
        member("node-b", index=1, tags={"failover_priority": 0}),
        member("node-c", index=2, tags={"nofailover": True, "clonefrom": True}),
        member("node-d", index=3, tags={"nofailover": "false", "failover_priority": "0"}),
    ]
    return FakePatroni(members)


def cluster_with_unknown_lag() -> FakePatroni:
    """F01: node-b failed to start (lag unknown, no timeline), node-c is fine."""
    return FakePatroni(three_nodes(node_b={"state": "start failed", "lag": "unknown", "timeline": None}))


def cluster_with_scheduled_switchover() -> FakePatroni:
    return FakePatroni(three_nodes(), scheduled={"at": "2030-01-01T03:00:00+00:00", "from": "node-a", "to": "node-b"})


def cluster_with_old_timeline_replica() -> FakePatroni:
    return FakePatroni(three_nodes(node_b={"timeline": 3}))


def cluster_with_dead_leader() -> FakePatroni:
    """The leader was SIGKILLed: it still holds the key until ttl, its REST API refuses connections, and the replicas
    lost their WAL stream (state "running")."""
    fake = FakePatroni(three_nodes(node_b={"state": "running"}, node_c={"state": "running"}))
    fake.unreachable.add("node-a")
    return fake


def leaderless_cluster() -> FakePatroni:
    return FakePatroni(three_nodes(node_a={"role": "replica", "state": "stopped", "lag": "unknown"}))


def two_leaders_cluster() -> FakePatroni:
    return FakePatroni(three_nodes(node_b={"role": "leader", "state": "running"}))


# ------------------------------------------------------------------------------------------------ loopback server


@dataclass
class LoopbackServer:
    """Patroni's and etcd's REST APIs on 127.0.0.1, served from a `FakePatroni` / `FakeEtcd`.

    Member ``m`` is reachable at ``{url}/m/<name>`` (``/cluster``, ``/config``, ``/patroni``, ``/history``,
    ``POST /switchover``, ``POST /failover``); etcd member i at ``{url}/e/<i>`` (``/v3/...``)."""

    patroni: FakePatroni
    etcd: FakeEtcd = field(default_factory=FakeEtcd)
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "LoopbackServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self) -> tuple[str | None, str]:
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) >= 2 and parts[0] in ("m", "e"):
                    return parts[1], "/" + "/".join(parts[2:])
                return None, "/" + "/".join(parts)

            def do_GET(self) -> None:  # noqa: N802
                name, path = self._route()
                fake = owner.patroni
                if fake.down or (name in fake.unreachable):
                    self.close_connection = True
                    self.send_response(503)
                    self.end_headers()
                    return
                if path == "/cluster":
                    with fake._lock:
                        fake.cluster_calls += 1
                        fake._advance()
                        raw = copy.deepcopy(fake.raw)
                    for m in raw["members"]:
                        m["api_url"] = f"{owner.url}/m/{m['name']}/patroni"
                        m["host"], m["port"] = "127.0.0.1", 1 + sorted(x["name"] for x in raw["members"]).index(m["name"])
                    self._send(200, raw)
                elif path == "/config":
                    self._send(200, fake.config_raw)
                elif path == "/history":
                    self._send(200, fake.history_raw)
                elif path == "/patroni" and name:
                    m = fake._member(name)
                    if m is None:
                        self._send(503, {"state": "unknown"})
                    else:
                        self._send(200, {"state": m["state"], "role": "primary" if m["role"] == "leader" else "replica", "patroni": {"name": name}})
                else:
                    self._send(404, "not found")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                name, path = self._route()
                if path.startswith("/v3/"):
                    self._etcd(name, path, body)
                    return
                fake = owner.patroni
                try:
                    if path == "/switchover":
                        at = datetime.fromisoformat(body["scheduled_at"]) if body.get("scheduled_at") else None
                        answer = fake.switchover(body.get("leader"), body.get("candidate"), at)
                    elif path == "/failover":
                        answer = fake.failover(body.get("candidate"))
                    else:
                        self._send(404, "not found")
                        return
                except Exception as exc:  # noqa: BLE001 - a scripted failure becomes a dropped connection
                    del exc
                    self.close_connection = True
                    return
                self._send(answer.status, answer.text)

            def do_DELETE(self) -> None:  # noqa: N802
                owner.patroni.cancel_scheduled_switchover()
                self._send(200, "scheduled switchover deleted")

            def _etcd(self, name: str | None, path: str, body: dict[str, Any]) -> None:
                etcd = owner.etcd
                if not etcd.reachable:
                    self.close_connection = True
                    self.send_response(503)
                    self.end_headers()
                    return
                if path == "/v3/cluster/member/list":
                    self._send(200, {"members": [{"ID": str(i + 1), "name": f"etcd{i}", "peerURLs": [f"http://127.0.0.1:{2380 + i}"], "clientURLs": [f"{owner.url}/e/{i}"]} for i in range(etcd.voters)]})
                elif path == "/v3/maintenance/status":
                    index = int(name) if name and name.isdigit() else 0
                    if index >= etcd.healthy:
                        self.close_connection = True
                        self.send_response(503)
                        self.end_headers()
                        return
                    self._send(200, {"header": {"member_id": str(index + 1)}, "leader": "1", "raftTerm": "2", "raftIndex": "100", "dbSize": "20480", "version": "3.4.23"})
                elif path == "/v3/maintenance/alarm":
                    self._send(200, {"alarms": [{"memberID": "1", "alarm": a} for a in etcd.alarms]})
                else:
                    self._send(404, "not found")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-patroni", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def config_yaml(self, *, rw_address: str | None = "127.0.0.1:9", context: str = "fake") -> str:
        """A gardenctl config whose context points at this server (read-write address: a closed port by default)."""
        names = [m["name"] for m in self.patroni.raw["members"]]
        endpoints = ", ".join(f"{self.url}/m/{n}" for n in names)
        haproxy = f"haproxy: {{stats-socket: /nonexistent/haproxy.sock{', rw-address: ' + rw_address if rw_address else ''}}}"
        return (
            f"current-context: {context}\n"
            f"clusters:\n"
            f"  {context}:\n"
            f"    scope: pg-main\n"
            f"    patroni: {{endpoints: [{endpoints}]}}\n"
            f"    etcd: {{endpoints: [{self.url}/e/0]}}\n"
            f"    {haproxy}\n"
            f"    postgres: {{connect-timeout-seconds: 1}}\n"
        )


__all__ = [
    "ActionAnswer",
    "FakeClock",
    "FakeEtcd",
    "FakePatroni",
    "FakeRw",
    "LoopbackServer",
    "endpoint_of",
]
