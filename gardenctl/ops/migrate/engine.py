"""migrate-phase: status, plan, apply and rollback of the GardenOS phases.

``plan`` reads the recorded phase from etcd, renders the target phase (and the current one), diffs them, and - when
the Kubernetes API answers - diffs the target against the live cluster with a server-side dry-run apply and finds
what pruning would delete; then it runs the target phase's preflight. ``apply`` takes the migration claim in etcd
(CAS on the revision the plan saw: of two operators only one proceeds), server-side applies every object of the phase
with the field manager ``gardenctl``, waits for every workload of the phase to roll out (bounded), prunes what the
phase no longer has (only GardenOS-labelled objects without an owner; never PersistentVolumeClaims or Namespaces),
runs the post-checks and records the transition in etcd (CAS). If anything fails after the claim, the claim is
released with a note of the failure and the recorded phase stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from gardenctl.backends.kube import ApplyOutcome, ObjectRef
from gardenctl.errors import GardenError, OperationFailed, PreconditionFailed
from gardenctl.model import Check, Moment, blocking_checks
from gardenctl.ops.migrate import diff as d
from gardenctl.ops.migrate.checks import CheckEnv, run_checks
from gardenctl.ops.migrate.playbook import DEFAULT_ROLLOUT_TIMEOUT_SECONDS, PhasePlaybook, load_phase_playbook
from gardenctl.ops.migrate.render import NEVER_PRUNED, PART_OF_LABEL, PART_OF_VALUE, Renderer, apply_order, is_gardenos_owned
from gardenctl.ops.migrate.rollout import WORKLOAD_KINDS, RolloutState, rollout_state
from gardenctl.ops.migrate.state import Claim, PhaseState, PhaseStore, Transition
from gardenctl.wait import REAL_CLOCK, Clock, wait_until

APPLY, ROLLBACK, REAPPLY = "apply", "rollback", "reapply"


class KubeApi(Protocol):
    """What migrate-phase needs from Kubernetes (`gardenctl.backends.kube.KubeClient` provides it)."""

    @property
    def server(self) -> str: ...

    def get(self, ref: ObjectRef) -> dict[str, Any] | None: ...

    def list(self, api_version: str, kind: str, namespace: str | None = None, *, label_selector: str | None = None) -> list[dict[str, Any]]: ...

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False, force_conflicts: bool = False) -> ApplyOutcome: ...

    def delete(self, ref: ObjectRef, *, dry_run: bool = False) -> bool: ...

    def proxy_get(self, namespace: str, service: str, port: int | str, path: str) -> tuple[int, str]: ...


@dataclass
class MigrateAdapters:
    """Everything migrate-phase talks to, built by the CLI (tests pass fakes / the fake API server's client)."""

    context: str
    store: PhaseStore
    renderer: Renderer
    playbooks_dir: Path
    checks: CheckEnv
    who: str
    kube: KubeApi | None = None
    kube_problem: str | None = None
    clock: Clock = REAL_CLOCK
    poll_interval_seconds: float = 2.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))


# ------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class PhaseInfo:
    phase: int
    title: str | None
    playbook: str | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class PhaseStatus:
    __kind__ = "PhaseStatus"
    __json_properties__ = ("next_phase",)

    context: str
    cluster: str
    key: str
    phase: int
    recorded: bool
    updated_at: str | None
    updated_by: str | None
    history: tuple[Transition, ...]
    claim: Claim | None
    last_failure: dict[str, Any] | None
    phases: tuple[PhaseInfo, ...]
    unreadable: str | None = None

    @property
    def next_phase(self) -> int | None:
        known = [p.phase for p in self.phases]
        return self.phase + 1 if self.phase + 1 in known else None


