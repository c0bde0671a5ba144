"""etcd v3 adapter through etcd's JSON gateway (``/v3/...``) over plain HTTP, as Patroni's own etcd3 client does.

No grpc, no protobuf: the PyPI ``etcd3`` package (python-etcd3 0.12) fails at import with current protobuf
("Descriptors cannot be created directly") and needs grpcio. 64-bit ids arrive as JSON strings (or, from some
proxies, as big JSON numbers); both are parsed to exact Python ints, never floats (field case F09).
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from gardenctl.backends.http import HttpSettings, TransportError, json_of, make_client, request
from gardenctl.errors import BackendError, BackendUnreachable, GardenError
from gardenctl.model import EtcdAlarm, EtcdCluster, EtcdMember, parse_int


def _b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with ``prefix``."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


# ------------------------------------------------------------------------------------------------ parsing


def parse_members(raw: Any) -> tuple[EtcdMember, ...]:
    """``/v3/cluster/member/list``. A member added but never started has no name and no client URLs."""
    members = []
    for m in (raw or {}).get("members", []) if isinstance(raw, dict) else []:
        if not isinstance(m, dict):
            continue
        member_id = parse_int(m.get("ID"))
        if member_id is None:
            continue
        members.append(
            EtcdMember(
                id=member_id,
                name=m.get("name") or None,
                peer_urls=tuple(m.get("peerURLs") or ()),
                client_urls=tuple(m.get("clientURLs") or ()),
                is_learner=bool(m.get("isLearner", False)),
            )
        )
    return tuple(members)


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    endpoint: str
    member_id: int | None
    leader_id: int | None
    raft_term: int | None
    raft_index: int | None
    db_size_bytes: int | None
    db_size_in_use_bytes: int | None
    version: str | None
    errors: tuple[str, ...]
    is_learner: bool = False
    quota_bytes: int | None = None


def parse_status(raw: Any, endpoint: str) -> EndpointStatus:
    raw = raw if isinstance(raw, dict) else {}
    header = raw.get("header") if isinstance(raw.get("header"), dict) else {}
    return EndpointStatus(
        endpoint=endpoint,
        member_id=parse_int(header.get("member_id")),
        leader_id=parse_int(raw.get("leader")),
        raft_term=parse_int(raw.get("raftTerm", header.get("raft_term"))),
        raft_index=parse_int(raw.get("raftIndex")),
        db_size_bytes=parse_int(raw.get("dbSize")),
        db_size_in_use_bytes=parse_int(raw.get("dbSizeInUse")),
        version=raw.get("version"),
        errors=tuple(str(e) for e in raw.get("errors") or ()),
        is_learner=bool(raw.get("isLearner", False)),
        quota_bytes=parse_int(raw.get("dbSizeQuota")),
    )


def parse_alarms(raw: Any) -> tuple[EtcdAlarm, ...]:
    alarms = []
    for a in (raw or {}).get("alarms", []) if isinstance(raw, dict) else []:
        if not isinstance(a, dict):
            continue
        member_id = parse_int(a.get("memberID"))
        kind = a.get("alarm", "NONE")
        if isinstance(kind, int):
            kind = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}.get(kind, str(kind))
        if member_id is None or kind == "NONE":
            continue
        alarms.append(EtcdAlarm(member_id=member_id, alarm=str(kind)))
    return tuple(alarms)


def join_cluster(members: tuple[EtcdMember, ...], statuses: list[EndpointStatus], errors: dict[str, str], alarms: tuple[EtcdAlarm, ...], quota_bytes: int | None) -> EtcdCluster:
    """Merge the member list with what each endpoint said about itself."""
    by_id = {s.member_id: s for s in statuses if s.member_id is not None}
    out = []
    for m in members:
        st = by_id.get(m.id)
        if st is not None:
            out.append(
                replace(
                    m,
                    healthy=st.leader_id not in (None, 0),
                    is_leader=st.leader_id == m.id,
                    raft_term=st.raft_term,
                    raft_index=st.raft_index,
                    db_size_bytes=st.db_size_bytes,
                    db_size_in_use_bytes=st.db_size_in_use_bytes,
                    version=st.version,
                    errors=st.errors,
                    error=None if st.leader_id else "no leader",
                )
            )
        else:
            reason = next((errors[u] for u in m.client_urls if u in errors), None)
            if not m.started:
                reason = "never started (no name, no client URL)"
            out.append(replace(m, healthy=False, error=reason or "did not answer"))
    quota = next((s.quota_bytes for s in statuses if s.quota_bytes), None) or quota_bytes
    return EtcdCluster(members=tuple(out), alarms=alarms, quota_bytes=quota)


# ------------------------------------------------------------------------------------------------ client


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    mod_revision: int
    version: int


class EtcdClient:
    """etcd v3 through the JSON gateway. Endpoints are base URLs like ``http://10.0.0.21:2379``."""

    def __init__(self, endpoints: tuple[str, ...] | list[str], http: HttpSettings | None = None) -> None:
        if not endpoints:
            raise GardenError("etcd: no endpoints configured")
        self.endpoints = tuple(e.rstrip("/") for e in endpoints)
        self.http = http or HttpSettings()
        self._client = make_client(replace(self.http, username=None, password=None))
        self._token: str | None = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "EtcdClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # One place for every gateway call: auth token, error mapping.
    def _call(self, endpoint: str, path: str, body: dict[str, Any], *, timeout: float | None = None) -> Any:
        headers_needed = self.http.username is not None
        if headers_needed and self._token is None:
            self._authenticate(endpoint)
        try:
            response = self._client.post(
                f"{endpoint}/v3/{path}",
                json=body,
                headers={"Authorization": self._token} if self._token else None,
                timeout=timeout,
            )
        except TransportError as exc:
            raise BackendUnreachable(f"etcd: {endpoint}: {exc.reason}") from exc
        if response.status_code != 200:
            detail = response.text.strip()
            try:
                payload = response.json()
                detail = payload.get("message") or payload.get("error") or detail
            except ValueError:
                pass
            raise BackendError(f"etcd: {endpoint}/v3/{path}: HTTP {response.status_code}: {detail[:300]}", status=response.status_code, body=response.text)
        return json_of(response, f"etcd {path}")

    def _authenticate(self, endpoint: str) -> None:
        response = request(
            self._client,
            "POST",
            f"{endpoint}/v3/auth/authenticate",
            what="etcd",
            json_body={"name": self.http.username, "password": self.http.password or ""},
        )
        token = json_of(response, "etcd auth").get("token")
        if not token:
            raise BackendError(f"etcd: {endpoint}: authentication returned no token")
        self._token = token

    def _any(self, path: str, body: dict[str, Any]) -> Any:
        """Try each endpoint in turn until one answers (for single-answer calls)."""
        errors = []
        for ep in self.endpoints:
            try:
                return self._call(ep, path, body)
            except BackendUnreachable as exc:
                errors.append(exc.message)
        raise BackendUnreachable("etcd: no endpoint answered: " + "; ".join(e.removeprefix("etcd: ") for e in errors), hint="check etcd.endpoints of this context and that etcd runs")

    # -- cluster
    def list_members(self) -> tuple[EtcdMember, ...]:
        return parse_members(self._any("cluster/member/list", {}))

    def get_status(self, endpoint: str) -> EndpointStatus:
        return parse_status(self._call(endpoint, "maintenance/status", {}), endpoint)

    def list_alarms(self) -> tuple[EtcdAlarm, ...]:
        return parse_alarms(self._any("maintenance/alarm", {"action": "GET"}))

    def get_cluster(self, quota_bytes: int | None = None) -> EtcdCluster:
        """Members, each member's own status (asked concurrently), and alarms: a NOSPACE alarm leaves every endpoint
        answering "healthy" while all writes fail (F08), so alarms are always read."""
        members = self.list_members()
        urls = list(dict.fromkeys([*self.endpoints, *(u.rstrip("/") for m in members for u in m.client_urls)]))
        statuses: list[EndpointStatus] = []
        errors: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=max(len(urls), 1) + 1, thread_name_prefix="etcd") as pool:
            alarm_future = pool.submit(self.list_alarms)
            futures = {pool.submit(self.get_status, url): url for url in urls}
            for fut, url in futures.items():
                try:
                    statuses.append(fut.result())
                except GardenError as exc:
                    errors[url] = exc.message.split(": ", 2)[-1]
            alarms_error = None
            try:
                alarms = alarm_future.result()
            except GardenError as exc:
                alarms, alarms_error = (), exc.message  # unknown, not "no alarms"
        # Map errors by member client URL (with and without a trailing slash).
        errors.update({u + "/": e for u, e in list(errors.items())})
        return replace(join_cluster(members, statuses, errors, alarms, quota_bytes), alarms_error=alarms_error)

    def is_healthy(self, endpoint: str) -> bool:
        try:
            response = self._client.get(f"{endpoint}/health")
        except TransportError:
            return False
        try:
            return response.status_code == 200 and str(response.json().get("health")).lower() == "true"
        except ValueError:
            return False

    # -- key/value
    def get(self, key: str | bytes) -> KeyValue | None:
        raw = self._any("kv/range", {"key": _b64(key)})
        kvs = raw.get("kvs") or []
        if not kvs:
            return None
        return self._kv(kvs[0])

    def get_prefix(self, prefix: str | bytes) -> list[KeyValue]:
        p = prefix.encode() if isinstance(prefix, str) else prefix
        raw = self._any("kv/range", {"key": _b64(p), "range_end": _b64(prefix_end(p))})
        return [self._kv(kv) for kv in raw.get("kvs") or []]

    @staticmethod
    def _kv(kv: dict[str, Any]) -> KeyValue:
        return KeyValue(
            key=_unb64(kv.get("key")),
            value=_unb64(kv.get("value")),
            mod_revision=parse_int(kv.get("mod_revision")) or 0,
            version=parse_int(kv.get("version")) or 0,
        )

    def put(self, key: str | bytes, value: str | bytes) -> None:
        self._any("kv/put", {"key": _b64(key), "value": _b64(value)})

    def delete(self, key: str | bytes) -> None:
        self._any("kv/deleterange", {"key": _b64(key)})

    def compare_and_set(self, key: str | bytes, value: str | bytes, *, expected_mod_revision: int | None) -> bool:
        """Write ``value`` only if the key is still at ``expected_mod_revision`` (None: only if it does not exist).
        Returns False when another writer got there first."""
        compare = {
            "key": _b64(key),
            "target": "MOD",
            "result": "EQUAL",
            "mod_revision": str(expected_mod_revision or 0),
        }
        raw = self._any(
            "kv/txn",
            {"compare": [compare], "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}], "failure": []},
        )
        return bool(raw.get("succeeded", False))
