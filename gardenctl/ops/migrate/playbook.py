"""Phase playbooks: what must hold before a phase is applied (``preflight``) and after (``post-checks``).

One YAML file per phase, ``playbooks/phases/phase-N.yaml`` (or ``--playbooks DIR``). Data, validated on load: an
unknown key, a wrong type or an unknown check names the file, the line and the key path::

    phase: 2
    title: FastAPI serves /rest/v1; PostgREST removed
    rollout-timeout-seconds: 300          # optional, default 300: waiting for every workload of the phase
    preflight:
      - check: cluster-healthy            # `gardenctl check` is OK (allow-warning: true accepts WARNING)
      - check: drill-passed               # a drill passed within max-age-days (default 7)
        max-age-days: 7
      - check: deployment-ready
        deployment: fastapi
      - check: http-ok                    # through the API server's service proxy, or url: https://...
        service: fastapi
        port: 8000
        path: /health/ready
      - check: rls-enabled                # every table the API roles can reach has row-level security on
        schemas: [public]
    post-checks:
      - check: deployment-ready
        deployment: kong

Every check takes ``name:`` (a label; default: the check kind and its target) and ``overridable: true`` (``--force``
may then go ahead when it fails; default false).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gardenctl.config import Section, load_yaml_with_lines
from gardenctl.errors import ConfigError

DEFAULT_ROLLOUT_TIMEOUT_SECONDS = 300.0


def _positive_number(sec: Section, key: str) -> float | None:
    value = sec.get(key, float)
    if value is not None and value <= 0:
        raise sec.error("must be a positive number", sec.key_line(key), key)
    return value


def _port(sec: Section, key: str = "port") -> int | str | None:
    value = sec.get(key, (int, str))
    if isinstance(value, int) and not 0 < value < 65536:
        raise sec.error("must be a port number (1-65535) or a port name", sec.key_line(key), key)
    return value


def _statuses(sec: Section) -> tuple[int, ...]:
    raw = sec.get("expect-status", (list, int))
    if raw is None:
        return ()
    items = [raw] if isinstance(raw, int) else list(raw)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
            raise sec.error(f"expected HTTP status codes (100-599), got {item!r}", sec.key_line("expect-status"), "expect-status")
    return tuple(items)


def _target(sec: Section, *, what: str) -> dict[str, Any]:
    """``url:`` or ``service:`` + ``port:`` (+ ``namespace:``), exactly one of them."""
    url = sec.get("url", str)
    service = sec.get("service", str)
    port = _port(sec)
    namespace = sec.get("namespace", str)
    if url and service:
        raise sec.error(f"{what}: give url or service, not both", sec.key_line("url"))
    if not url and not service:
        raise sec.error(f"{what}: needs url (http(s)://...) or service + port (reached through the API server's proxy)", sec.line)
    if url and not url.startswith(("http://", "https://")):
        raise sec.error("expected an http:// or https:// URL", sec.key_line("url"), "url")
    if service and port is None:
        raise sec.error(f"{what}: service needs a port", sec.key_line("service"), "port")
    return {"url": url, "service": service, "port": port, "namespace": namespace}


# kind -> (parser of its keys, description for errors and help)
def _p_cluster_healthy(sec: Section) -> dict[str, Any]:
    return {"allow_warning": sec.get("allow-warning", bool, False), "skip_rules": sec.get_str_list("skip-rules")}


def _p_drill(sec: Section) -> dict[str, Any]:
    return {"max_age_days": _positive_number(sec, "max-age-days") or 7.0, "playbook": sec.get("playbook", str)}


def _p_workload(key: str) -> Callable[[Section], dict[str, Any]]:
    def parse(sec: Section) -> dict[str, Any]:
        return {"object": sec.get(key, str, required=True), "namespace": sec.get("namespace", str)}

    return parse


def _p_http(sec: Section) -> dict[str, Any]:
    out = _target(sec, what="http-ok")
    path = sec.get("path", str, "/")
    out.update({"path": path if path.startswith("/") else "/" + path, "expect_status": _statuses(sec)})
    return out


def _p_rls(sec: Section) -> dict[str, Any]:
    return {"schemas": sec.get_str_list("schemas") or ("public",), "roles": sec.get_str_list("roles") or ("anon", "authenticated")}


def _p_s3(sec: Section) -> dict[str, Any]:
    out = _target(sec, what="s3-bucket")
    buckets = sec.get_str_list("buckets")
    single = sec.get("bucket", str)
    if single:
        buckets = (single, *buckets)
    if not buckets:
        raise sec.error("s3-bucket: needs bucket: NAME (or buckets: [..])", sec.line)
    out["buckets"] = buckets
    return out


def _p_db_prepared(sec: Section) -> dict[str, Any]:
    return {"require_vector": sec.get("require-vector", bool, False)}


CHECK_KINDS: dict[str, tuple[Callable[[Section], dict[str, Any]], str]] = {
    "cluster-healthy": (_p_cluster_healthy, "every status/check rule is OK (allow-warning, skip-rules)"),
    "drill-passed": (_p_drill, "a drill passed on this context within max-age-days (playbook: a name or glob)"),
    "deployment-ready": (_p_workload("deployment"), "a Deployment has all replicas updated and available (deployment, namespace)"),
    "statefulset-ready": (_p_workload("statefulset"), "a StatefulSet has all replicas updated and ready (statefulset, namespace)"),
    "job-complete": (_p_workload("job"), "a Job completed (job, namespace)"),
    "http-ok": (_p_http, "an HTTP GET answers (url, or service + port via the API proxy; path; expect-status)"),
    "rls-enabled": (_p_rls, "every table the API roles can reach in the schemas has row-level security on"),
    "s3-bucket": (_p_s3, "an S3 endpoint answers and the buckets exist (url or service + port; bucket / buckets)"),
    "db-prepared": (_p_db_prepared, "`gardenctl db prepare` has run: roles, schemas, publication (require-vector)"),
}


@dataclass(frozen=True, slots=True)
class CheckSpec:
    kind: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    overridable: bool = False
    where: str = ""  # file:line, for messages


@dataclass(frozen=True, slots=True)
class PhasePlaybook:
    phase: int
    title: str
    source: str
    description: str | None = None
    preflight: tuple[CheckSpec, ...] = ()
    post_checks: tuple[CheckSpec, ...] = ()
    rollout_timeout_seconds: float = DEFAULT_ROLLOUT_TIMEOUT_SECONDS


def _default_name(kind: str, params: dict[str, Any]) -> str:
    target = params.get("object") or params.get("service") or params.get("url")
    if kind == "s3-bucket":
        target = ", ".join(params.get("buckets") or ())
    if kind == "rls-enabled":
        target = ", ".join(params.get("schemas") or ())
    return f"{kind} {target}" if target else kind


def _checks(top: Section, key: str) -> tuple[CheckSpec, ...]:
    raw = top.get(key, list)
    if raw is None:
        return ()
    out = []
    for i, item in enumerate(raw):
        line = getattr(item, "line", top.key_line(key))
        sec = Section(item, f"{key}[{i + 1}]", top.source, line)
        kind = sec.get("check", str, required=True)
        if kind not in CHECK_KINDS:
            known = ", ".join(CHECK_KINDS)
            raise sec.error(f"unknown check {kind!r} (known: {known})", sec.key_line("check"), "check")
        parser, _ = CHECK_KINDS[kind]
        label = sec.get("name", str)
        overridable = sec.get("overridable", bool, False)
        params = parser(sec)
        sec.reject_unknown()
        out.append(CheckSpec(kind=kind, name=label or _default_name(kind, params), params=params, overridable=overridable, where=f"{top.source}:{line}"))
    return tuple(out)


def parse_phase_playbook(text: str, source: str, *, expected_phase: int | None = None) -> PhasePlaybook:
    """Validate a playbook; every problem is one `ConfigError` naming ``source``, the line and the key."""
    data = load_yaml_with_lines(text, source)
    top = Section(data, "", source, 1)
    phase = top.get("phase", int, required=True)
    if phase < 1:
        raise top.error("must be 1 or more", top.key_line("phase"), "phase")
    if expected_phase is not None and phase != expected_phase:
        raise top.error(f"says phase {phase}, but the file is the playbook of phase {expected_phase}", top.key_line("phase"), "phase")
    title = top.get("title", str, required=True)
    description = top.get("description", str)
    timeout = _positive_number(top, "rollout-timeout-seconds") or DEFAULT_ROLLOUT_TIMEOUT_SECONDS
    playbook = PhasePlaybook(
        phase=phase,
        title=title,
        source=source,
        description=description,
        preflight=_checks(top, "preflight"),
        post_checks=_checks(top, "post-checks"),
        rollout_timeout_seconds=timeout,
    )
    top.reject_unknown()
    return playbook


def default_playbook_dirs() -> tuple[Path, ...]:
    package = Path(__file__).resolve().parents[2]  # .../gardenctl
    return (package / "data" / "playbooks" / "phases", package.parent / "playbooks" / "phases")


def find_playbook_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise ConfigError(f"--playbooks {path}: not a directory")
        return path
    for path in default_playbook_dirs():
        if path.is_dir():
            return path
    tried = ", ".join(str(p) for p in default_playbook_dirs())
    raise ConfigError(f"no phase playbooks directory found (tried {tried})", hint="pass --playbooks DIR")


def load_phase_playbook(directory: Path, phase: int) -> PhasePlaybook:
    """``phase-N.yaml`` (or ``.yml``) from ``directory``. Raises `ConfigError` when it is missing or invalid."""
    for name in (f"phase-{phase}.yaml", f"phase-{phase}.yml"):
        path = directory / name
        if path.is_file():
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
            return parse_phase_playbook(text, str(path), expected_phase=phase)
    raise ConfigError(f"no playbook for phase {phase} in {directory} (expected phase-{phase}.yaml)", hint="every phase needs its preflight / post-check playbook")