@dataclass(frozen=True, slots=True)
class PhasePlan:
    __kind__ = "PhasePlan"
    __json_properties__ = ("ok", "blocking", "counts")

    context: str
    cluster: str
    action: str
    current_phase: int
    target_phase: int
    title: str
    playbook: str
    manifests: str
    revision: int
    changes: tuple[d.Change, ...]
    rendered_changes: tuple[d.Change, ...]
    live: bool
    live_error: str | None
    preflight: tuple[Check, ...]
    claim: Claim | None = None
    last_failure: dict[str, Any] | None = None
    force: bool = False
    force_conflicts: bool = False
    break_lock: bool = False
    rollout_timeout_seconds: float = DEFAULT_ROLLOUT_TIMEOUT_SECONDS
    _state: PhaseState | None = field(default=None, repr=False, compare=False)
    _desired: tuple[dict[str, Any], ...] = field(default=(), repr=False, compare=False)

    @property
    def blocking(self) -> tuple[Check, ...]:
        return blocking_checks(self.preflight, self.force)

    @property
    def ok(self) -> bool:
        return not self.blocking

    @property
    def counts(self) -> dict[str, int]:
        return d.count(self.changes)

    @property
    def summary(self) -> str:
        verb = {APPLY: "apply", ROLLBACK: "roll back to", REAPPLY: "re-apply"}[self.action]
        return f"{verb} phase {self.target_phase} on {self.context} (recorded phase: {self.current_phase})"

    def refusal(self) -> PreconditionFailed:
        first, *rest = self.blocking
        hint = "fix what the failed checks name and plan again"
        if any(c.overridable for c in self.blocking) and not self.force:
            hint += "; checks marked overridable may be skipped with --force"
        return PreconditionFailed(
            f"{self.summary}: refused by the preflight: {first.name}: {first.detail}",
            hint=hint,
            details=[f"{c.name}: {c.detail}" for c in rest],
        )


@dataclass(frozen=True, slots=True)
class RolloutResult:
    object: str
    done: bool
    message: str


@dataclass(frozen=True, slots=True)
class PhaseApplyResult:
    __kind__ = "PhaseApplyResult"

    context: str
    cluster: str
    action: str
    from_phase: int
    to_phase: int
    applied: tuple[d.Change, ...]
    deleted: tuple[str, ...]
    kept: tuple[str, ...]
    rollouts: tuple[RolloutResult, ...]
    post_checks: tuple[Check, ...]
    moments: tuple[Moment, ...]
    recorded: bool
    message: str
    revision: int = 0


# ------------------------------------------------------------------------------------------------ status


def phase_infos(adapters: MigrateAdapters) -> tuple[PhaseInfo, ...]:
    out = []
    for n in adapters.renderer.phases():
        try:
            pb = load_phase_playbook(adapters.playbooks_dir, n)
            out.append(PhaseInfo(n, pb.title, pb.source))
        except GardenError as exc:
            out.append(PhaseInfo(n, None, None, exc.message))
    return tuple(out)


def read_status(adapters: MigrateAdapters) -> PhaseStatus:
    """The recorded phase and its history. Raises `BackendUnreachable` when etcd does not answer."""
    s = adapters.store.read()
    return PhaseStatus(
        context=adapters.context,
        cluster=s.cluster,
        key=s.key,
        phase=s.phase,
        recorded=s.phase > 0 or bool(s.history),
        updated_at=s.updated_at,
        updated_by=s.updated_by,
        history=s.history,
        claim=s.claim,
        last_failure=s.last_failure,
        phases=phase_infos(adapters),
        unreadable=s.unreadable,
    )


# ------------------------------------------------------------------------------------------------ plan


def rollback_target(state: PhaseState) -> int:
    """Rolling back returns to the phase before the recorded one - or, right after a failed apply/rollback left the
    cluster between phases (``last_failure``), restores the recorded phase itself."""
    if state.last_failure is not None:
        return state.phase
    return state.phase - 1


def _live_objects(kube: KubeApi, kinds: list[tuple[str, str]], namespaces: list[str]) -> dict[ObjectRef, dict[str, Any]]:
    """Every live object labelled part of GardenOS, of the kinds the phases use, in the phases' namespaces."""
    selector = f"{PART_OF_LABEL}={PART_OF_VALUE}"
    found: dict[ObjectRef, dict[str, Any]] = {}
    for api_version, kind in kinds:
        scopes: list[str | None] = [None] if kind == "Namespace" else list(namespaces)
        for ns in scopes:
            for obj in kube.list(api_version, kind, ns, label_selector=selector):
                found[ObjectRef.of(obj)] = obj
    return found


