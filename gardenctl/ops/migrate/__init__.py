"""``gardenctl migrate-phase``: move the GardenOS services from one phase of manifests/ to the next, one verified step
at a time, with the current phase recorded in the cluster's etcd. See `gardenctl.ops.migrate.engine`."""

from gardenctl.ops.migrate.engine import (
    MigrateAdapters,
    PhaseApplyResult,
    PhasePlan,
    PhaseStatus,
    apply_phase,
    plan_phase,
    read_status,
)

__all__ = ["MigrateAdapters", "PhaseApplyResult", "PhasePlan", "PhaseStatus", "apply_phase", "plan_phase", "read_status"]
