"""The checks a phase playbook names, run against the cluster. Each returns a `gardenctl.model.Check`; a check that
cannot be evaluated (a backend did not answer) fails with the reason - never passes by default.

Drill history (``drill-passed``): gardenctl's drills append one JSON object per line to
``<state dir>/drill-history.jsonl`` (written by `gardenctl.ops.drill.history`). This reader needs only these fields
of a line and skips any line without them (or that is not JSON): ``context`` (str, the gardenctl context),
``playbook`` (str), ``started_at`` (ISO 8601 time; no time zone = UTC) and ``passed`` (bool); ``recovered: false``
also makes a run count as not passed. Extra fields are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from gardenctl.backends.kube import ObjectRef
from gardenctl.errors import GardenError
from gardenctl.model import Check, Severity
from gardenctl.ops.migrate.playbook import CheckSpec
from gardenctl.ops.migrate.rollout import rollout_state

if TYPE_CHECKING:  # pragma: no cover
    from gardenctl.backends.postgres import Endpoint
    from gardenctl.model import StatusReport

DRILL_HISTORY_FILE = "drill-history.jsonl"


class KubeReads(Protocol):
    def get(self, ref: ObjectRef) -> dict[str, Any] | None: ...

    def proxy_get(self, namespace: str, service: str, port: int | str, path: str) -> tuple[int, str]: ...


@dataclass
class CheckEnv:
    """What checks may use. Missing pieces are None with a reason, and the checks needing them fail saying so."""

    context: str
    namespace: str
    state_dir: Path
    now: datetime
    kube: KubeReads | None = None
    kube_problem: str | None = None
    postgres: Callable[[], "Endpoint"] | None = None
    status: Callable[[], "StatusReport"] | None = None
    http_timeout_seconds: float = 5.0
    http_get: Callable[[str, float], tuple[int, str]] | None = None
    _cache: dict[str, Any] = field(default_factory=dict)


def _http_get(url: str, timeout: float) -> tuple[int, str]:
    from gardenctl.backends.http import HttpSettings, make_client, request

    client = make_client(HttpSettings(timeout_seconds=timeout))
    try:
        response = request(client, "GET", url, what="http check", ok_statuses=tuple(range(100, 600)))
        return response.status_code, response.text[:2000]
    finally:
        client.close()


def _kube(env: CheckEnv) -> KubeReads:
    if env.kube is None:
        raise GardenError(f"the Kubernetes API is not available: {env.kube_problem or 'not configured'}")
    return env.kube


def _workload(kind: str, api_version: str) -> Callable[[CheckEnv, dict[str, Any]], tuple[bool, str]]:
    def run(env: CheckEnv, p: dict[str, Any]) -> tuple[bool, str]:
        ref = ObjectRef(api_version, kind, p.get("namespace") or env.namespace, p["object"])
        obj = _kube(env).get(ref)
        state = rollout_state(obj, ref)
        return state.done, f"{ref}: {state.message}"

    return run


def _get(env: CheckEnv, p: dict[str, Any], path: str) -> tuple[int, str, str]:
    if p.get("url"):
        url = p["url"].rstrip("/") + path
        getter = env.http_get or _http_get
        status, body = getter(url, env.http_timeout_seconds)
        return status, body, url
    ns = p.get("namespace") or env.namespace
    status, body = _kube(env).proxy_get(ns, p["service"], p["port"], path)
    return status, body, f"service {ns}/{p['service']}:{p['port']}{path} (API proxy)"


def _http_ok(env: CheckEnv, p: dict[str, Any]) -> tuple[bool, str]:
    status, body, where = _get(env, p, p.get("path") or "/")
    expected = p.get("expect_status") or ()
    ok = status in expected if expected else 200 <= status < 400
    snippet = " ".join(body.split())[:120]
    return ok, f"{where} answered HTTP {status}" + ("" if ok else f": {snippet}" if snippet else "")


def _s3_bucket(env: CheckEnv, p: dict[str, Any]) -> tuple[bool, str]:
    present, missing, odd = [], [], []
    for bucket in p["buckets"]:
        # Anonymous GET of a bucket: 404 NoSuchBucket when it does not exist; 403 AccessDenied (or 200) when it does.
        status, body, _ = _get(env, p, f"/{bucket}")
        if status in (200, 403):
            present.append(bucket)
        elif status == 404:
            missing.append(bucket)
        else:
            odd.append(f"{bucket}: HTTP {status} {' '.join(body.split())[:80]}")
    where = p.get("url") or f"service {p.get('namespace') or env.namespace}/{p['service']}:{p['port']}"
    if missing or odd:
        return False, f"S3 at {where}: " + "; ".join([*(f"bucket {b} missing" for b in missing), *odd])
    return True, f"S3 at {where} answers; bucket(s) {', '.join(present)} present"


def _cluster_healthy(env: CheckEnv, p: dict[str, Any]) -> tuple[bool, str]:
    if env.status is None:
        raise GardenError("cluster health cannot be collected here")
    report = env._cache.get("status")
    if report is None:
        report = env._cache["status"] = env.status()
    skip = p.get("skip_rules") or ()
    findings = [f for f in report.findings if not any(fnmatchcase(f.rule, pat) for pat in skip)]
    worst = Severity.worst(f.severity for f in findings)
    ok = worst is Severity.OK or (p.get("allow_warning") and worst is Severity.WARNING)
    if worst is Severity.OK:
        return True, f"every status rule OK ({len(findings)} findings)"
    bad = [f for f in findings if f.severity is not Severity.OK]
    text = "; ".join(f"{f.severity.value} {f.rule}: {f.message}" for f in bad[:3]) + (f"; +{len(bad) - 3} more" if len(bad) > 3 else "")
    return bool(ok), f"gardenctl check is {worst.value}: {text}"


def read_drill_runs(state_dir: Path, context: str) -> tuple[list[tuple[datetime, str, bool]], int]:
    """(started_at, playbook, passed) of this context's drills, and the number of lines skipped as unreadable."""
    path = Path(state_dir) / DRILL_HISTORY_FILE
    try:
        raw_lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise GardenError(f"cannot read the drill history {path}: {exc.strerror or exc}") from exc
    runs: list[tuple[datetime, str, bool]] = []
    bad = 0
    for raw in raw_lines:
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            started = datetime.fromisoformat(str(data["started_at"]).replace("Z", "+00:00"))
            if not isinstance(data.get("passed"), bool) or not isinstance(data.get("context"), str):
                raise ValueError("fields")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            bad += 1
            continue
        if data["context"] != context:
            continue
        started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
        passed = data["passed"] and data.get("recovered", True) is not False
        runs.append((started, str(data.get("playbook") or "?"), passed))
    return runs, bad