def _live_diff(
    kube: KubeApi, desired: tuple[dict[str, Any], ...], kinds: list[tuple[str, str]], namespaces: list[str], *, force_conflicts: bool
) -> tuple[tuple[d.Change, ...], list[str]]:
    """Target phase against the live cluster. Returns the changes and the problems the dry-run apply found."""
    from gardenctl.errors import BackendError

    live = _live_objects(kube, kinds, namespaces)
    desired_map = {ObjectRef.of(o): o for o in desired}
    live_namespaces = {r.name for r in live if r.kind == "Namespace"}
    ns_exists = {
        ns: ns in live_namespaces or kube.get(ObjectRef("v1", "Namespace", None, ns)) is not None
        for ns in sorted({r.namespace for r in desired_map if r.namespace})
    }
    changes: list[d.Change] = []
    problems: list[str] = []
    for ref in apply_order(desired_map):
        before = live.get(ref)
        if before is None and (ref.namespace is None or ns_exists.get(ref.namespace)):
            before = kube.get(ref)  # present without the GardenOS label (created by hand?): apply adopts it
        if before is None and ref.namespace is not None and not ns_exists.get(ref.namespace):
            # Its namespace does not exist yet: a dry run would be refused; it is created by this apply.
            changes.append(d.Change(d.CREATE, ref))
            continue
        try:
            after = kube.apply(desired_map[ref], dry_run=True, force_conflicts=force_conflicts).result
        except BackendError as exc:
            problems.append(f"{ref}: {exc.message}")
            changes.append(d.Change(d.UPDATE if before is not None else d.CREATE, ref, note=f"dry-run apply failed: {exc.message}"))
            continue
        changes.append(d.object_change(ref, before, after))
    for ref in reversed(apply_order(r for r, obj in live.items() if r not in desired_map)):
        obj = live[ref]
        if not is_gardenos_owned(obj):
            continue
        reason = NEVER_PRUNED.get(ref.kind)
        changes.append(d.Change(d.KEEP, ref, note=f"not pruned: {reason}") if reason else d.Change(d.DELETE, ref))
    return tuple(changes), problems


def plan_phase(
    adapters: MigrateAdapters,
    *,
    target: int | None = None,
    rollback: bool = False,
    force: bool = False,
    force_conflicts: bool = False,
    break_lock: bool = False,
    run_preflight: bool = True,
    progress: Callable[[str], None] = lambda _m: None,
) -> PhasePlan:
    """The plan for ``apply target`` (or ``rollback``). Changes nothing (the live diff uses server-side dry runs).

    Raises `ConfigError` for an unknown phase or an invalid playbook, `PreconditionFailed` when kubectl is missing,
    `BackendUnreachable` when etcd does not answer."""
    known = adapters.renderer.phases()
    if not rollback and target not in known:
        from gardenctl.errors import ConfigError

        raise ConfigError(f"there is no phase {target} (known: {', '.join(map(str, known)) or 'none'} in {adapters.renderer.manifests_dir}/phases)")
    state = adapters.store.read()
    current = state.phase
    if rollback:
        target = rollback_target(state)
        if target < 1:
            raise PreconditionFailed(
                f"nothing to roll back to: the recorded phase of {state.cluster} is {current}",
                hint="phase 1 is the first; removing GardenOS entirely is `kubectl delete -k` by hand",
            )
        action = ROLLBACK if target < current else REAPPLY
    else:
        if target is None:
            raise ValueError("target phase required")
        action = APPLY if target > current else (ROLLBACK if target < current else REAPPLY)
    if target not in known:
        from gardenctl.errors import ConfigError

        raise ConfigError(f"there is no phase {target} (known: {', '.join(map(str, known)) or 'none'} in {adapters.renderer.manifests_dir}/phases)")
    playbook: PhasePlaybook = load_phase_playbook(adapters.playbooks_dir, target)
    progress(f"rendering phase {target}" + (f" and phase {current}" if current in known and current != target else "") + " with kubectl kustomize ...")
    desired = adapters.renderer.render(target)
    previous = adapters.renderer.render(current).objects if current in known else ()
    rendered_changes = d.diff_rendered(previous, desired.objects, never_pruned=NEVER_PRUNED)

    checks: list[Check] = []
    if state.unreadable:
        checks.append(Check("recorded phase readable", False, f"{state.key} in etcd is unreadable: {state.unreadable}"))
    step = abs(target - current)
    if step > 1:
        checks.append(Check("one step at a time", False, f"phase {current} -> {target} skips {step - 1} phase(s); each step has its own preflight", overridable=True))
    else:
        checks.append(Check("one step at a time", True, f"phase {current} -> {target}"))
    if state.claim is not None:
        checks.append(
            Check("no migration in progress", break_lock, f"{state.claim.describe()}" + (" (taken over: --break-lock)" if break_lock else "; if that run died: --break-lock"))
        )
    else:
        checks.append(Check("no migration in progress", True, "no claim held"))

    live, live_error, changes = False, None, rendered_changes
    kube = adapters.kube
    if kube is None:
        live_error = adapters.kube_problem or "no Kubernetes access configured"
        checks.append(Check("Kubernetes API reachable", False, live_error))
    else:
        # What may be live: the objects of every phase between the recorded one and the target, and of a failed
        # attempt's target (it may have left objects behind). Their kinds and namespaces are what to list for pruning.
        span = set(range(min(current, target), max(current, target) + 1))
        if state.last_failure and isinstance(state.last_failure.get("to"), int):
            span.add(state.last_failure["to"])
        rendered = [adapters.renderer.render(n) for n in sorted(span & set(known))]
        kinds: list[tuple[str, str]] = []
        for r in rendered:
            for k in r.kinds:
                if k not in kinds:
                    kinds.append(k)
        namespaces = sorted({ns for r in rendered for o in r.objects if (ns := (o.get("metadata") or {}).get("namespace"))} | {adapters.checks.namespace})
        try:
            progress(f"comparing phase {target} with the live cluster at {kube.server} (server-side dry run) ...")
            changes, problems = _live_diff(kube, desired.objects, kinds, namespaces, force_conflicts=force_conflicts)
            live = True
            checks.append(Check("Kubernetes API reachable", True, f"{kube.server}"))
            checks.append(
                Check(
                    "server-side apply dry run",
                    not problems,
                    "every object accepted" if not problems else f"{len(problems)} object(s) refused: " + "; ".join(problems[:3]),
                )
            )
        except GardenError as exc:
            live_error = exc.message
            checks.append(Check("Kubernetes API reachable", False, exc.message))
    if run_preflight:
        progress(f"preflight of phase {target} ({playbook.source}) ...")
        checks += run_checks(adapters.checks, playbook.preflight, progress)
    return PhasePlan(
        context=adapters.context,
        cluster=state.cluster,
        action=action,
        current_phase=current,
        target_phase=target,
        title=playbook.title,
        playbook=playbook.source,
        manifests=desired.source,
        revision=state.mod_revision,
        changes=changes,
        rendered_changes=rendered_changes,
        live=live,
        live_error=live_error,
        preflight=tuple(checks),
        claim=state.claim,
        last_failure=state.last_failure,
        force=force,
        force_conflicts=force_conflicts,
        break_lock=break_lock,
        rollout_timeout_seconds=playbook.rollout_timeout_seconds,
        _state=state,
        _desired=desired.objects,
    )


