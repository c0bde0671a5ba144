"""Is a workload rolled out? The same reading ``kubectl rollout status`` makes, from the object's status alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gardenctl.backends.kube import ObjectRef

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")


@dataclass(frozen=True, slots=True)
class RolloutState:
    ref: ObjectRef
    done: bool
    failed: bool
    message: str


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, dict)}


def rollout_state(obj: dict[str, Any] | None, ref: ObjectRef) -> RolloutState:
    """``done``: converged; ``failed``: will not converge without a change (progress deadline, Job failed)."""
    if obj is None:
        return RolloutState(ref, False, False, "does not exist")
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = _int(meta.get("generation"))
    observed = status.get("observedGeneration")
    kind = ref.kind
    if kind == "Job":
        conds = _conditions(status)
        if (conds.get("Complete") or {}).get("status") == "True":
            return RolloutState(ref, True, False, f"complete ({_int(status.get('succeeded'))} succeeded)")
        failed = conds.get("Failed") or {}
        if failed.get("status") == "True":
            return RolloutState(ref, False, True, f"failed: {failed.get('reason') or ''} {failed.get('message') or ''}".strip())
        return RolloutState(ref, False, False, f"running ({_int(status.get('active'))} active, {_int(status.get('succeeded'))} succeeded)")
    if observed is None or _int(observed) < generation:
        return RolloutState(ref, False, False, f"waiting for the controller to observe generation {generation}")
    desired = spec.get("replicas")
    desired = 1 if desired is None else _int(desired)
    updated = _int(status.get("updatedReplicas"))
    if kind == "Deployment":
        progressing = _conditions(status).get("Progressing") or {}
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return RolloutState(ref, False, True, f"exceeded its progress deadline: {progressing.get('message') or ''}".strip())
        replicas = _int(status.get("replicas"))
        available = _int(status.get("availableReplicas"))
        if updated < desired:
            return RolloutState(ref, False, False, f"{updated} of {desired} updated replicas")
        if replicas > updated:
            return RolloutState(ref, False, False, f"{replicas - updated} old replicas pending termination")
        if available < updated:
            return RolloutState(ref, False, False, f"{available} of {updated} updated replicas available")
        return RolloutState(ref, True, False, f"{available}/{desired} available")
    if kind == "StatefulSet":
        if ((spec.get("updateStrategy") or {}).get("type")) == "OnDelete":
            return RolloutState(ref, True, False, "updateStrategy OnDelete: not waited for")
        ready = _int(status.get("readyReplicas"))
        if ready < desired:
            return RolloutState(ref, False, False, f"{ready} of {desired} ready")
        if updated < desired:
            return RolloutState(ref, False, False, f"{updated} of {desired} updated")
        if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return RolloutState(ref, False, False, "waiting for the update revision to become current")
        return RolloutState(ref, True, False, f"{ready}/{desired} ready")
    return RolloutState(ref, True, False, "not a workload")