def _drill_passed(env: CheckEnv, p: dict[str, Any]) -> tuple[bool, str]:
    runs, bad = read_drill_runs(env.state_dir, env.context)
    pattern = p.get("playbook")
    if pattern:
        runs = [r for r in runs if fnmatchcase(r[1], pattern)]
    max_age = timedelta(days=float(p.get("max_age_days") or 7))
    since = env.now - max_age
    passed = sorted((r for r in runs if r[2]), key=lambda r: r[0])
    recent = [r for r in passed if r[0] >= since]
    note = f" ({bad} unreadable line(s) skipped)" if bad else ""
    what = f"drill{' ' + pattern if pattern else ''}"
    if recent:
        when, name, _ = recent[-1]
        return True, f"{what} passed {name} at {when.isoformat(timespec='seconds')}{note}"
    if passed:
        when, name, _ = passed[-1]
        age = (env.now - when).days
        return False, f"the last passed {what} ({name}) was {age} days ago, more than {max_age.days} days{note}; run `gardenctl drill run`"
    return False, f"no passed {what} on context {env.context} in {Path(env.state_dir) / DRILL_HISTORY_FILE}{note}; run `gardenctl drill run`"


def _postgres(env: CheckEnv) -> "Endpoint":
    if env.postgres is None:
        raise GardenError("PostgreSQL is not configured for this check")
    return env.postgres()


def _rls_enabled(env: CheckEnv, p: dict[str, Any]) -> tuple[bool, str]:
    from gardenctl import sql
    from gardenctl.ops.db_prepare import PgSession

    schemas, roles = list(p["schemas"]), list(p["roles"])
    with PgSession(_postgres(env), autocommit=True) as session:
        existing = [r[0] for r in session.run("SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s)", (roles,), what="looking up the API roles")]
        if not existing:
            return False, f"none of the API roles {', '.join(roles)} exist: run `gardenctl db prepare` first"
        rows = session.run(sql.load("rls_exposed_tables.sql"), {"schemas": schemas, "roles": roles}, what="listing the tables the API roles reach")
    off = [f"{r[0]}.{r[1]}" for r in rows if not r[2]]
    if off:
        shown = ", ".join(off[:8]) + (f" (+{len(off) - 8} more)" if len(off) > 8 else "")
        return False, f"row-level security is OFF on {len(off)} table(s) the API roles can reach: {shown} (ALTER TABLE ... ENABLE ROW LEVEL SECURITY)"
    return True, f"row-level security on for all {len(rows)} table(s) in {', '.join(schemas)} reachable by {', '.join(existing)}"


def _db_prepared(env: CheckEnv, p: dict[str, Any]) -> tuple[bool, str]:
    from gardenctl.ops.db_prepare import inspect_prepared

    items, vector = inspect_prepared(_postgres(env))
    missing = [f"{i.kind} {i.name}" for i in items if not i.ok]
    if p.get("require_vector") and not vector.installed:
        missing.append("extension vector")
    if missing:
        return False, f"{len(missing)} item(s) missing: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}; run `gardenctl db prepare`"
    return True, f"all {len(items)} items present" + (" (pgvector installed)" if vector.installed else "")


RUNNERS: dict[str, Callable[[CheckEnv, dict[str, Any]], tuple[bool, str]]] = {
    "cluster-healthy": _cluster_healthy,
    "drill-passed": _drill_passed,
    "deployment-ready": _workload("Deployment", "apps/v1"),
    "statefulset-ready": _workload("StatefulSet", "apps/v1"),
    "job-complete": _workload("Job", "batch/v1"),
    "http-ok": _http_ok,
    "rls-enabled": _rls_enabled,
    "s3-bucket": _s3_bucket,
    "db-prepared": _db_prepared,
}


def run_check(env: CheckEnv, spec: CheckSpec) -> Check:
    """Run one check. A backend that cannot answer makes it fail with the reason."""
    try:
        ok, detail = RUNNERS[spec.kind](env, spec.params)
    except GardenError as exc:
        ok, detail = False, f"could not check: {exc.message}"
    return Check(name=spec.name, ok=ok, detail=detail, overridable=spec.overridable)


def run_checks(env: CheckEnv, specs: tuple[CheckSpec, ...], progress: Callable[[str], None] = lambda _m: None) -> tuple[Check, ...]:
    out = []
    for spec in specs:
        progress(f"  check {spec.name} ...")
        out.append(run_check(env, spec))
    return tuple(out)