# ------------------------------------------------------------------------------------------------ apply


def _wait_rollouts(
    adapters: MigrateAdapters, refs: list[ObjectRef], timeout: float, progress: Callable[[str], None]
) -> tuple[RolloutResult, ...]:
    kube = adapters.kube
    assert kube is not None
    states: dict[ObjectRef, RolloutState] = {}
    if not refs:
        return ()

    def check() -> tuple[bool, str]:
        for ref in refs:
            if ref in states and states[ref].done:
                continue
            states[ref] = rollout_state(kube.get(ref), ref)
            if states[ref].failed:
                raise OperationFailed(f"rollout of {ref} failed: {states[ref].message}", hint=f"kubectl -n {ref.namespace} describe {ref.kind.lower()} {ref.name}")
        pending = [s for s in states.values() if not s.done]
        done = len(refs) - len(pending)
        observation = f"{done}/{len(refs)} rolled out" + (f"; waiting for {pending[0].ref}: {pending[0].message}" if pending else "")
        return not pending, observation

    last = [""]

    def on_poll(observation: str) -> None:
        if observation != last[0]:
            progress(f"  {observation}")
            last[0] = observation

    wait_until(check, timeout=timeout, interval=adapters.poll_interval_seconds, what=f"the rollout of {len(refs)} workload(s)", clock=adapters.clock, on_poll=on_poll)
    return tuple(RolloutResult(str(r), states[r].done, states[r].message) for r in refs)


