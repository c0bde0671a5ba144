"""The fake kube-apiserver's behaviour, independent of HTTP.

`FakeApiServer.handle(method, target, headers, body)` takes one HTTP request and returns
`(status code, payload, extra headers)`; `tests.fakes.kube.fixture.FakeKube` serves it over HTTP.

Semantics follow the real API server where they matter to a client (see README.md next to this
file for the list and for what is deliberately simplified).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import itertools
import json
import random
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import errors, merge, resources
from .errors import ApiError
from .resources import RESOURCE_TYPES, ResourceType
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
# metadata fields the server owns: whatever a client sends for them is ignored
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                   "deletionTimestamp", "deletionGracePeriodSeconds")
# fields never tracked in managedFields
IGNORED_FOR_OWNERSHIP = ("name", "namespace", "generateName") + SERVER_METADATA

_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated name suffixes
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ManagerEntry:
    manager: str
    operation: str  # "Apply" | "Update"
    api_version: str
    time: str
    paths: set = field(default_factory=set)

    def render(self) -> dict:
        return {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
                "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": merge.to_fields_v1(self.paths)}


@dataclass
class Rollout:
    pending: int  # reads left before the workload converges
    template_changed: bool
    prev_status: dict
    stuck: bool = False  # converged into "never ready"


@dataclass
class Record:
    rt: ResourceType
    obj: dict
    managers: dict = field(default_factory=dict)  # (manager, operation) -> ManagerEntry
    rollout: Rollout | None = None
    derived: list = field(default_factory=list)  # [(namespace, pod name)] created for a workload


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    status: int = 0
    response: Any = None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        """The request body parsed as JSON (or YAML for apply patches); None when empty."""
        if not self.body:
            return None
        text = self.body.decode()
        try:
            return json.loads(text)
        except ValueError:
            return yaml.safe_load(text)


@dataclass
class InjectedError:
    method: str | None
    path: re.Pattern
    code: int
    reason: str
    message: str
    times: int | None
    headers: dict


def _parse_bool(value: str | None) -> bool:
    return value in _TRUE


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


class FakeApiServer:
    """In-memory API server state plus the request dispatcher. Thread-safe (one lock)."""

    def __init__(self, *, ready_after_gets: int = 2, seed: bool = True, token: str | None = None,
                 kubernetes_version: str = "v1.31.4+k3s1"):
        self.ready_after_gets = ready_after_gets
        self.token = token
        self.kubernetes_version = kubernetes_version
        self.server_address = "127.0.0.1:0"
        self._lock = threading.RLock()
        self._store: dict[ResourceType, dict[tuple[str, str], Record]] = {rt: {} for rt in RESOURCE_TYPES}
        self._rv = itertools.count(1000)
        self._last_rv = "999"
        self._requests: list[RequestRecord] = []
        self._injected: list[InjectedError] = []
        self._never_ready: set[tuple[str, str, str]] = set()
        self._failing_jobs: set[tuple[str, str]] = set()
        self._ready_after: dict[tuple[str, str, str], int] = {}
        self._rand = random.Random(1234)
        self._cluster_ips = (f"10.43.{i // 250}.{i % 250 + 1}" for i in itertools.count(100))
        self._pod_ips = (f"10.42.{i // 250}.{i % 250 + 2}" for i in itertools.count(0))
        self._node_ports = itertools.count(30080)
        self._node_rr = itertools.count()
        from .seed import seed_cluster, seed_namespaces
        seed_namespaces(self)
        if seed:
            seed_cluster(self)

    # ================================================================== introspection / control API

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served so far, oldest first (a copy of the log)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Requests filtered by method and by a regex searched in the path."""
        return [r for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or re.search(path, r.path))]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def objects(self, kind: str, namespace: str | None = None) -> list[dict]:
        """Stored objects of a kind (kind, plural, short name or plural.group), sorted by namespace/name.
        Reading through this never advances rollouts."""
        rt = resources.resolve(kind)
        with self._lock:
            return [copy.deepcopy(rec.obj) for (ns, _), rec in sorted(self._store[rt].items())
                    if namespace is None or ns == namespace]

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        rt = resources.resolve(kind)
        with self._lock:
            rec = self._store[rt].get(((namespace or "default") if rt.namespaced else "", name))
            return copy.deepcopy(rec.obj) if rec else None

    def stored(self) -> dict[str, list[dict]]:
        """Everything stored, as {"deployments.apps": [obj, ...], ...}."""
        with self._lock:
            return {rt.qualified: [copy.deepcopy(r.obj) for _, r in sorted(recs.items())]
                    for rt, recs in self._store.items() if recs}

    def add_object(self, obj: dict) -> dict:
        """Store an object directly (any kind, including Node and Pod), keeping its `status`.
        Creates or replaces; goes through defaulting and validation like a write would."""
        rt = resources.by_kind(obj.get("kind", ""), obj.get("apiVersion"))
        if rt is None:
            raise KeyError(f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')}")
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        ns = (meta.get("namespace") or "default") if rt.namespaced else ""
        with self._lock:
            if rt.namespaced:
                meta["namespace"] = ns
            rec = self._store[rt].get((ns, meta["name"]))
            return self._commit(rt, ns, meta["name"], rec, obj, manager="k3s", operation="Update",
                                dry_run=False, keep_status=True)

    def delete_object(self, kind: str, name: str, namespace: str | None = None) -> bool:
        rt = resources.resolve(kind)
        with self._lock:
            key = ((namespace or "default") if rt.namespaced else "", name)
            if key not in self._store[rt]:
                return False
            self._remove(rt, key, orphan=False)
            return True

    def set_ready_after(self, kind: str, name: str, namespace: str = "default", gets: int = 0) -> None:
        """Per-workload override of `ready_after_gets` (0 = converge in the write response itself)."""
        rt = resources.resolve(kind)
        with self._lock:
            self._ready_after[(rt.plural, namespace, name)] = gets

    def set_never_ready(self, kind: str, name: str, namespace: str = "default", never: bool = True) -> None:
        """Make a Deployment/StatefulSet never become ready (pods crash-loop), or a Job never finish.
        `never=False` lifts it: the next read converges."""
        rt = resources.resolve(kind)
        with self._lock:
            key = (rt.plural, namespace, name)
            if never:
                self._never_ready.add(key)
            else:
                self._never_ready.discard(key)

    def set_job_fails(self, name: str, namespace: str = "default", fails: bool = True) -> None:
        """The named Job ends Failed (BackoffLimitExceeded) instead of Complete."""
        with self._lock:
            (self._failing_jobs.add if fails else self._failing_jobs.discard)((namespace, name))

    def inject_error(self, path: str, code: int = 500, *, method: str | None = None, reason: str | None = None,
                     message: str | None = None, times: int | None = 1, headers: dict | None = None) -> None:
        """Answer the next `times` requests (None: all) whose path matches the regex `path` (and method)
        with a Status failure instead of serving them."""
        default_reason = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                          409: "Conflict", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
                          503: "ServiceUnavailable", 504: "Timeout"}.get(code, "Unknown")
        with self._lock:
            self._injected.append(InjectedError(method.upper() if method else None, re.compile(path), code,
                                                reason or default_reason, message or f"injected {code}",
                                                times, headers or {}))

    # ================================================================== HTTP dispatch

    def handle(self, method: str, target: str, headers: dict, body: bytes) -> tuple[int, Any, dict]:
        headers = {k.lower(): v for k, v in headers.items()}
        split = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        record = RequestRecord(method.upper(), split.path, query, headers, body)
        extra: dict = {}
        with self._lock:
            try:
                code, payload = self._route(record.method, split.path, query, headers, body)
            except ApiError as exc:
                code, payload, extra = exc.code, exc.status(), exc.headers
            payload = copy.deepcopy(payload)  # a snapshot: stored objects keep changing
            record.status, record.response = code, payload
            self._requests.append(record)
            return code, payload, extra

    def _check_injected(self, method: str, path: str) -> None:
        for inj in list(self._injected):
            if (inj.method is None or inj.method == method) and inj.path.search(path):
                if inj.times is not None:
                    inj.times -= 1
                    if inj.times <= 0:
                        self._injected.remove(inj)
                raise ApiError(inj.code, inj.reason, inj.message, {}, inj.headers)

    def _route(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, Any]:
        self._check_injected(method, path)
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return 200, "ok"
        if parts == ["version"]:
            return 200, self._version_doc()
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            raise errors.unauthorized()
        if not parts or parts[0] not in ("api", "apis"):
            raise errors.page_not_found()
        if method != "GET" and len(parts) <= (2 if parts[0] == "api" else 3):
            raise errors.method_not_allowed()
        if parts == ["api"]:
            return 200, resources.api_versions(self.server_address)
        if parts == ["apis"]:
            return 200, resources.api_group_list()
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group = parts[1]
            if group not in resources.GROUPS:
                raise errors.page_not_found()
            if len(parts) == 2:
                return 200, resources.api_group(group)
            version, rest = parts[2], parts[3:]
        if not rest:
            doc = resources.api_resource_list(group, version)
            if doc is None:
                raise errors.page_not_found()
            return 200, doc
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        rt = resources.by_path(group, version, rest[0])
        if rt is None or (namespace is not None and not rt.namespaced) or len(rest) > 2:
            raise errors.page_not_found()
        name = rest[1] if len(rest) == 2 else None
        if rt.namespaced and namespace is None and name is not None:
            raise errors.page_not_found()
        return self._resource_request(rt, method, namespace, name, query, headers, body)

    def _resource_request(self, rt, method, namespace, name, query, headers, body):
        verb = {("GET", False): "list", ("GET", True): "get", ("POST", False): "create",
                ("PUT", True): "update", ("PATCH", True): "patch", ("DELETE", True): "delete",
                ("DELETE", False): "deletecollection"}.get((method, name is not None))
        if verb is None or not rt.allows(verb):
            raise errors.method_not_allowed()
        if verb == "list" and _parse_bool(query.get("watch")):
            raise errors.method_not_allowed("watch is not supported by the fake API server")
        if verb in ("create", "deletecollection") and rt.namespaced and namespace is None:
            raise errors.method_not_allowed()
        ns = namespace or ""
        if verb == "get":
            return 200, self._get(rt, ns, name)
        if verb == "list":
            return 200, self._list(rt, namespace, query)
        if verb == "create":
            return 201, self._create(rt, ns, query, headers, body)
        if verb == "update":
            return self._replace(rt, ns, name, query, headers, body)
        if verb == "patch":
            return self._patch(rt, ns, name, query, headers, body)
        if verb == "delete":
            return 200, self._delete(rt, ns, name, query, body)
        return 200, self._delete_collection(rt, ns, query, body)

    def _version_doc(self) -> dict:
        m = re.match(r"v(\d+)\.(\d+)", self.kubernetes_version)
        return {"major": m.group(1), "minor": m.group(2), "emulationMajor": m.group(1),
                "emulationMinor": m.group(2), "gitVersion": self.kubernetes_version,
                "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2024-12-12T00:00:00Z",
                "goVersion": "go1.22.9", "compiler": "gc", "platform": "linux/amd64"}

    # ================================================================== verbs

    def _get(self, rt, ns, name) -> dict:
        rec = self._store[rt].get((ns, name))
        if rec is None:
            raise errors.not_found(rt, name)
        self._observe(rec)
        return rec.obj

    def _list(self, rt, namespace, query) -> dict:
        reqs = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), rt.kind)
        matched = [rec for (ns, _), rec in sorted(self._store[rt].items())
                   if (namespace is None or ns == namespace)
                   and labels_match(reqs, rec.obj["metadata"].get("labels"))
                   and fields_match(fields, rec.obj)]
        offset = 0
        if query.get("continue"):
            try:
                offset = json.loads(base64.urlsafe_b64decode(query["continue"].encode()))["offset"]
            except (ValueError, KeyError, binascii.Error):
                raise errors.bad_request("continue key is not valid")
        meta: dict = {"resourceVersion": self._last_rv}
        page = matched[offset:]
        limit = int(query.get("limit") or 0)
        if limit and len(page) > limit:
            page = page[:limit]
            token = json.dumps({"offset": offset + limit}).encode()
            meta["continue"] = base64.urlsafe_b64encode(token).decode()
            meta["remainingItemCount"] = len(matched) - offset - limit
        items = []
        for rec in page:
            self._observe(rec)
            item = copy.deepcopy(rec.obj)
            # the real server leaves kind/apiVersion out of the items of a typed list
            item.pop("kind", None)
            item.pop("apiVersion", None)
            items.append(item)
        meta["resourceVersion"] = self._last_rv
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta, "items": items}

    def _create(self, rt, ns, query, headers, body) -> dict:
        obj = self._decode_object(rt, headers, body)
        dry_run = self._dry_run(query)
        meta = obj["metadata"]
        self._check_namespace_matches(rt, ns, meta)
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + "".join(self._rand.choice(_SAFE) for _ in range(5))
        if not name:
            raise errors.invalid(rt, "", [("metadata.name", "FieldValueRequired",
                                           "Required value: name or generateName is required")])
        self._require_namespace(rt, ns)
        if (ns, name) in self._store[rt]:
            raise errors.already_exists(rt, name)
        manager = self._field_manager(query, headers)
        return self._commit(rt, ns, name, None, obj, manager=manager, operation="Update", dry_run=dry_run)

    def _replace(self, rt, ns, name, query, headers, body) -> tuple[int, dict]:
        obj = self._decode_object(rt, headers, body)
        dry_run = self._dry_run(query)
        meta = obj["metadata"]
        self._check_name_matches(meta, name)
        self._check_namespace_matches(rt, ns, meta)
        rec = self._store[rt].get((ns, name))
        if rec is None:
            raise errors.not_found(rt, name)
        if meta.get("resourceVersion") and meta["resourceVersion"] != rec.obj["metadata"]["resourceVersion"]:
            raise errors.modified_conflict(rt, name)
        manager = self._field_manager(query, headers)
        return 200, self._commit(rt, ns, name, rec, obj, manager=manager, operation="Update", dry_run=dry_run)

    def _patch(self, rt, ns, name, query, headers, body) -> tuple[int, dict]:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == APPLY_PATCH:
            return self._apply(rt, ns, name, query, body)
        if content_type not in (MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH):
            raise errors.unsupported_media_type(content_type)
        dry_run = self._dry_run(query)
        rec = self._store[rt].get((ns, name))
        if rec is None:
            raise errors.not_found(rt, name)
        try:
            patch = json.loads(body or b"null")
        except ValueError as exc:
            raise errors.bad_request(f"error decoding patch: {exc}")
        live = copy.deepcopy(rec.obj)
        if content_type == JSON_PATCH:
            if not isinstance(patch, list):
                raise errors.bad_request("json patch must be a list of operations")
            try:
                new = merge.json_patch(live, patch)
            except (merge.JsonPatchError, KeyError, IndexError, ValueError, TypeError) as exc:
                raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                                               f"request: {exc}", {})
        else:
            if not isinstance(patch, dict):
                raise errors.bad_request("merge patch must be a JSON object")
            if content_type == MERGE_PATCH:
                new = merge.json_merge_patch(live, patch)
            else:
                new = merge.strategic_merge_patch(live, patch)
        if not isinstance(new, dict):
            raise errors.bad_request("patched object is not an object")
        meta = new.setdefault("metadata", {})
        if meta.get("name") != name or (rt.namespaced and meta.get("namespace") != ns):
            raise errors.bad_request("the name/namespace of the object cannot be changed by a patch")
        if meta.get("resourceVersion") != rec.obj["metadata"]["resourceVersion"]:
            raise errors.modified_conflict(rt, name)  # a patch that sets resourceVersion is a precondition
        manager = self._field_manager(query, headers)
        return 200, self._commit(rt, ns, name, rec, new, manager=manager, operation="Update", dry_run=dry_run)

    def _apply(self, rt, ns, name, query, body) -> tuple[int, dict]:
        manager = query.get("fieldManager")
        if not manager:
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                                           "is required for apply patch", {"group": "meta.k8s.io",
                                                                           "kind": "PatchOptions"})
        force = _parse_bool(query.get("force"))
        dry_run = self._dry_run(query)
        try:
            text = (body or b"").decode()
            try:
                cfg = json.loads(text)
            except ValueError:
                cfg = yaml.safe_load(text)
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding YAML: {exc}")
        if not isinstance(cfg, dict):
            raise errors.bad_request("apply patch must be a YAML/JSON object")
        if not cfg.get("apiVersion") or not cfg.get("kind"):
            raise errors.bad_request("invalid object type: " + f"{cfg.get('apiVersion', '')}, Kind={cfg.get('kind', '')}")
        if cfg["apiVersion"] != rt.api_version or cfg["kind"] != rt.kind:
            raise errors.bad_request(f"the API version in the data ({cfg['apiVersion']}) does not match the expected "
                                     f"API version ({rt.api_version})" if cfg["apiVersion"] != rt.api_version
                                     else f"the kind in the data ({cfg['kind']}) does not match the expected kind "
                                          f"({rt.kind})")
        cfg = _drop_nulls(cfg)
        meta = cfg.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        self._check_name_matches(meta, name)
        self._check_namespace_matches(rt, ns, meta)
        rec = self._store[rt].get((ns, name))
        if rec is None:
            self._require_namespace(rt, ns)
            live = {"apiVersion": rt.api_version, "kind": rt.kind,
                    "metadata": {"name": name, **({"namespace": ns} if rt.namespaced else {})}}
            managers: dict = {}
        else:
            if meta.get("resourceVersion") and meta["resourceVersion"] != rec.obj["metadata"]["resourceVersion"]:
                raise errors.modified_conflict(rt, name)
            live = copy.deepcopy(rec.obj)
            managers = copy.deepcopy(rec.managers)
        for f in SERVER_METADATA:
            meta.pop(f, None)
        if rt.has_status:
            cfg.pop("status", None)
        new_paths = self._owned_paths(rt, cfg)
        key = (manager, "Apply")
        # conflicts: another manager owns a field this apply sets to a different value
        conflicts: list[tuple[tuple, merge.Path]] = []
        for other_key, entry in managers.items():
            if other_key == key:
                continue
            for path in sorted(new_paths & entry.paths):
                if merge.is_item(path):
                    continue
                if merge.get_at(live, path) != merge.get_at(cfg, path):
                    conflicts.append((other_key, path))
        if conflicts and not force:
            raise errors.apply_conflict(rt, name, [(k[0], merge.render_path(p)) for k, p in conflicts])
        for other_key, path in conflicts:  # force: ownership moves to this manager
            managers[other_key].paths.discard(path)
        old_paths = managers[key].paths if key in managers else set()
        kept = new_paths.union(*(e.paths for k, e in managers.items() if k != key))
        for path in sorted(old_paths - new_paths, key=len, reverse=True):
            # a field this manager stopped applying goes away unless someone else still owns it (or below it)
            if not any(p[:len(path)] == path for p in kept):
                merge.delete_at(live, path)
        merged = merge.apply_merge(live, cfg)
        entry = managers.get(key) or ManagerEntry(manager, "Apply", rt.api_version, now())
        entry.paths = new_paths
        managers[key] = entry
        managers = {k: e for k, e in managers.items() if e.paths}
        created = rec is None
        result = self._commit(rt, ns, name, rec, merged, manager=manager, operation="Apply", dry_run=dry_run,
                              managers=managers)
        return (201 if created else 200), result

    def _delete(self, rt, ns, name, query, body) -> dict:
        rec = self._store[rt].get((ns, name))
        if rec is None:
            raise errors.not_found(rt, name)
        options = self._delete_options(query, body)
        pre = options.get("preconditions") or {}
        meta = rec.obj["metadata"]
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise errors.precondition_conflict(rt, name, "UID", pre["uid"], meta["uid"])
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise errors.precondition_conflict(rt, name, "ResourceVersion", pre["resourceVersion"],
                                               meta["resourceVersion"])
        result = self._deletion_response(rt, rec)
        if not options["dryRun"]:
            self._remove(rt, (ns, name), orphan=options.get("propagationPolicy") == "Orphan")
        return result

    def _delete_collection(self, rt, ns, query, body) -> dict:
        options = self._delete_options(query, body)
        reqs = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), rt.kind)
        doomed = [key for key, rec in sorted(self._store[rt].items())
                  if key[0] == ns and labels_match(reqs, rec.obj["metadata"].get("labels"))
                  and fields_match(fields, rec.obj)]
        items = [copy.deepcopy(self._store[rt][key].obj) for key in doomed]
        if not options["dryRun"]:
            for key in doomed:
                self._remove(rt, key, orphan=options.get("propagationPolicy") == "Orphan")
        # like the real server: the list of what was deleted
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": self._last_rv}, "items": items}

    # ================================================================== request helpers

    def _dry_run(self, query) -> bool:
        value = query.get("dryRun")
        if value in (None, ""):
            return False
        if value != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
        return True

    def _delete_options(self, query, body) -> dict:
        options: dict = {}
        if body:
            try:
                options = json.loads(body) or {}
            except ValueError as exc:
                raise errors.bad_request(f"error decoding DeleteOptions: {exc}")
        dry = options.get("dryRun") or []
        if query.get("dryRun") is not None:
            dry = [query["dryRun"]]
        if any(d != "All" for d in dry):
            raise errors.bad_request(f'dryRun: Unsupported value: "{dry}": supported values: "All"')
        options["dryRun"] = bool(dry)
        if query.get("propagationPolicy"):
            options["propagationPolicy"] = query["propagationPolicy"]
        return options

    def _field_manager(self, query, headers) -> str:
        manager = query.get("fieldManager")
        if manager:
            return manager
        # the real server names an unnamed Update manager after the user agent's first segment
        return (headers.get("user-agent") or "unknown").split("/")[0] or "unknown"

    def _decode_object(self, rt, headers, body) -> dict:
        content_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        try:
            text = (body or b"").decode()
            if content_type in ("application/json", ""):
                obj = json.loads(text)
            elif content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
                obj = yaml.safe_load(text)
            else:
                raise errors.unsupported_media_type(content_type)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding request body: {exc}")
        if not isinstance(obj, dict):
            raise errors.bad_request("request body must be an object")
        if obj.get("apiVersion", rt.api_version) != rt.api_version or obj.get("kind", rt.kind) != rt.kind:
            raise errors.bad_request(f"the body of the request ({obj.get('apiVersion')}, Kind={obj.get('kind')}) "
                                     f"does not match the resource ({rt.api_version}, Kind={rt.kind})")
        obj = _drop_nulls(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        return obj

    def _check_name_matches(self, meta, name) -> None:
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the "
                                     f"URL ({name})")
        meta["name"] = name

    def _check_namespace_matches(self, rt, ns, meta) -> None:
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)

    def _require_namespace(self, rt, ns) -> None:
        if rt.namespaced and ("", ns) not in self._store[resources.by_kind("Namespace")]:
            raise errors.namespace_not_found(ns)

    # ================================================================== the write path

    def _owned_paths(self, rt, obj) -> set:
        obj = copy.deepcopy(obj)
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        if rt.has_status:
            obj.pop("status", None)
        meta = obj.get("metadata") or {}
        for f in IGNORED_FOR_OWNERSHIP:
            meta.pop(f, None)
        if not meta:
            obj.pop("metadata", None)
        return merge.field_paths(obj)

    def _track_update(self, rt, managers, manager, old, new) -> None:
        new_paths = self._owned_paths(rt, new)
        if old is None:
            changed, removed = new_paths, set()
        else:
            old_paths = self._owned_paths(rt, old)
            changed = {p for p in new_paths
                       if (not merge.has(old, p) if merge.is_item(p)
                           else merge.get_at(old, p) != merge.get_at(new, p))}
            removed = old_paths - new_paths
        if not changed and not removed:
            return
        key = (manager, "Update")
        for other_key, entry in managers.items():
            if other_key != key:
                entry.paths -= changed | removed
        entry = managers.get(key) or ManagerEntry(manager, "Update", rt.api_version, now())
        entry.paths = (entry.paths - removed) | changed
        managers[key] = entry
        for k in [k for k, e in managers.items() if not e.paths]:
            del managers[k]

    def _commit(self, rt, ns, name, rec, new_obj, *, manager, operation, dry_run, managers=None,
                keep_status=False) -> dict:
        old = rec.obj if rec else None
        obj = copy.deepcopy(new_obj)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = ns
        for f in SERVER_METADATA:
            meta.pop(f, None)
        if old:
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        else:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
        if rt.has_status and not keep_status:
            if old is not None:
                obj["status"] = copy.deepcopy(old.get("status", {}))
            else:
                obj["status"] = self._initial_status(rt, obj)
        from . import validation
        validation.check_types(rt, obj)  # 400s: what the real server fails to decode
        validation.default(self, rt, obj, old)
        validation.validate(rt, obj, old)  # 422s
        managers = copy.deepcopy(managers if managers is not None else (rec.managers if rec else {}))
        if operation == "Update":
            self._track_update(rt, managers, manager, old, obj)
        spec_changed = old is None or self._spec_of(old) != self._spec_of(obj)
        if rt.tracks_generation:
            meta["generation"] = 1 if old is None else old["metadata"].get("generation", 1) + int(spec_changed)
        if old is not None:
            unchanged = self._comparable(old) == self._comparable(obj) and \
                {k: e.paths for k, e in rec.managers.items()} == {k: e.paths for k, e in managers.items()}
            if unchanged:  # a no-op write: nothing stored, resourceVersion unchanged
                return copy.deepcopy(old)
        stamp = now()
        key = (manager, operation)
        if key in managers:
            managers[key].time = stamp
        if managers:
            meta["managedFields"] = [e.render() for e in managers.values()]
        if dry_run:
            if old is not None:
                meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            return obj
        meta["resourceVersion"] = self._next_rv()
        if rec is None:
            rec = Record(rt, obj, managers)
            self._store[rt][(ns, name)] = rec
        else:
            rec.obj, rec.managers = obj, managers
        if rt.kind == "Namespace" and old is None:
            from .seed import namespace_defaults
            namespace_defaults(self, name)
        if rt.kind in WORKLOAD_KINDS and spec_changed and not keep_status:
            self._start_rollout(rec, old)
        return copy.deepcopy(rec.obj)

    @staticmethod
    def _spec_of(obj: dict) -> dict:
        return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}

    @staticmethod
    def _comparable(obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        for f in ("managedFields", "resourceVersion"):
            obj["metadata"].pop(f, None)
        return obj

    def _next_rv(self) -> str:
        self._last_rv = str(next(self._rv))
        return self._last_rv

    def _initial_status(self, rt, obj) -> dict:
        if rt.kind == "Namespace":
            return {"phase": "Active"}
        if rt.kind in ("Service", "Ingress"):
            return {"loadBalancer": {}}
        if rt.kind == "Pod":
            return {}  # filled by validation.default (a created pod starts Running and Ready)
        return {}

    def _deletion_response(self, rt, rec) -> dict:
        if rt.kind in ("Pod", "Namespace"):
            obj = copy.deepcopy(rec.obj)
            obj["metadata"]["deletionTimestamp"] = now()
            if rt.kind == "Pod":
                obj["metadata"]["deletionGracePeriodSeconds"] = 30
            else:
                obj["status"]["phase"] = "Terminating"
            return obj
        return errors.success_status(rt, rec.obj["metadata"]["name"], rec.obj["metadata"]["uid"])

    def _remove(self, rt, key, *, orphan: bool) -> None:
        rec = self._store[rt].pop(key, None)
        if rec is None:
            return
        self._next_rv()
        if not orphan:
            pods = self._store[resources.by_kind("Pod")]
            for pod_key in rec.derived:
                pods.pop(pod_key, None)
        if rt.kind == "Namespace":
            for other_rt, recs in self._store.items():
                if other_rt.namespaced:
                    for k in [k for k in recs if k[0] == key[1]]:
                        recs.pop(k)
        if rt.kind == "Pod":
            self._replace_deleted_pod(key)

    # ================================================================== workloads

    def _ready_after_for(self, rec) -> int:
        meta = rec.obj["metadata"]
        return self._ready_after.get((rec.rt.plural, meta.get("namespace", ""), meta["name"]), self.ready_after_gets)

    def _is_never_ready(self, rec) -> bool:
        meta = rec.obj["metadata"]
        return (rec.rt.plural, meta.get("namespace", ""), meta["name"]) in self._never_ready

    def _start_rollout(self, rec, old) -> None:
        spec, old_spec = rec.obj.get("spec", {}), (old or {}).get("spec", {})
        template_changed = old is None or spec.get("template") != old_spec.get("template")
        rec.rollout = Rollout(self._ready_after_for(rec), template_changed, copy.deepcopy(rec.obj.get("status", {})))
        if rec.rollout.pending <= 0:
            self._converge(rec)

    def _observe(self, rec) -> None:
        """A client read the workload: the simulated controllers make one step of progress."""
        ro = rec.rollout
        if ro is None:
            return
        if ro.stuck:
            if not self._is_never_ready(rec):
                self._converge(rec)
            return
        ro.pending -= 1
        if ro.pending <= 0:
            self._converge(rec)
        else:
            self._set_status(rec, self._progress_status(rec))

    def _set_status(self, rec, status) -> None:
        if rec.obj.get("status") != status:
            rec.obj["status"] = status
            rec.obj["metadata"]["resourceVersion"] = self._next_rv()

    def _converge(self, rec) -> None:
        from . import workloads
        kind = rec.rt.kind
        never = self._is_never_ready(rec)
        meta = rec.obj["metadata"]
        if kind == "Job":
            failing = (meta["namespace"], meta["name"]) in self._failing_jobs
            state = "running" if never else ("failed" if failing else "complete")
        else:
            state = "stuck" if never else "ready"
        workloads.converge(self, rec, state)
        if never:
            rec.rollout.stuck = True
        else:
            rec.rollout = None

    def _progress_status(self, rec) -> dict:
        from . import workloads
        return workloads.progress_status(self, rec)

    def _replace_deleted_pod(self, key) -> None:
        """A pod of a Deployment/StatefulSet that gets deleted is recreated by its (simulated) controller."""
        from . import workloads
        for kind in ("Deployment", "StatefulSet"):
            for rec in self._store[resources.by_kind(kind)].values():
                if key in rec.derived:
                    workloads.replace_pod(self, rec, key)
                    return

    # used by workloads/seed
    def _store_internal(self, obj: dict) -> dict:
        rt = resources.by_kind(obj["kind"], obj["apiVersion"])
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        meta["resourceVersion"] = self._next_rv()
        ns = meta.get("namespace", "") if rt.namespaced else ""
        self._store[rt][(ns, meta["name"])] = Record(rt, obj)
        return obj

    def _random_suffix(self, n: int = 5) -> str:
        return "".join(self._rand.choice(_SAFE) for _ in range(n))

    @staticmethod
    def _hash(obj: Any, n: int = 10) -> str:
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).digest()
        return "".join(_SAFE[b % len(_SAFE)] for b in digest[:n])

    def _pick_node(self) -> str | None:
        nodes = [rec.obj for rec in self._store[resources.by_kind("Node")].values()]
        ready = [n for n in nodes if not n.get("spec", {}).get("unschedulable") and any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in n.get("status", {}).get("conditions", []))]
        pool = sorted(n["metadata"]["name"] for n in (ready or nodes))
        if not pool:
            return None
        return pool[next(self._node_rr) % len(pool)]


__all__ = ["FakeApiServer", "RequestRecord", "ApiError"]
