"""`gardenctl bootstrap`: plan, apply, destroy and render a GardenOS cluster on Hetzner Cloud.

- `plan.py`: desired state (inventory) vs. current state (API, by labels) -> BootstrapPlan.
- `apply.py`: apply_infrastructure (dependency order, servers in parallel), plan_destroy / destroy.
- `cluster.py`: K3s over SSH, kubeconfig merge, the database bridge.
- `render.py`: every file per node (cloud-init, patroni.yml, haproxy.cfg, etcd env, K3s install line).
- `secrets.py`: generated secrets kept in the state dir (0600), reused on every run.
"""

from gardenctl.ops.bootstrap.apply import (
    ApplyEvent,
    ApplyResult,
    DestroyPlan,
    DestroyResult,
    NodeRow,
    apply_infrastructure,
    destroy,
    plan,
    plan_destroy,
)
from gardenctl.ops.bootstrap.plan import BootstrapPlan, PlanItem, firewall_rules, make_plan, read_state
from gardenctl.ops.bootstrap.render import RenderedFile, render_all, stack_spec

__all__ = [
    "ApplyEvent",
    "ApplyResult",
    "BootstrapPlan",
    "DestroyPlan",
    "DestroyResult",
    "NodeRow",
    "PlanItem",
    "RenderedFile",
    "apply_infrastructure",
    "destroy",
    "firewall_rules",
    "make_plan",
    "plan",
    "plan_destroy",
    "read_state",
    "render_all",
    "stack_spec",
]