def apply_phase(
    adapters: MigrateAdapters,
    plan: PhasePlan,
    *,
    timeout_seconds: float | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> PhaseApplyResult:
    """Carry out ``plan`` (see the module docstring). Exceptions: `PreconditionFailed` (refused plan, or
    `PhaseConflict`: another operator moved first - nothing applied), `BackendError` (the API refused an object),
    `OperationTimeout` (rollouts did not finish: exit 9, phase not recorded), `OperationFailed` (a rollout failed or
    a post-check failed: phase not recorded)."""
    if not plan.ok:
        raise plan.refusal()
    kube = adapters.kube
    if kube is None or plan._state is None:
        raise PreconditionFailed("internal: applying a plan without Kubernetes access or state")
    timeout = timeout_seconds or plan.rollout_timeout_seconds
    started = adapters.clock.now()
    moments: list[Moment] = []

    def mark(label: str) -> None:
        moments.append(Moment(label, adapters.clock.now() - started))
        progress(label)

    try:
        claimed = adapters.store.claim(plan._state, to_phase=plan.target_phase, action=plan.action, by=adapters.who, break_lock=plan.break_lock, now=adapters.now())
    except GardenError as exc:
        exc.nothing_changed = True  # type: ignore[attr-defined]  # for the journal: refused before any request
        raise
    mark(f"claimed the migration in etcd ({claimed.key}, revision {claimed.mod_revision})")
    by_ref = {c.ref: c for c in plan.changes}
    applied: list[d.Change] = []
    deleted: list[str] = []
    try:
        desired = {ObjectRef.of(o): o for o in plan._desired}
        for ref in apply_order(desired):
            change = by_ref.get(ref, d.Change(d.UPDATE, ref))
            kube.apply(desired[ref], force_conflicts=plan.force_conflicts)
            applied.append(change)
            if change.action != d.UNCHANGED:
                progress(f"  {change.action:9} {ref}")
        mark(f"applied {len(applied)} object(s) (server-side apply, field manager gardenctl)")
        workloads = [r for r in apply_order(desired) if r.kind in WORKLOAD_KINDS]
        rollouts = _wait_rollouts(adapters, workloads, timeout, progress)
        mark(f"{len(workloads)} workload(s) rolled out")
        for change in plan.changes:
            if change.action == d.DELETE:
                existed = kube.delete(change.ref)
                deleted.append(str(change.ref))
                progress(f"  deleted   {change.ref}" + ("" if existed else " (already gone)"))
        if deleted:
            mark(f"pruned {len(deleted)} object(s) the phase no longer has")
        playbook = load_phase_playbook(adapters.playbooks_dir, plan.target_phase)
        post = run_checks(adapters.checks, playbook.post_checks, progress) if playbook.post_checks else ()
        failed = [c for c in post if not c.ok]
        if failed:
            raise OperationFailed(
                f"phase {plan.target_phase} was applied but its post-checks failed: {failed[0].name}: {failed[0].detail}",
                details=[f"{c.name}: {c.detail}" for c in failed[1:]],
                hint="the recorded phase was not changed; fix it and re-run apply, or `gardenctl migrate-phase rollback`",
            )
        if post:
            mark(f"{len(post)} post-check(s) passed")
        recorded = adapters.store.record(claimed, to_phase=plan.target_phase, action=plan.action, by=adapters.who, forced=plan.force and abs(plan.target_phase - plan.current_phase) > 1, now=adapters.now())
        mark(f"recorded phase {plan.target_phase} in etcd (revision {recorded.mod_revision})")
    except BaseException as exc:
        failure = {
            "to": plan.target_phase,
            "action": plan.action,
            "by": adapters.who,
            "error": exc.message if isinstance(exc, GardenError) else (type(exc).__name__ + (f": {exc}" if str(exc) else "")),
            "applied": len(applied),
            "deleted": len(deleted),
        }
        try:
            adapters.store.release(claimed, failure=failure, now=adapters.now())
        except GardenError as release_error:
            if isinstance(exc, GardenError):
                exc.details.append(f"the migration claim could not be released: {release_error.message} (use --break-lock next time)")
        raise
    kept = tuple(str(c.ref) for c in plan.changes if c.action == d.KEEP)
    return PhaseApplyResult(
        context=plan.context,
        cluster=plan.cluster,
        action=plan.action,
        from_phase=plan.current_phase,
        to_phase=plan.target_phase,
        applied=tuple(applied),
        deleted=tuple(deleted),
        kept=kept,
        rollouts=rollouts,
        post_checks=tuple(post),
        moments=tuple(moments),
        recorded=True,
        message=f"phase {plan.target_phase} applied, rolled out, verified and recorded",
        revision=recorded.mod_revision,
    )

