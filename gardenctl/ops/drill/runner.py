"""Run a drill: preflight, probes and watchers, the playbook's steps, recovery, measurement.

`plan_drill` reads the cluster and builds a `DrillPlan` (nothing changes). `run_drill` executes one iteration and
returns a `DrillRun` whatever happened: a step that fails or times out ends the steps early (``aborted``), and
recovery always runs. Recovery restarts everything the drill stopped, restores the Patroni settings it changed, and
waits for full health: etcd all healthy, one leader running, every other member streaming on the leader's timeline,
HAProxy routing writes to the leader. ``recovered`` False means the cluster was left unhealthy, and says why.

Nothing here prints: step-by-step lines go to ``progress``, a one-line live status to ``status`` (twice a second).
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from gardenctl.errors import BackendUnreachable, GardenError, OperationFailed, OperationTimeout
from gardenctl.model import Check, EtcdCluster, PatroniCluster
from gardenctl.ops.drill import measure
from gardenctl.ops.drill.faults import Ledger, recover
from gardenctl.ops.drill.playbook import TARGETS, Playbook, Step
from gardenctl.ops.drill.probes import (
    HAProxyWatcher,
    PatroniWatcher,
    SqlProbe,
    delete_probe_rows,
    ensure_probe_table,
    read_probe_ids,
)
from gardenctl.ops.drill.result import INTERRUPTED, DrillEvent, DrillPlan, DrillRun, Figure
from gardenctl.ops.member_state import own_state_problems
from gardenctl.wait import REAL_CLOCK, Clock, wait_until

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DrillOptions:
    rate: float | None = None  # overrides the playbook's probe rate
    force: bool = False
    failsafe: bool | None = None  # overrides/sets failsafe_mode for the drill (restored afterwards)
    recovery_timeout_seconds: float = 180.0


def _nothing(_msg: str) -> None:
    return None


# ------------------------------------------------------------------------------------------------ health


def health_problems(
    adapters: Any, expected_members: tuple[str, ...] = (), *, synchronous_mode: bool = False
) -> tuple[list[str], PatroniCluster | None]:
    """What stands between the cluster and full health; empty when healthy. ``expected_members``: the Patroni members
    that must be there (a killed member's key expires after ttl, and it is missing until it registers again). With
    ``synchronous_mode`` a synchronous standby must be named again (else the next switchover has no candidate)."""
    problems: list[str] = []
    cluster: PatroniCluster | None = None
    try:
        cluster = adapters.patroni.get_cluster(with_config=False)
    except GardenError as exc:
        return [exc.message], None
    missing = [name for name in expected_members if cluster.member(name) is None]
    if missing:
        problems.append(f"member(s) not registered in Patroni: {', '.join(missing)}")
    if synchronous_mode and not cluster.sync_standbys:
        problems.append("synchronous_mode is on but no member is a synchronous standby (yet)")
    leader = cluster.leader
    if cluster.paused:
        problems.append("maintenance mode is on (paused)")
    if leader is None:
        leaders = [m.name for m in cluster.leaders]
        problems.append(f"{'no leader' if not leaders else 'more than one leader: ' + ', '.join(leaders)}")
    elif leader.state != "running":
        problems.append(f"leader {leader.name} is {leader.state}")
    for m in cluster.members:
        if leader is not None and m.name == leader.name:
            continue
        if not m.is_streaming:
            problems.append(f"{m.name} is {m.role}/{m.state}, not streaming")
        elif leader is not None and leader.timeline is not None and m.timeline != leader.timeline:
            problems.append(f"{m.name} is on timeline {m.timeline}, the leader on {leader.timeline}")
    problems += own_state_problems(adapters.patroni, cluster)
    try:
        etcd: EtcdCluster = adapters.etcd.get_cluster()
        bad = [m.display_name for m in etcd.voters if not m.healthy]
        if bad:
            problems.append(f"etcd member(s) not healthy: {', '.join(bad)}")
    except GardenError as exc:
        problems.append(exc.message)
    try:
        state = adapters.haproxy.get_state()
        target = state.rw_target
        if leader is not None and target != leader.name:
            up = ", ".join(s.name for s in state.rw_up) or "none"
            problems.append(f"HAProxy read-write routes to {up}, not to the leader {leader.name}")
    except GardenError as exc:
        problems.append(exc.message)
    return problems, cluster


def resolve_target(step: Step, cluster: PatroniCluster | None, etcd: EtcdCluster | None, target: Any) -> list[str]:
    """The node names a fault step hits now. Raises OperationFailed when there are not enough."""
    sel = step.target or ""
    role = step.roles[0]
    names: list[str]
    if role in ("patroni", "postgres"):
        if cluster is None:
            raise OperationFailed("cannot pick a Patroni member: Patroni did not answer")
        leader = cluster.leader
        streaming = [m for m in cluster.members if m.is_streaming]
        if sel == "leader":
            names = [leader.name] if leader else []
        elif sel == "replica":
            names = [m.name for m in sorted(streaming, key=lambda m: (not m.is_sync_standby, m.name))]
        elif sel == "sync-standby":
            names = [m.name for m in streaming if m.is_sync_standby]
        elif sel == "async-replica":
            names = [m.name for m in streaming if not m.is_sync_standby]
        else:
            names = [sel] if cluster.member(sel) else []
    elif role == "etcd":
        if etcd is None:
            raise OperationFailed("cannot pick an etcd member: etcd did not answer")
        healthy = [m for m in etcd.voters if m.healthy and m.name]
        if sel == "etcd-leader":
            names = [m.name for m in healthy if m.is_leader]  # type: ignore[misc]
        elif sel == "etcd-follower":
            names = sorted(m.name for m in healthy if not m.is_leader)  # type: ignore[misc]
        elif sel == "etcd-member":
            names = sorted(m.name for m in healthy)  # type: ignore[misc]
        else:
            names = [sel] if any(m.name == sel for m in etcd.members) else []
    else:
        names = list(target.nodes("haproxy")) if sel == "haproxy" else ([sel] if sel in target.nodes("haproxy") else [])
    if len(names) < step.count:
        have = f"only {len(names)}" if names else "none"
        raise OperationFailed(f"step `{step.describe()}`: needs {step.count} {sel}, {have} available now")
    known = set(target.nodes(role))
    missing = [n for n in names[: step.count] if n not in known]
    if missing:
        raise OperationFailed(f"the fault target does not know {', '.join(missing)} (it knows: {', '.join(sorted(known))})")
    return names[: step.count]


# ------------------------------------------------------------------------------------------------ plan


def plan_drill(playbook: Playbook, adapters: Any, options: DrillOptions = DrillOptions(), *, repeat: int = 1) -> DrillPlan:
    """Preflight: read everything, change nothing."""
    checks: list[Check] = []
    cluster: PatroniCluster | None = None
    try:
        cluster = adapters.patroni.get_cluster(with_config=True)
        checks.append(Check("patroni", True, f"answered ({len(cluster.members)} members)"))
    except BackendUnreachable:
        raise  # nothing to plan without Patroni: the same error (and exit code) as switchover's
    except GardenError as exc:
        checks.append(Check("patroni", False, exc.message.removeprefix("patroni: ")))
    etcd: EtcdCluster | None = None
    try:
        etcd = adapters.etcd.get_cluster()
    except GardenError as exc:
        checks.append(Check("etcd healthy", False, exc.message, overridable=True))
    if cluster is not None:
        if cluster.paused:
            checks.append(
                Check(
                    "not paused",
                    False,
                    "maintenance mode is on: Patroni does not fail over while paused, so a drill would only break the "
                    "cluster and measure nothing (resume it first: patronictl resume)",
                )
            )
        else:
            checks.append(Check("not paused", True, "automatic failover is on"))
        leader = cluster.leader
        if leader is None or leader.state != "running":
            checks.append(Check("one leader", False, "no running leader" if leader is None else f"leader {leader.name} is {leader.state}"))
        else:
            checks.append(Check("one leader", True, f"{leader.name} on timeline {leader.timeline}"))
        lagging = [
            f"{m.name} ({m.state}, lag {'unknown' if m.lag_bytes is None else m.lag_bytes})"
            for m in cluster.replicas
            if not m.is_streaming or m.lag_bytes is None
        ]
        own = own_state_problems(adapters.patroni, cluster)
        checks.append(
            Check(
                "replicas streaming",
                not lagging and not own,
                "every replica streaming" if not lagging and not own else "; ".join((["not streaming: " + ", ".join(lagging)] if lagging else []) + own),
                overridable=True,
            )
        )
    if etcd is not None:
        bad = [m.display_name for m in etcd.voters if not m.healthy]
        checks.append(
            Check("etcd healthy", not bad, f"{len(etcd.healthy_voters)}/{len(etcd.voters)} members healthy" + (f" ({', '.join(bad)} not)" if bad else ""), overridable=True)
        )
    try:
        state = adapters.haproxy.get_state()
        leader_name = cluster.leader.name if cluster is not None and cluster.leader else None
        ok = leader_name is not None and state.rw_target == leader_name
        up = ", ".join(s.name for s in state.rw_up) or "none"
        why = "" if ok or leader_name is not None else " (the leader is unknown)"
        if not ok and leader_name is not None:
            why = f" (the leader is {leader_name})"
        checks.append(Check("haproxy routes to the leader", ok, f"read-write UP: {up}{why}", overridable=True))
    except GardenError as exc:
        checks.append(Check("haproxy routes to the leader", False, exc.message, overridable=True))
    problems = adapters.target.problems()
    checks.append(Check("fault target", not problems, adapters.target.describe() if not problems else "; ".join(problems)))
    fit: list[str] = []
    for step in playbook.steps:
        if step.kind == "fault" and step.action in ("kill", "stop"):
            try:
                resolve_target(step, cluster, etcd, adapters.target)
            except GardenError as exc:
                fit.append(exc.message)
        if step.kind == "switchover" and cluster is not None:
            if step.candidate and cluster.member(step.candidate) is None:
                fit.append(f"switchover candidate {step.candidate!r} is not a member")
            elif not cluster.failover_candidates:
                fit.append("no replica can take over now (switchover needs an eligible, streaming candidate)")
    checks.append(Check("playbook fits the cluster", not fit, "; ".join(fit) if fit else f"{len(playbook.steps)} steps resolvable now"))
    config = cluster.config if cluster is not None else None
    changes = _config_changes(playbook, options)
    return DrillPlan(
        playbook=playbook.name,
        summary=playbook.summary,
        context=adapters.context,
        fault_target=adapters.target.describe(),
        leader=cluster.leader.name if cluster is not None and cluster.leader else None,
        synchronous_mode=bool(config and config.synchronous_mode),
        ttl_seconds=config.ttl_seconds if config else None,
        steps=tuple(s.describe() for s in playbook.steps),
        thresholds=tuple(_threshold_text(t, bool(config and config.synchronous_mode), config.ttl_seconds if config else None) for t in playbook.thresholds),
        checks=tuple(checks),
        repeat=repeat,
        rate=options.rate or playbook.probe.rate,
        patroni_config=changes,
        force=options.force,
    )


def _threshold_text(t: Any, sync: bool, ttl: int | None) -> str:
    spec = t.spec(sync)
    limit = t.limit(sync, ttl)
    shown = "reported only" if limit is None else (f"{limit:g}" + (f" ({spec})" if spec.plus_ttl else ""))
    return f"{t.key}: {shown}" + ("" if t.sync == t.async_ else f" ({'sync' if sync else 'async'} mode)")


def _config_changes(playbook: Playbook, options: DrillOptions) -> dict[str, Any]:
    changes = dict(playbook.patroni_config)
    if options.failsafe is not None:
        changes["failsafe_mode"] = options.failsafe
    return changes


# ------------------------------------------------------------------------------------------------ run


@dataclass
class _Run:
    """Mutable bookkeeping of one iteration."""

    now: Callable[[], float]
    progress: Progress
    events: list[DrillEvent] = field(default_factory=list)
    fault_at: float | None = None
    members: tuple[str, ...] = ()
    synchronous_mode: bool = False
    step_index: int = 0
    step_text: str = "starting"

    def event(self, what: str) -> None:
        t = self.now()
        self.events.append(DrillEvent(round(t, 3), what))
        self.progress(f"[{t:6.2f}s] {what}")


def run_drill(
    playbook: Playbook,
    adapters: Any,
    options: DrillOptions = DrillOptions(),
    *,
    iteration: int = 1,
    progress: Progress = _nothing,
    status: Progress | None = None,
    clock: Clock = REAL_CLOCK,
    on_attempts: Callable[[str, str, list[measure.Attempt]], None] | None = None,
) -> DrillRun:
    """One iteration of ``playbook`` against the cluster behind ``adapters``. Never raises for what the cluster
    does; raises only for problems before anything was changed (e.g. the probe table cannot be created).
    ``on_attempts(run_id, "write" | "read", attempts)`` receives every probe attempt (to keep them in a file)."""
    t0 = clock.now()
    started_at = datetime.now(timezone.utc)

    def now() -> float:
        return clock.now() - t0

    run = _Run(now=now, progress=progress)
    run_id = f"{playbook.name}-{started_at.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    rate = options.rate or playbook.probe.rate
    cluster0 = adapters.patroni.get_cluster(with_config=True)
    config0 = cluster0.config
    sync = bool(config0 and config0.synchronous_mode)
    leader_before = cluster0.leader.name if cluster0.leader else None
    addresses = {f"{m.host}:{m.port}": m.name for m in cluster0.members if m.host and m.port}
    run.members = tuple(m.name for m in cluster0.members)
    run.synchronous_mode = sync
    ensure_probe_table(adapters.rw)

    ledger = Ledger()
    aborted: str | None = None
    config_restore: dict[str, Any] = {}
    config_applied: dict[str, Any] = {}
    failsafe = config0.failsafe_mode if config0 else None
    write = SqlProbe(adapters.rw, mode="write", run_id=run_id, rate=rate, now=now, attempt_timeout_seconds=playbook.probe.attempt_timeout_seconds)
    read = (
        SqlProbe(adapters.ro, mode="read", run_id=run_id, rate=rate, now=now, workers=2, attempt_timeout_seconds=playbook.probe.attempt_timeout_seconds)
        if playbook.probe.read and adapters.ro is not None
        else None
    )
    pwatch = PatroniWatcher(adapters.watcher_patroni, adapters.patroni_endpoints, now)
    hwatch = HAProxyWatcher(adapters.haproxy, now)
    ticker_stop = threading.Event()

    def tick() -> None:
        while not ticker_stop.wait(0.5):
            if status is None:
                continue
            attempts, ok, failed, last_error = write.snapshot()
            latest = pwatch.latest()
            route = hwatch.latest()
            leader = latest.leader if latest else "?"
            rw = ",".join(route.rw_up) if route and route.rw_up else "none"
            err = f" - last error: {last_error[:60]}" if failed and last_error else ""
            status(
                f"{now():6.1f}s  step {run.step_index}/{len(playbook.steps)} {run.step_text}  |  writes {ok} ok, {failed} failed"
                f"  |  leader {leader or 'none'}  |  HAProxy rw -> {rw}{err}"
            )

    ticker = threading.Thread(target=tick, name="drill-ticker", daemon=True)
    probes_stopped_at: float | None = None
    try:
        changes = _config_changes(playbook, options)
        if changes:
            before = adapters.patroni.get_config().raw
            config_restore = {k: before.get(k) for k in changes}
            new = adapters.patroni.patch_config(changes)
            config_applied = changes
            failsafe = new.failsafe_mode
            run.event(f"Patroni config set: {', '.join(f'{k}={v}' for k, v in changes.items())}")
            # Every member picks the change up on its next HA loop.
            clock.sleep(float((config0.loop_wait_seconds if config0 else None) or 10) + 1.0)
        pwatch.start()
        hwatch.start()
        write.start()
        if read is not None:
            read.start()
        ticker.start()
        try:
            run.step_text = "baseline"
            baseline = playbook.probe.baseline_seconds
            try:
                wait_until(
                    lambda: (now() >= baseline and write.recent_ok(min(baseline, 1.0) or 0.5), f"writes: {write.snapshot()[1]} ok, {write.snapshot()[2]} failed"),
                    timeout=baseline + 30.0,
                    interval=0.1,
                    what="writes to flow through HAProxy before the first fault",
                    clock=clock,
                )
                run.event(f"baseline: writes flowing through {adapters.rw.where} ({write.snapshot()[1]} acknowledged)")
            except OperationTimeout as exc:
                last = write.snapshot()[3]
                raise OperationFailed(f"{exc.message}" + (f"; last probe error: {last}" if last else "")) from exc
            for index, step in enumerate(playbook.steps, start=1):
                run.step_index, run.step_text = index, step.describe()
                try:
                    _run_step(step, adapters, run, ledger, pwatch, hwatch, write, leader_before, clock, config0.ttl_seconds if config0 else None)
                except GardenError as exc:
                    aborted = f"step {index} ({step.describe()}): {exc.message}"
                    run.event(f"step {index} failed, skipping the rest: {exc.message}")
                    break
            run.step_text = "settling"
            if aborted is None and playbook.probe.settle_seconds:
                clock.sleep(playbook.probe.settle_seconds)
        except KeyboardInterrupt:
            # Ctrl-C: stop breaking things, but still recover, measure what happened so far and clean up the probe rows;
            # the caller records the run and then exits as interrupted.
            aborted = f"{INTERRUPTED} during {run.step_text}"
            run.event(f"{INTERRUPTED} during {run.step_text}: recovering")
    finally:
        ticker_stop.set()
        for probe in (write, read):
            if probe is not None and probe.started_at is not None:
                probe.stop()
        probes_stopped_at = now()
        pwatch.stop()
        hwatch.stop()
        run.step_text = "recovering"
        recovered, recovery_message, recovery_seconds, cluster_after = _recover(
            adapters, ledger, config_restore, run, options.recovery_timeout_seconds, clock
        )
    if on_attempts is not None:
        on_attempts(run_id, "write", write.results())
        if read is not None:
            on_attempts(run_id, "read", read.results())
    return _measure(
        playbook,
        adapters,
        run,
        run_id=run_id,
        iteration=iteration,
        started_at=started_at,
        sync=sync,
        failsafe=failsafe,
        ttl=config0.ttl_seconds if config0 else None,
        leader_before=leader_before,
        cluster_after=cluster_after,
        addresses=addresses,
        write=write,
        read=read,
        pwatch=pwatch,
        hwatch=hwatch,
        rate=rate,
        probes_stopped_at=probes_stopped_at or now(),
        recovered=recovered,
        recovery_message=recovery_message,
        recovery_seconds=recovery_seconds,
        aborted=aborted,
        config_applied=config_applied,
    )


def _run_step(
    step: Step,
    adapters: Any,
    run: _Run,
    ledger: Ledger,
    pwatch: PatroniWatcher,
    hwatch: HAProxyWatcher,
    write: SqlProbe,
    leader_before: str | None,
    clock: Clock,
    ttl: int | None = None,
) -> None:
    if step.kind == "fault":
        cluster = None
        etcd = None
        if step.roles[0] in ("patroni", "postgres"):
            cluster = adapters.patroni.get_cluster(with_config=False)
        elif step.roles[0] == "etcd":
            etcd = adapters.etcd.get_cluster()
        if step.action == "start":
            kind = "patroni" if step.roles[0] in ("patroni", "postgres") else step.roles[0]
            if step.target in TARGETS:
                nodes = [n for k, n in ledger.restore_order() if k == kind]
            else:
                nodes = [step.target or ""]
        else:
            nodes = resolve_target(step, cluster, etcd, adapters.target)
        who = {"leader": "the leader", "replica": "a replica", "sync-standby": "the sync standby", "async-replica": "an async replica", "etcd-leader": "the etcd leader", "etcd-follower": "an etcd follower"}.get(step.target or "", "")
        if step.disruptive and run.fault_at is None:
            run.fault_at = run.now()
        for node in nodes:
            record = adapters.target.apply(step.action, step.roles, node)
            ledger.note(record)
            run.event(f"fault: {record.detail}" + (f" ({who})" if who and step.count == 1 else ""))
        return
    if step.kind == "switchover":
        cluster = adapters.patroni.get_cluster(with_config=False)
        leader = cluster.leader
        if leader is None:
            raise OperationFailed("no leader to switch over from")
        if run.fault_at is None:
            run.fault_at = run.now()
        run.event(f"switchover requested: {leader.name} -> {step.candidate or 'a candidate Patroni chooses'}")
        answer = adapters.patroni.switchover(leader.name, step.candidate)
        if answer.status == 200:
            run.event(f"Patroni answered 200: {answer.text[:120]}")
        elif answer.in_progress:
            run.event(f"Patroni answered 503 (status unknown, still in progress): {answer.text[:120]}")
        else:
            raise OperationFailed(f"Patroni refused the switchover: HTTP {answer.status}: {answer.text[:200]}")
        return
    if step.kind == "hold":
        seconds = step.hold.resolve(ttl) if step.hold else 0.0
        end = run.now() + seconds
        while run.now() < end:
            clock.sleep(min(0.2, max(end - run.now(), 0)))
        run.event(f"held {seconds:g}s")
        return
    if step.kind == "recover":
        problems = recover(adapters.target, ledger, run.event)
        if problems:
            raise OperationFailed("; ".join(problems))
        return
    # wait
    condition = step.condition

    def check() -> tuple[bool, str]:
        latest = pwatch.latest()
        route = hwatch.latest()
        leader = latest.leader if latest else None
        if condition == "new-leader":
            ok = bool(latest and leader and leader != leader_before)
            return ok, f"leader {leader or 'none'}"
        if condition == "routed":
            ok = bool(latest and leader and route and route.rw_up == (leader,))
            return ok, f"leader {leader or 'none'}, HAProxy read-write UP: {','.join(route.rw_up) if route and route.rw_up else 'none'}"
        if condition == "writes-ok":
            return write.recent_ok(1.0), f"writes: last error {write.snapshot()[3] or 'none'}"
        problems, _ = health_problems(adapters, run.members, synchronous_mode=run.synchronous_mode)
        return not problems, "; ".join(problems) or "healthy"

    start = run.now()
    wait_until(check, timeout=step.timeout_seconds, interval=0.1, what=str(condition), clock=clock)
    since = f"{run.now() - run.fault_at:.2f}s after the fault" if run.fault_at is not None else f"after {run.now() - start:.2f}s"
    run.event(f"{condition}: reached {since} (this step waited {run.now() - start:.2f}s)")


def _recover(
    adapters: Any, ledger: Ledger, config_restore: dict[str, Any], run: _Run, timeout: float, clock: Clock
) -> tuple[bool, str, float | None, PatroniCluster | None]:
    """Start what the drill stopped, restore Patroni settings, wait for full health."""
    start = run.now()
    notes: list[str] = []
    if ledger.down:
        notes += recover(adapters.target, ledger, run.event)
    if adapters.target.kind == "lab":
        # The lab is ours: anything not running (even if a fault we did not plan took it down) is started again.
        for kind in ("etcd", "patroni", "haproxy"):
            for node in adapters.target.nodes(kind):
                try:
                    if adapters.target.is_running(kind, node) is False:
                        run.event(f"recover: {adapters.target.apply('start', (kind,), node).detail} (found stopped)")
                except GardenError as exc:
                    notes.append(f"could not start {node}: {exc.message}")
    if config_restore:
        try:
            adapters.patroni.patch_config(config_restore)
            run.event(f"Patroni config restored: {', '.join(f'{k}={v}' for k, v in config_restore.items())}")
        except GardenError as exc:
            notes.append(f"could not restore Patroni config {config_restore}: {exc.message}")
    last: dict[str, Any] = {"cluster": None}

    def healthy() -> tuple[bool, str]:
        problems, cluster = health_problems(adapters, run.members, synchronous_mode=run.synchronous_mode)
        last["cluster"] = cluster
        return not problems, "; ".join(problems) or "healthy"

    try:
        wait_until(healthy, timeout=timeout, interval=0.5, what="the cluster to be fully healthy again", clock=clock)
    except OperationTimeout as exc:
        message = exc.message + (f"; also: {'; '.join(notes)}" if notes else "")
        run.event(f"NOT recovered: {message}")
        return False, message, None, last["cluster"]
    seconds = run.now() - start
    if notes:
        run.event(f"healthy again, but: {'; '.join(notes)}")
        return False, "; ".join(notes), seconds, last["cluster"]
    run.event(f"healthy again after {seconds:.1f}s (etcd, one leader, replicas streaming, HAProxy routed)")
    return True, f"healthy again after {seconds:.1f}s", seconds, last["cluster"]


# ------------------------------------------------------------------------------------------------ measure


def _measure(
    playbook: Playbook,
    adapters: Any,
    run: _Run,
    *,
    run_id: str,
    iteration: int,
    started_at: datetime,
    sync: bool,
    failsafe: bool | None,
    ttl: int | None,
    leader_before: str | None,
    cluster_after: PatroniCluster | None,
    addresses: dict[str, str],
    write: SqlProbe,
    read: SqlProbe | None,
    pwatch: PatroniWatcher,
    hwatch: HAProxyWatcher,
    rate: float,
    probes_stopped_at: float,
    recovered: bool,
    recovery_message: str,
    recovery_seconds: float | None,
    aborted: str | None,
    config_applied: dict[str, Any],
) -> DrillRun:
    notes: list[str] = []
    gap = measure.default_outage_gap(rate)
    writes = write.results()
    wav = measure.availability(writes, probe_end=probes_stopped_at, outage_gap_seconds=gap)
    rav = measure.availability(read.results(), probe_end=probes_stopped_at, outage_gap_seconds=gap) if read else None
    fault_at = run.fault_at if run.fault_at is not None else 0.0

    samples = pwatch.all_samples()
    leaders = measure.leader_sequence(s.leader for s in samples)
    # The leader lock changing hands is Patroni's own leader change; the new leader's member state ("running")
    # is only refreshed on its next HA loop, so it is not waited for here.
    new_leader_at = next((s.at for s in samples if s.at >= fault_at and s.leader and s.leader != leader_before), None)
    routes = hwatch.all_samples()
    leader_final = leaders[-1] if leaders else leader_before
    routed_at = _routed_since(routes, leader_final)
    # The stats socket is sampled every 0.2 s; a write refused read-only is proof that the read-write port did not
    # yet lead to a writable primary, whatever the last sample said.
    refused_read_only = measure.misrouted(writes, fault_at)
    if routed_at is not None and refused_read_only:
        routed_at = max(routed_at, max(a.finished for a in refused_read_only))
    seconds_to_routed = None
    if routed_at is not None:
        seconds_to_routed = max(routed_at - fault_at, 0.0)

    # Durability: read the primary directly, after recovery.
    lost: tuple[int, ...] = ()
    unacked: tuple[int, ...] = ()
    lost_count: float | None = None
    unacked_count: float | None = None
    leader_after = cluster_after.leader.name if cluster_after is not None and cluster_after.leader else None
    try:
        cluster = cluster_after or adapters.patroni.get_cluster(with_config=False)
        primary = cluster.leader
        if primary is None or not primary.host or primary.port is None:
            raise OperationFailed("no leader to read the probe rows from")
        leader_after = primary.name
        present = read_probe_ids(adapters.member_endpoint(primary.host, primary.port), run_id)
        dur = measure.durability(writes, present)
        lost, unacked = dur.lost, dur.unacknowledged_present
        lost_count, unacked_count = float(len(lost)), float(len(unacked))
        if lost:
            notes.append(f"{len(lost)} acknowledged write(s) missing on {primary.name} after recovery: ids {_ids(lost)}")
        if unacked:
            notes.append(f"{len(unacked)} row(s) present that were never acknowledged (their commit's answer was lost): ids {_ids(unacked)}")
        delete_probe_rows(adapters.member_endpoint(primary.host, primary.port), run_id)
    except GardenError as exc:
        notes.append(f"could not check the probe rows on the primary: {exc.message}")

    evidence = measure.split_brain(writes)
    evidence = tuple(_name_servers(e, addresses) for e in evidence)
    concurrent, who = measure.max_concurrent_primaries(pwatch.all_roles())

    figures: list[Figure] = []

    def add(name: str, label: str, value: float | None, unit: str = "", note: str | None = None) -> None:
        th = playbook.threshold(name)
        limit = th.limit(sync, ttl) if th else None
        passed = None if limit is None else (value is not None and value <= limit + 1e-9)
        if limit is not None and value is None and note is None:
            note = "not measured"
        figures.append(Figure(name, label, None if value is None else round(value, 3), unit, limit, passed, note))

    add("write_unavailable_seconds", "write-unavailable window (longest gap)", wav.longest_gap_seconds, "s",
        "writes had not resumed when the probe stopped" if not wav.recovered else None)
    add("write_unavailable_total_seconds", f"write-unavailable total (gaps > {gap:.2f} s)", wav.outage_seconds, "s")
    add("seconds_to_new_leader", "time to a new leader in Patroni", None if new_leader_at is None else new_leader_at - fault_at, "s",
        "the leader did not change" if new_leader_at is None else None)
    change = measure.leader_change(pwatch.all_roles(), leader_before, leader_final, fault_at)
    if change.new_first_primary is not None:
        add("seconds_to_new_primary", "time until the new leader says it is primary", change.new_first_primary - fault_at, "s")
        add("leader_change_seconds", "Patroni's leader change (old primary stops -> new one runs)", change.seconds, "s")
    add("seconds_to_routed", "time until HAProxy routes writes to the leader", seconds_to_routed, "s",
        None if seconds_to_routed is not None else "HAProxy did not route to the leader by the end")
    add("writes_misrouted", "writes refused read-only (not sent to a writable primary)", float(len(refused_read_only)))
    add("acked_writes_lost", "acknowledged writes lost", lost_count, "rows")
    add("unacked_rows_present", "rows present but never acknowledged", unacked_count, "rows")
    add("split_brain", "split brain (two writers at once)", float(len(evidence)))
    add("concurrent_primaries", "members claiming primary at once (max)", float(concurrent))
    add("leader_changes", "leader changes", float(max(len(leaders) - 1, 0)))
    if rav is not None:
        add("read_unavailable_seconds", "read-unavailable window (longest gap)", rav.longest_gap_seconds, "s",
            "reads had not resumed when the probe stopped" if not rav.recovered else None)
    add("writes_acknowledged", "writes acknowledged", float(wav.succeeded))
    add("writes_failed", "writes failed", float(wav.failed))
    add("recovery_seconds", "time to full health after the probe stopped", recovery_seconds, "s")

    # What happened, in words.
    if len(leaders) > 1:
        notes.insert(0, f"leader: {' -> '.join(leaders)}")
    elif leader_before:
        notes.insert(0, f"leader stayed {leader_before}")
    for outage in wav.outages:
        end = "the probe stopped (writes not back)" if outage.open_ended else f"{outage.end - fault_at:+.2f}s"
        notes.append(f"writes unavailable from {outage.start - fault_at:+.2f}s to {end} relative to the fault ({outage.seconds:.2f}s)")
    if rav is not None:
        for outage in rav.outages:
            notes.append(f"reads unavailable from {outage.start - fault_at:+.2f}s for {outage.seconds:.2f}s")
    for member, runs in _primary_runs(pwatch.all_roles()).items():
        text = ", ".join(f"{a - fault_at:+.1f}s..{b - fault_at:+.1f}s" for a, b in runs)
        notes.append(f"{member} reported itself running as primary (its own /patroni) at {text} relative to the fault")
    if concurrent > 1:
        notes.append(f"{concurrent} members claimed the primary role at the same time: {', '.join(who)}")
    if write.skipped:
        notes.append(f"{len(write.skipped)} write attempt(s) skipped: every probe connection was busy (hung)")
    if evidence:
        notes += [f"split brain: {e}" for e in evidence]

    events = list(run.events)
    if new_leader_at is not None:
        events.append(DrillEvent(round(new_leader_at, 3), f"new leader in Patroni (holds the leader lock): {next((s.leader for s in samples if s.at == new_leader_at), '?')}"))
    if routed_at is not None and routed_at > fault_at:
        events.append(DrillEvent(round(routed_at, 3), f"HAProxy routes writes to {leader_final}"))
    for outage in wav.outages:
        events.append(DrillEvent(round(outage.start, 3), "last acknowledged write before an outage"))
        if not outage.open_ended:
            events.append(DrillEvent(round(outage.end, 3), f"writes acknowledged again (after {outage.seconds:.2f}s)"))
    events.sort(key=lambda e: e.seconds)

    spans = measure.writer_spans(writes)
    writers = tuple(
        f"{addresses.get(s.server, s.server)} ({s.server}, timeline {s.timeline}): {s.writes} writes, "
        f"{s.first_started:.2f}s..{s.last_ack:.2f}s"
        for s in spans
    )
    return DrillRun(
        playbook=playbook.name,
        context=adapters.context,
        run_id=run_id,
        iteration=iteration,
        started_at=started_at,
        duration_seconds=round(run.now(), 3),
        synchronous_mode=sync,
        failsafe_mode=failsafe,
        ttl_seconds=ttl,
        fault_target=adapters.target.describe(),
        leader_before=leader_before,
        leader_after=leader_after,
        figures=tuple(figures),
        events=tuple(events),
        notes=tuple(notes),
        split_brain_evidence=evidence,
        lost_ids=lost[:200],
        unacknowledged_present_ids=unacked[:200],
        write_errors=tuple(Counter(a.error or "?" for a in writes if not a.ok).most_common(8)),
        read_errors=tuple(Counter(a.error or "?" for a in (read.results() if read else []) if not a.ok).most_common(8)),
        writers=writers,
        recovered=recovered,
        recovery_message=recovery_message,
        aborted=aborted,
        patroni_config_applied=config_applied,
    )


def _routed_since(routes: list[Any], leader: str | None) -> float | None:
    """Start of the final run of samples where exactly the leader was UP in the read-write backend."""
    if leader is None:
        return None
    since = None
    for r in routes:
        if r.error is None and r.rw_up == (leader,):
            if since is None:
                since = r.at
        elif r.error is not None:
            continue
        else:
            since = None
    return since


def _primary_runs(samples: list[measure.RoleSample]) -> dict[str, list[tuple[float, float]]]:
    """Per member, the spans during which its own /patroni said primary (first answer .. last request)."""
    by_member: dict[str, list[measure.RoleSample]] = {}
    for s in sorted(samples, key=lambda x: x.sent):
        by_member.setdefault(s.member, []).append(s)
    out: dict[str, list[tuple[float, float]]] = {}
    for member, rows in sorted(by_member.items()):
        runs: list[tuple[float, float]] = []
        start: float | None = None
        last = 0.0
        for s in rows:
            if s.primary:
                if start is None:
                    start = s.received
                last = s.sent
            elif start is not None:
                runs.append((start, max(last, start)))
                start = None
        if start is not None:
            runs.append((start, max(last, start)))
        if runs:
            out[member] = runs
    return out


def _ids(ids: tuple[int, ...], limit: int = 12) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" ... (+{len(ids) - limit})" if len(ids) > limit else "")


def _name_servers(text: str, addresses: dict[str, str]) -> str:
    for addr, name in addresses.items():
        text = text.replace(addr, f"{name} ({addr})")
    return text
