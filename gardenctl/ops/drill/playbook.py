"""Drill playbooks: YAML data, validated on load with errors naming the file, the line and the key.

A playbook is a list of steps and a set of thresholds::

    name: kill-leader                 # must match the file name (kill-leader.yaml)
    summary: SIGKILL the leader's Patroni and PostgreSQL, as if its machine lost power
    description: |                    # optional, free text for the report
      ...
    probe:                            # optional
      rate: 20                        # numbered inserts per second through HAProxy's read-write port
      read: true                      # also probe the read-only port
      baseline-seconds: 2             # writes must flow this long before the first fault
      settle-seconds: 3               # keep probing this long after the last step
      attempt-timeout-seconds: 1.0    # statement_timeout of each probe query (the watchdog adds 2 s)
    patroni-config:                   # optional: PATCH /config before the drill, restored afterwards
      failsafe_mode: true
    steps:
      - fault: kill                   # kill (SIGKILL) | stop (graceful) | start
        roles: [patroni, postgres]    # patroni | postgres | etcd | haproxy
        target: leader                # see TARGETS
      - switchover: auto              # POST /switchover; auto lets Patroni choose, or name a member
      - wait: new-leader              # see CONDITIONS
        timeout-seconds: 60
      - hold: ttl + 5                 # keep the faults in place and observe (seconds, or ttl + N)
      - recover: all                  # start everything the faults stopped
    thresholds:                       # each: a number, "ttl + N", null (reported, not judged),
      max-write-unavailable-seconds: ttl + 4        # or {sync: N, async: M} (one value per replication mode)
      max-acked-writes-lost: {sync: 0, async: null}

Only data: no code runs from a playbook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gardenctl.errors import ConfigError, UsageError

ROLES = ("patroni", "postgres", "etcd", "haproxy")
ACTIONS = ("kill", "stop", "start")
PATRONI_TARGETS = ("leader", "replica", "sync-standby", "async-replica")
ETCD_TARGETS = ("etcd-leader", "etcd-follower", "etcd-member")
TARGETS = (*PATRONI_TARGETS, *ETCD_TARGETS, "haproxy")
CONDITIONS = {
    "new-leader": "a member other than the leader at the start runs as leader",
    "routed": "HAProxy's read-write backend has exactly one server UP and it is the Patroni leader",
    "healthy": "etcd all healthy, one leader, every replica streaming on its timeline, HAProxy routed to the leader",
    "writes-ok": "the write probe's last attempts succeeded",
}
STEP_KINDS = ("fault", "switchover", "wait", "hold", "recover")
_TTL_RE = re.compile(r"^\s*ttl\s*(?:\+\s*(\d+(?:\.\d+)?)\s*)?$")

# threshold key -> (figure name, unit, help)
THRESHOLDS: dict[str, tuple[str, str, str]] = {
    "max-write-unavailable-seconds": ("write_unavailable_seconds", "s", "longest gap between acknowledged writes"),
    "max-write-unavailable-total-seconds": ("write_unavailable_total_seconds", "s", "sum of all write outages"),
    "max-read-unavailable-seconds": ("read_unavailable_seconds", "s", "longest gap between successful reads"),
    "max-acked-writes-lost": ("acked_writes_lost", "rows", "acknowledged writes missing on the primary after recovery"),
    "max-seconds-to-new-leader": ("seconds_to_new_leader", "s", "from the fault to a new leader running in Patroni"),
    "max-seconds-to-routed": ("seconds_to_routed", "s", "from the fault to HAProxy routing writes to the new leader"),
    "max-writes-misrouted": ("writes_misrouted", "", "writes refused read-only: HAProxy sent them to a server that was not a writable primary"),
    "max-leader-changes": ("leader_changes", "", "leader changes seen in Patroni"),
    "max-split-brain": ("split_brain", "", "pieces of evidence that two servers accepted writes at once"),
    "max-concurrent-primaries": ("concurrent_primaries", "", "members claiming the primary role at the same moment"),
}


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    rate: float = 20.0
    read: bool = True
    baseline_seconds: float = 2.0
    settle_seconds: float = 3.0
    attempt_timeout_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # fault | switchover | wait | hold | recover
    line: int
    action: str | None = None  # fault: kill | stop | start
    roles: tuple[str, ...] = ()
    target: str | None = None  # fault target selector, or a member name
    count: int = 1
    condition: str | None = None  # wait
    timeout_seconds: float = 60.0
    hold: "Limit | None" = None  # hold: seconds, or ttl + N
    candidate: str | None = None  # switchover: None = Patroni chooses
    label: str | None = None

    @property
    def disruptive(self) -> bool:
        return self.kind == "switchover" or (self.kind == "fault" and self.action in ("kill", "stop"))

    def describe(self) -> str:
        if self.label:
            return self.label
        if self.kind == "fault":
            verb = {"kill": "SIGKILL", "stop": "stop", "start": "start"}[self.action or "kill"]
            count = f"{self.count} x " if self.count > 1 else ""
            return f"{verb} {'+'.join(self.roles)} on {count}{self.target}"
        if self.kind == "switchover":
            return f"switchover to {self.candidate}" if self.candidate else "switchover (Patroni chooses the candidate)"
        if self.kind == "wait":
            return f"wait for {self.condition} (up to {self.timeout_seconds:g}s)"
        if self.kind == "hold":
            return f"hold {self.hold} s and observe"
        return "recover: start everything the drill stopped"


@dataclass(frozen=True, slots=True)
class Limit:
    """A threshold value: a number, or ``ttl + N`` (Patroni's ttl from the cluster's dynamic config)."""

    value: float
    plus_ttl: bool = False

    def resolve(self, ttl_seconds: int | None) -> float:
        return self.value + (float(ttl_seconds if ttl_seconds is not None else 30) if self.plus_ttl else 0.0)

    def __str__(self) -> str:
        if self.plus_ttl:
            return "ttl" + (f" + {self.value:g}" if self.value else "")
        return f"{self.value:g}"


@dataclass(frozen=True, slots=True)
class Threshold:
    key: str
    figure: str
    unit: str
    sync: Limit | None
    async_: Limit | None

    def limit(self, synchronous_mode: bool, ttl_seconds: int | None = None) -> float | None:
        spec = self.sync if synchronous_mode else self.async_
        return None if spec is None else spec.resolve(ttl_seconds)

    def spec(self, synchronous_mode: bool) -> Limit | None:
        return self.sync if synchronous_mode else self.async_


@dataclass(frozen=True, slots=True)
class Playbook:
    name: str
    summary: str
    path: str
    steps: tuple[Step, ...]
    thresholds: tuple[Threshold, ...]
    description: str = ""
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    patroni_config: dict[str, Any] = field(default_factory=dict)

    def threshold(self, figure: str) -> Threshold | None:
        return next((t for t in self.thresholds if t.figure == figure), None)

    @property
    def disruptive_roles(self) -> frozenset[str]:
        return frozenset(r for s in self.steps if s.kind == "fault" for r in s.roles) | (
            {"patroni"} if any(s.kind == "switchover" for s in self.steps) else set()
        )


@dataclass(frozen=True, slots=True)
class PlaybookEntry:
    name: str
    summary: str
    path: str
    source: str  # builtin | user | file
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PlaybookList:
    __kind__ = "DrillPlaybookList"
    directories: tuple[str, ...]
    playbooks: tuple[PlaybookEntry, ...]


# ------------------------------------------------------------------------------------------------ discovery


def builtin_playbook_dirs() -> tuple[Path, ...]:
    """Where the shipped playbooks are: package data (an installed wheel), then the source tree (editable install)."""
    package = Path(__file__).resolve().parents[2]  # .../gardenctl
    candidates = (package / "data" / "playbooks" / "drills", package.parent / "playbooks" / "drills")
    return tuple(p for p in candidates if p.is_dir())


def find_playbooks(dirs: tuple[tuple[Path, str], ...]) -> dict[str, tuple[Path, str]]:
    """name -> (path, source). Later directories shadow earlier ones (a user playbook overrides a shipped one)."""
    found: dict[str, tuple[Path, str]] = {}
    for directory, source in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
            found[path.stem] = (path, source)
    return found


def list_playbooks(dirs: tuple[tuple[Path, str], ...]) -> PlaybookList:
    entries = []
    for name, (path, source) in sorted(find_playbooks(dirs).items()):
        try:
            pb = load_playbook(path)
            entries.append(PlaybookEntry(name=name, summary=pb.summary, path=str(path), source=source))
        except ConfigError as exc:
            entries.append(PlaybookEntry(name=name, summary="", path=str(path), source=source, error=exc.message))
    return PlaybookList(directories=tuple(str(d) for d, _ in dirs if d.is_dir()), playbooks=tuple(entries))


def resolve_playbook(name: str | None, file: Path | None, dirs: tuple[tuple[Path, str], ...]) -> Playbook:
    """The playbook named ``name`` in ``dirs``, or the one in ``file``."""
    if file is not None:
        return load_playbook(file, check_name=False)
    if not name:
        raise UsageError("name a playbook (gardenctl drill list shows them) or pass --playbook FILE")
    found = find_playbooks(dirs)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"no drill playbook named {name!r} (known: {known})", hint="gardenctl drill list")
    return load_playbook(found[name][0])


# ------------------------------------------------------------------------------------------------ validation


def load_playbook(path: Path, *, check_name: bool = True) -> Playbook:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: playbook file not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory, not a playbook file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read playbook: {getattr(exc, 'strerror', None) or exc}") from exc
    return parse_playbook(text, str(path), expected_name=path.stem if check_name else None)


def parse_playbook(text: str, source: str, expected_name: str | None = None) -> Playbook:
    from gardenctl.config import Section, load_yaml_with_lines

    data = load_yaml_with_lines(text, source)
    if data is None:
        raise ConfigError(f"{source}: the playbook is empty")
    top = Section(data, "", source, 1)
    name = top.get("name", str, required=True)
    if expected_name is not None and name != expected_name:
        raise top.error(f"{name!r} does not match the file name {expected_name!r}", top.key_line("name"), "name")
    summary = top.get("summary", str, required=True).strip()
    description = (top.get("description", str, "") or "").strip()

    pr = top.section("probe")
    d = ProbeSettings()
    probe = ProbeSettings(
        rate=_positive(pr, "rate", d.rate, upper=200.0),
        read=pr.get("read", bool, d.read),
        baseline_seconds=_non_negative(pr, "baseline-seconds", d.baseline_seconds),
        settle_seconds=_non_negative(pr, "settle-seconds", d.settle_seconds),
        attempt_timeout_seconds=_positive(pr, "attempt-timeout-seconds", d.attempt_timeout_seconds, upper=30.0),
    )
    pr.reject_unknown()

    pc = top.section("patroni-config")
    patroni_config: dict[str, Any] = {}
    for key in list(pc.data):
        value = pc.raw(key)
        if isinstance(value, (dict, list)):
            raise pc.error("only plain values (true/false, numbers, strings) can be set here", pc.key_line(key), key)
        patroni_config[key] = value
    if "pause" in patroni_config:
        raise pc.error("a drill never pauses the cluster", pc.key_line("pause"), "pause")

    raw_steps = top.get("steps", list, required=True)
    if not raw_steps:
        raise top.error("needs at least one step", top.key_line("steps"), "steps")
    steps = tuple(_step(item, i, raw_steps, source) for i, item in enumerate(raw_steps))
    if not any(s.disruptive for s in steps):
        raise top.error("no step breaks anything (add a fault: kill|stop or a switchover step)", top.key_line("steps"), "steps")

    th = top.section("thresholds")
    thresholds = []
    for key in list(th.data):
        if key not in THRESHOLDS:
            known = ", ".join(THRESHOLDS)
            raise th.error(f"unknown threshold (known: {known})", th.key_line(key), key)
        figure, unit, _ = THRESHOLDS[key]
        sync, async_ = _threshold_value(th, key)
        thresholds.append(Threshold(key=key, figure=figure, unit=unit, sync=sync, async_=async_))
    top.reject_unknown()
    return Playbook(
        name=name,
        summary=summary,
        description=description,
        path=source,
        steps=steps,
        thresholds=tuple(thresholds),
        probe=probe,
        patroni_config=patroni_config,
    )


def _positive(sec: Any, key: str, default: float, *, upper: float | None = None) -> float:
    value = sec.get(key, float, default)
    if value <= 0:
        raise sec.error("must be greater than 0", sec.key_line(key), key)
    if upper is not None and value > upper:
        raise sec.error(f"must be at most {upper:g}", sec.key_line(key), key)
    return float(value)


def _non_negative(sec: Any, key: str, default: float) -> float:
    value = sec.get(key, float, default)
    if value < 0:
        raise sec.error("must not be negative", sec.key_line(key), key)
    return float(value)


def _threshold_value(th: Any, key: str) -> tuple[Limit | None, Limit | None]:
    from gardenctl.config import Section

    raw = th.raw(key)
    if raw is None:
        return None, None
    if isinstance(raw, dict):
        sub = Section(raw, f"{th.path}.{key}", th.source, th.key_line(key))
        sync = _limit(sub, "sync")
        async_ = _limit(sub, "async")
        sub.reject_unknown()
        if "sync" not in raw or "async" not in raw:
            raise th.error("a per-mode threshold needs both sync and async (null means: reported, not judged)", th.key_line(key), key)
        return sync, async_
    value = _limit(th, key)
    return value, value


def _limit(sec: Any, key: str) -> Limit | None:
    raw = sec.raw(key)
    if raw is None:
        return None
    if isinstance(raw, str):
        match = _TTL_RE.match(raw)
        if not match:
            raise sec.error(f"{raw!r}: expected a number, 'ttl', 'ttl + N', null, or {{sync: N, async: M}}", sec.key_line(key), key)
        return Limit(float(match.group(1) or 0), plus_ttl=True)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise sec.error("expected a number, 'ttl + N', null, or {sync: N, async: M}", sec.key_line(key), key)
    if raw < 0:
        raise sec.error("must not be negative", sec.key_line(key), key)
    return Limit(float(raw))


def _step(item: Any, index: int, raw_steps: Any, source: str) -> Step:
    from gardenctl.config import Section

    path = f"steps[{index}]"
    line = getattr(raw_steps, "line", 0)
    if not isinstance(item, dict):
        raise ConfigError(f"{source}:{line}: {path}: expected a mapping like '- fault: kill', got {_kind(item)}")
    sec = Section(item, path, source, getattr(item, "line", line))
    kinds = [k for k in STEP_KINDS if k in item]
    if len(kinds) != 1:
        what = "no step kind" if not kinds else f"more than one step kind ({', '.join(kinds)})"
        raise sec.error(f"{what}: each step has exactly one of {', '.join(STEP_KINDS)}", sec.line)
    kind = kinds[0]
    label = sec.get("label", str)
    kline = sec.key_line(kind)
    if kind == "fault":
        action = sec.get("fault", str)
        if action not in ACTIONS:
            raise sec.error(f"unknown action {action!r} (expected one of: {', '.join(ACTIONS)})", kline, "fault")
        roles = _roles(sec)
        target = sec.get("target", str, required=True)
        count = sec.get("count", int, 1)
        if count < 1:
            raise sec.error("must be at least 1", sec.key_line("count"), "count")
        _check_target(sec, roles, target, count)
        step = Step(kind="fault", line=kline, action=action, roles=roles, target=target, count=count, label=label)
    elif kind == "switchover":
        value = sec.get("switchover", str, "auto")
        step = Step(kind="switchover", line=kline, candidate=None if value == "auto" else value, label=label)
    elif kind == "wait":
        condition = sec.get("wait", str)
        if condition not in CONDITIONS:
            raise sec.error(f"unknown condition {condition!r} (expected one of: {', '.join(CONDITIONS)})", kline, "wait")
        timeout = _positive(sec, "timeout-seconds", 60.0, upper=3600.0)
        step = Step(kind="wait", line=kline, condition=condition, timeout_seconds=timeout, label=label)
    elif kind == "hold":
        raw = sec.raw("hold")
        if isinstance(raw, str) and _TTL_RE.match(raw):
            hold = Limit(float(_TTL_RE.match(raw).group(1) or 0), plus_ttl=True)  # type: ignore[union-attr]
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
            hold = Limit(float(raw))
        else:
            raise sec.error("expected the seconds to hold (greater than 0) or 'ttl + N'", kline, "hold")
        step = Step(kind="hold", line=kline, hold=hold, label=label)
    else:
        value = sec.get("recover", str)
        if value != "all":
            raise sec.error(f"unknown recover value {value!r} (expected: all)", kline, "recover")
        step = Step(kind="recover", line=kline, label=label)
    sec.reject_unknown()
    return step


def _roles(sec: Any) -> tuple[str, ...]:
    if sec.has("role") and sec.has("roles"):
        raise sec.error("set role or roles, not both", sec.key_line("roles"))
    if sec.has("role"):
        roles: tuple[str, ...] = (sec.get("role", str),)
        key = "role"
    else:
        roles = sec.get_str_list("roles", required=True)
        key = "roles"
    if not roles:
        raise sec.error("needs at least one role", sec.key_line(key), key)
    for role in roles:
        if role not in ROLES:
            raise sec.error(f"unknown role {role!r} (expected: {', '.join(ROLES)})", sec.key_line(key), key)
    if len(set(roles)) != len(roles):
        raise sec.error("lists a role twice", sec.key_line(key), key)
    kinds = {"etcd" if r == "etcd" else "haproxy" if r == "haproxy" else "patroni" for r in roles}
    if len(kinds) > 1:
        raise sec.error("patroni/postgres, etcd and haproxy live on different targets: use one step for each", sec.key_line(key), key)
    return roles


def _check_target(sec: Any, roles: tuple[str, ...], target: str, count: int) -> None:
    line = sec.key_line("target")
    if roles[0] == "etcd":
        allowed = ETCD_TARGETS
    elif roles[0] == "haproxy":
        allowed = ("haproxy",)
    else:
        allowed = PATRONI_TARGETS
    if target in TARGETS and target not in allowed:
        raise sec.error(f"{target!r} is not a target for {'+'.join(roles)} (expected: {', '.join(allowed)} or a member name)", line, "target")
    if target not in TARGETS and not target.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise sec.error(f"{target!r} is neither a target ({', '.join(allowed)}) nor a member name", line, "target")
    if count > 1 and target in ("leader", "haproxy"):
        raise sec.error(f"count {count} makes no sense for target {target!r}", sec.key_line("count"), "count")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    return type(value).__name__
