"""Patroni REST API adapter (over the HTTP chokepoint in backends/http.py). Returns model types; every failure is a
GardenError."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable, TypeVar


from gardenctl.backends.http import HttpSettings, json_of, make_client, request
from gardenctl.errors import BackendError, BackendUnreachable, GardenError
from gardenctl.model import (
    PatroniCluster,
    PatroniConfig,
    PatroniMember,
    ScheduledSwitchover,
    SelfReport,
    TimelineEntry,
    endpoint_key,
    parse_bool,
    parse_int,
)

T = TypeVar("T")


# ------------------------------------------------------------------------------------------------ parsing


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_member(raw: dict[str, Any]) -> PatroniMember:
    """One entry of ``GET /cluster`` ``members``. Missing timeline stays None; ``"unknown"`` lag stays None (F01)."""
    tags = raw.get("tags") if isinstance(raw.get("tags"), dict) else {}
    scheduled = raw.get("scheduled_restart")
    return PatroniMember(
        name=str(raw.get("name", "?")),
        role=str(raw.get("role", "unknown")),
        state=str(raw.get("state", "unknown")),
        api_url=_str_or_none(raw.get("api_url")),
        host=_str_or_none(raw.get("host")),
        port=parse_int(raw.get("port")),
        timeline=parse_int(raw.get("timeline")),
        lag_bytes=parse_int(raw.get("lag")),
        receive_lag_bytes=parse_int(raw.get("receive_lag")),
        replay_lag_bytes=parse_int(raw.get("replay_lag")),
        lsn=_str_or_none(raw.get("lsn")) if raw.get("lsn") not in (None, "unknown") else None,
        pending_restart=bool(parse_bool(raw.get("pending_restart"))),
        scheduled_restart=_str_or_none(scheduled.get("schedule")) if isinstance(scheduled, dict) else _str_or_none(scheduled),
        tags=dict(tags),
    )


def parse_config(raw: Any) -> PatroniConfig:
    if not isinstance(raw, dict):
        return PatroniConfig(raw={})
    return PatroniConfig(
        ttl_seconds=parse_int(raw.get("ttl")),
        loop_wait_seconds=parse_int(raw.get("loop_wait")),
        retry_timeout_seconds=parse_int(raw.get("retry_timeout")),
        maximum_lag_on_failover_bytes=parse_int(raw.get("maximum_lag_on_failover")),
        # Patroni 4 also accepts synchronous_mode: quorum.
        synchronous_mode=raw.get("synchronous_mode") == "quorum" or bool(parse_bool(raw.get("synchronous_mode"))),
        synchronous_mode_strict=bool(parse_bool(raw.get("synchronous_mode_strict"))),
        failsafe_mode=bool(parse_bool(raw.get("failsafe_mode"))),
        raw=dict(raw),
    )


def parse_cluster(raw: Any, source: str | None = None, config: PatroniConfig | None = None) -> PatroniCluster:
    """``GET /cluster``. ``pause`` is present (true) only while maintenance mode is on (F05)."""
    if not isinstance(raw, dict):
        raise BackendError(f"patroni: {source or 'endpoint'}: /cluster did not answer a JSON object")
    members_raw = raw.get("members") if isinstance(raw.get("members"), list) else []
    members = tuple(parse_member(m) for m in members_raw if isinstance(m, dict))
    sched = raw.get("scheduled_switchover")
    scheduled = None
    if isinstance(sched, dict):
        scheduled = ScheduledSwitchover(
            at=parse_time(sched.get("at")),
            from_member=_str_or_none(sched.get("from")),
            to_member=_str_or_none(sched.get("to")),
        )
    return PatroniCluster(
        scope=_str_or_none(raw.get("scope")),
        members=members,
        paused=bool(parse_bool(raw.get("pause"))),
        scheduled_switchover=scheduled,
        config=config,
        source=source,
    )


def parse_self_report(raw: dict[str, Any]) -> SelfReport:
    """``GET /patroni`` of one member: what it is now."""
    return SelfReport(
        role=_str_or_none(raw.get("role")),
        state=_str_or_none(raw.get("state")),
        replication_state=_str_or_none(raw.get("replication_state")),
        timeline=parse_int(raw.get("timeline")),
    )


def with_self_reports(cluster: PatroniCluster, answers: dict[str, dict[str, Any] | str]) -> PatroniCluster:
    """``cluster`` with each configured endpoint's own answer (endpoint -> ``GET /patroni`` body, or the error when
    it did not answer) put on its member: found by the name it gives (Patroni 3+), else by its ``api_url``. Endpoints
    that did not answer are listed in ``unanswered``."""
    by_name: dict[str, SelfReport] = {}
    by_key: dict[Any, SelfReport | str] = {}
    unanswered: dict[str, str] = {}
    for ep, answer in answers.items():
        if isinstance(answer, str):
            unanswered[ep] = answer
            by_key[endpoint_key(ep)] = answer
            continue
        report = parse_self_report(answer)
        name = (answer.get("patroni") or {}).get("name") if isinstance(answer.get("patroni"), dict) else None
        if isinstance(name, str) and name:
            by_name[name] = report
        else:
            by_key[endpoint_key(ep)] = report
    members = []
    for m in cluster.members:
        found: SelfReport | str | None = by_name.get(m.name)
        if found is None and (key := endpoint_key(m.api_url)) is not None:
            found = by_key.get(key)
        if isinstance(found, SelfReport):
            m = replace(m, self_report=found)
        elif isinstance(found, str):
            m = replace(m, api_error=found)
        members.append(m)
    return replace(cluster, members=tuple(members), unanswered=unanswered)


def parse_history(raw: Any) -> tuple[TimelineEntry, ...]:
    """``GET /history``: ``[[timeline, lsn, reason, timestamp, new_leader], ...]`` (the last two since Patroni 2.x)."""
    entries: list[TimelineEntry] = []
    if not isinstance(raw, list):
        return ()
    for row in raw:
        if not isinstance(row, list) or len(row) < 3:
            continue
        timeline = parse_int(row[0])
        if timeline is None:
            continue
        entries.append(
            TimelineEntry(
                timeline=timeline,
                lsn=parse_int(row[1]),
                reason=str(row[2]),
                at=parse_time(row[3]) if len(row) > 3 else None,
                new_leader=_str_or_none(row[4]) if len(row) > 4 else None,
            )
        )
    return tuple(entries)


# ------------------------------------------------------------------------------------------------ client


@dataclass(frozen=True, slots=True)
class ActionAnswer:
    """What Patroni said to a switchover/failover request."""

    status: int
    text: str

    @property
    def in_progress(self) -> bool:
        """503 "... status unknown" means the switchover may still be running (F03)."""
        return self.status == 503 and "unknown" in self.text.lower()


class PatroniClient:
    """Talks to a Patroni cluster through any of its members' REST APIs."""

    def __init__(self, endpoints: tuple[str, ...] | list[str], http: HttpSettings | None = None) -> None:
        if not endpoints:
            raise GardenError("patroni: no REST endpoints configured")
        self.endpoints = tuple(e.rstrip("/") for e in endpoints)
        self.http = http or HttpSettings()
        self._client = make_client(self.http)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "PatroniClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _first(self, fn: Callable[[str], T], what: str, endpoints: tuple[str, ...] | None = None) -> tuple[T, str]:
        """Ask every endpoint at once and return the first good answer; a slow member never blocks the others.
        Requests not sent yet when the first answer arrives are dropped: use it only when one answer is all that is
        needed (see `get_cluster` for asking every member)."""
        endpoints = endpoints or self.endpoints
        errors: dict[str, str] = {}
        backend_error: BackendError | None = None
        pool = ThreadPoolExecutor(max_workers=len(endpoints), thread_name_prefix="patroni")
        try:
            futures = {pool.submit(fn, ep): ep for ep in endpoints}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    ep = futures[fut]
                    try:
                        return fut.result(), ep
                    except BackendError as exc:
                        backend_error = exc
                        errors[ep] = exc.message
                    except GardenError as exc:
                        errors[ep] = exc.message
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if backend_error is not None and len(errors) == 1:
            raise backend_error
        summary = "; ".join(errors[ep].removeprefix("patroni: ") for ep in endpoints if ep in errors)
        raise BackendUnreachable(f"patroni: no member answered {what}: {summary}", hint="check the patroni.endpoints of this context and that Patroni runs")

    def _get_json(self, url: str, what: str) -> Any:
        return json_of(request(self._client, "GET", url, what="patroni"), what)

    def get_cluster(self, *, with_config: bool = True, every_endpoint: bool = False) -> PatroniCluster:
        """The cluster as the DCS sees it, from the first member that answers, plus the dynamic config.

        ``every_endpoint`` (status, check): also ask every configured endpoint what it is (``GET /patroni``, at
        once, waiting at most one request timeout from the start). /cluster is the DCS's view: it keeps a stopped
        member, with its last state ("streaming"), until its key expires after ttl, and while etcd has no quorum it
        keeps a leader that has already demoted itself. Each member then carries its own answer (``self_report``)
        or, when its endpoint did not answer, ``api_error``; ``unanswered`` lists those endpoints."""

        def fetch(ep: str) -> tuple[Any, Any]:
            cluster = self._get_json(f"{ep}/cluster", "/cluster")
            config = None
            if with_config:
                try:
                    config = self._get_json(f"{ep}/config", "/config")
                except GardenError:
                    config = None
            return cluster, config

        if not every_endpoint:
            (cluster_raw, config_raw), source = self._first(fetch, "GET /cluster")
            config = parse_config(config_raw) if config_raw is not None else None
            return parse_cluster(cluster_raw, source, config)
        started = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=len(self.endpoints), thread_name_prefix="patroni-self")
        try:
            own = {ep: pool.submit(self._get_json, f"{ep}/patroni", "/patroni") for ep in self.endpoints}
            (cluster_raw, config_raw), source = self._first(fetch, "GET /cluster")
            limit = self.http.timeout_seconds
            wait(own.values(), timeout=max(started + limit + 0.25 - time.monotonic(), 0.0))
        finally:
            pool.shutdown(wait=False)  # never cancelled: a request not sent yet would look like a silent member
        answers: dict[str, dict[str, Any] | str] = {}
        for ep, fut in own.items():
            if not fut.done():
                answers[ep] = f"no answer within {limit:g}s"
            elif isinstance(fut.exception(), BackendUnreachable):
                exc = fut.exception()
                # the HTTP chokepoint's TransportError (the cause) holds the bare reason: "connection refused"
                answers[ep] = getattr(exc.__cause__, "reason", None) or exc.message  # type: ignore[union-attr]
            elif isinstance(fut.exception(), GardenError):
                continue  # it answered, with an HTTP error: reachable, but nothing to say about itself
            elif fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]  # a bug, not an unreachable member
            else:
                answers[ep] = fut.result() if isinstance(fut.result(), dict) else "answered something that is not a JSON object"
        config = parse_config(config_raw) if config_raw is not None else None
        return with_self_reports(parse_cluster(cluster_raw, source, config), answers)

    def get_config(self) -> PatroniConfig:
        raw, _ = self._first(lambda ep: self._get_json(f"{ep}/config", "/config"), "GET /config")
        return parse_config(raw)

    def get_history(self) -> tuple[TimelineEntry, ...]:
        raw, _ = self._first(lambda ep: self._get_json(f"{ep}/history", "/history"), "GET /history")
        return parse_history(raw)

    def get_member_status(self, api_url: str) -> dict[str, Any]:
        """``GET /patroni`` of one member (its own view: role, state, timeline, xlog positions)."""
        base = api_url.rstrip("/")
        if base.endswith("/patroni"):
            base = base[: -len("/patroni")]
        data = self._get_json(f"{base}/patroni", "/patroni")
        return data if isinstance(data, dict) else {}

    def _post_action(self, path: str, body: dict[str, Any], prefer: tuple[str, ...]) -> ActionAnswer:
        """POST to the preferred members first (the leader), then the others. Never retried after an answer:
        a second switchover must not be sent while the first may still be running."""
        order = list(dict.fromkeys([*prefer, *self.endpoints]))
        errors = []
        for ep in order:
            try:
                response = request(
                    self._client,
                    "POST",
                    f"{ep}{path}",
                    what="patroni",
                    json_body=body,
                    ok_statuses=tuple(range(200, 600)),
                    # Patroni's switchover call waits for up to about two HA loops before answering.
                    timeout=max(self.http.timeout_seconds, 30.0),
                )
            except BackendUnreachable as exc:
                if getattr(exc.__cause__, "request_sent", True):
                    # Sent, but no answer (read timeout, dropped connection): it may be running. Asking another
                    # member could start a second one (F03), so report "status unknown" like Patroni's own 503.
                    return ActionAnswer(status=503, text=f"status unknown: no answer from {ep} after the request was sent ({exc.message})")
                errors.append(exc.message)
                continue
            if response.status_code == 401:
                raise BackendError(
                    f"patroni: {ep}{path}: 401 unauthorized",
                    status=401,
                    hint="set patroni.username and patroni.password-env / password-file for this context",
                )
            return ActionAnswer(status=response.status_code, text=response.text.strip())
        raise BackendUnreachable(f"patroni: no member accepted POST {path}: " + "; ".join(errors))

    def switchover(self, leader: str, candidate: str | None, scheduled_at: datetime | None = None, prefer: tuple[str, ...] = ()) -> ActionAnswer:
        body: dict[str, Any] = {"leader": leader}
        if candidate:
            body["candidate"] = candidate
        if scheduled_at is not None:
            body["scheduled_at"] = scheduled_at.isoformat()
        return self._post_action("/switchover", body, prefer)

    def failover(self, candidate: str, prefer: tuple[str, ...] = ()) -> ActionAnswer:
        return self._post_action("/failover", {"candidate": candidate}, prefer)

    def set_paused(self, paused: bool) -> None:
        """Turn maintenance mode on or off (``PATCH /config {"pause": ...}``)."""

        def patch(ep: str) -> None:
            request(self._client, "PATCH", f"{ep}/config", what="patroni", json_body={"pause": paused})

        self._first(patch, "PATCH /config")

    def patch_config(self, changes: dict[str, Any]) -> PatroniConfig:
        """``PATCH /config`` with ``changes`` (a null value removes the key); returns the new dynamic config.
        Sent to one member at a time, the next only if the previous could not be reached."""
        errors = []
        for ep in self.endpoints:
            try:
                response = request(self._client, "PATCH", f"{ep}/config", what="patroni", json_body=changes)
            except BackendUnreachable as exc:
                errors.append(exc.message)
                continue
            return parse_config(json_of(response, "PATCH /config"))
        raise BackendUnreachable("patroni: no member accepted PATCH /config: " + "; ".join(errors))

    def cancel_scheduled_switchover(self) -> None:
        def delete(ep: str) -> None:
            request(self._client, "DELETE", f"{ep}/switchover", what="patroni", ok_statuses=(200, 404))

        self._first(delete, "DELETE /switchover")


def endpoint_of(member: PatroniMember) -> str | None:
    """The REST base URL of a member from its ``api_url`` (``http://h:8008/patroni`` -> ``http://h:8008``)."""
    if not member.api_url:
        return None
    url = member.api_url.rstrip("/")
    return url[: -len("/patroni")] if url.endswith("/patroni") else url
