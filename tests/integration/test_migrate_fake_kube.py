"""migrate-phase plan / apply / rollback against the fake Kubernetes API server (driven by the real kubernetes
client) with the real manifests, and an in-memory etcd (the real etcd is tests/lab/test_migrate_etcd.py)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gardenctl.backends.kube import KubeClient
from gardenctl.errors import ExitCode, OperationFailed, OperationTimeout, PreconditionFailed
from gardenctl.ops.migrate import MigrateAdapters, apply_phase, plan_phase, read_status
from gardenctl.ops.migrate.checks import CheckEnv
from gardenctl.ops.migrate.diff import CREATE, DELETE, KEEP, UNCHANGED, UPDATE
from gardenctl.ops.migrate.render import Renderer
from gardenctl.ops.migrate.state import PhaseConflict, PhaseStore
from tests.fakes.kube.fixture import fake_kube  # noqa: F401  (fixture)
from tests.unit.fakes_kv import FakeKV

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
RENDERER = Renderer(ROOT / "manifests")  # renders are cached across tests: kubectl runs once per phase


class FakeClock:
    """Time moves only when someone sleeps: timeouts happen at once, and deterministically."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)


PLAYBOOK = """phase: {n}
title: test phase {n}
rollout-timeout-seconds: 60
preflight:
  - check: drill-passed
    overridable: true
{extra}post-checks:
  - check: deployment-ready
    deployment: kong
{post}"""


def write_playbooks(directory: Path, *, extra: dict[int, str] | None = None, post: dict[int, str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(1, 6):
        (directory / f"phase-{n}.yaml").write_text(PLAYBOOK.format(n=n, extra=(extra or {}).get(n, ""), post=(post or {}).get(n, "")))
    return directory


class Harness:
    def __init__(self, fake, tmp_path: Path, *, playbooks: Path | None = None, http_get=None) -> None:
        self.fake = fake
        self.kv = FakeKV()
        self.clock = FakeClock()
        self.kube = KubeClient(fake.kubeconfig_path, "fake", timeout_seconds=5)
        (tmp_path / "drill-history.jsonl").write_text(json.dumps({"context": "prod", "playbook": "kill-leader", "started_at": "2025-02-28T10:00:00Z", "passed": True}) + "\n")
        self.checks = CheckEnv(context="prod", namespace="gardenos", state_dir=tmp_path, now=NOW, kube=self.kube, http_get=http_get)
        self.adapters = MigrateAdapters(
            context="prod",
            store=PhaseStore(self.kv, "prod"),
            renderer=RENDERER,
            playbooks_dir=playbooks or write_playbooks(tmp_path / "playbooks"),
            checks=self.checks,
            who="alice@test",
            kube=self.kube,
            clock=self.clock,
            poll_interval_seconds=1.0,
            now=lambda: NOW,
        )

    def plan(self, target=None, **kw):
        return plan_phase(self.adapters, target=target, **kw)

    def apply(self, target=None, **kw):
        plan = self.plan(target, **{k: v for k, v in kw.items() if k != "timeout_seconds"})
        return apply_phase(self.adapters, plan, timeout_seconds=kw.get("timeout_seconds"))

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.fake.objects(kind, "gardenos")}

    def writes(self):
        """Requests that could change something: anything but GET and server-side dry runs."""
        return [r for r in self.fake.requests if r.method != "GET" and r.query.get("dryRun") != "All"]


@pytest.fixture
def h(fake_kube, tmp_path):
    fake_kube.ready_after_gets = 1
    harness = Harness(fake_kube, tmp_path)
    yield harness
    harness.kube.close()


def test_apply_1_then_2_then_rollback(h):
    result = h.apply(1)
    assert (result.from_phase, result.to_phase, result.action, result.recorded) == (0, 1, "apply", True)
    assert {c.action for c in result.applied} == {CREATE} and len(result.applied) == 25
    assert h.names("Deployment") == {"auth", "fastapi", "kong", "meta", "realtime", "rest", "storage", "studio"}
    assert h.names("PersistentVolumeClaim") == {"storage-data"}
    applies = [r for r in h.writes() if r.method == "PATCH"]
    assert applies and all(r.query["fieldManager"] == "gardenctl" and r.content_type.startswith("application/apply-patch") for r in applies)
    assert len(result.rollouts) == 8 and all(r.done for r in result.rollouts)

    kong_cm_1 = {n for n in h.names("ConfigMap") if n.startswith("kong-config-")}
    plan2 = h.plan(2)
    assert plan2.live and plan2.ok
    actions = {(c.action, str(c.ref)) for c in plan2.changes}
    assert (DELETE, "Deployment gardenos/rest") in actions and (DELETE, "Service gardenos/rest") in actions
    assert next(c for c in plan2.changes if c.ref.name == "fastapi" and c.ref.kind == "Deployment").fields == ("spec.template.spec.containers[fastapi].env[SERVE_REST_V1].value",)
    result2 = apply_phase(h.adapters, plan2)
    assert set(result2.deleted) == {"Deployment gardenos/rest", "Service gardenos/rest", f"ConfigMap gardenos/{kong_cm_1.pop()}"}
    assert "rest" not in h.names("Deployment") and "rest" not in h.names("Service")
    fastapi = h.fake.get_object("Deployment", "fastapi", "gardenos")
    env = {e["name"]: e.get("value") for e in fastapi["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SERVE_REST_V1"] == "true"

    back = h.apply(rollback=True)
    assert (back.action, back.from_phase, back.to_phase) == ("rollback", 2, 1)
    assert "rest" in h.names("Deployment")
    status = read_status(h.adapters)
    assert status.phase == 1 and [(t.from_phase, t.to_phase, t.action) for t in status.history] == [(0, 1, "apply"), (1, 2, "apply"), (2, 1, "rollback")]
    assert all(t.by == "alice@test" for t in status.history) and status.claim is None


def test_plan_changes_nothing(h):
    h.apply(1)
    h.fake.clear_requests()
    writes_before = list(h.kv.writes)
    stored_before = h.fake.stored()
    plan = h.plan(2)
    assert plan.ok and plan.counts[DELETE] == 3
    assert h.writes() == []  # only GETs and dryRun=All patches reached the API server
    assert any(r.query.get("dryRun") == "All" for r in h.fake.requests)
    assert h.kv.writes == writes_before and h.kv.cas_calls == 2  # the two CAS of apply 1, none since
    assert h.fake.stored() == stored_before


def test_first_plan_with_no_namespace_yet(h):
    plan = h.plan(1)
    assert plan.ok and plan.counts[CREATE] == 25 and plan.current_phase == 0
    assert h.writes() == [] and h.names("Deployment") == set()


def test_rollout_timeout_is_exit_9_and_records_nothing(h):
    h.fake.set_never_ready("Deployment", "fastapi", "gardenos")
    with pytest.raises(OperationTimeout) as err:
        h.apply(1, timeout_seconds=20)
    assert err.value.exit_code == ExitCode.TIMEOUT == 9
    assert "Deployment gardenos/fastapi: 0 of 2 updated replicas available" in err.value.message
    s = h.adapters.store.read()
    assert (s.phase, s.history, s.claim) == (0, (), None)
    assert s.last_failure["to"] == 1 and "timed out" in s.last_failure["error"] and s.last_failure["applied"] == 25
    assert h.clock.t >= 20
    # after a failed apply, rollback restores the recorded phase - here: nothing to go back to
    with pytest.raises(PreconditionFailed, match="nothing to roll back to"):
        h.plan(rollback=True)


def test_refused_preflight_applies_nothing(fake_kube, tmp_path):
    fake_kube.ready_after_gets = 1
    playbooks = write_playbooks(tmp_path / "pb", extra={2: "  - check: deployment-ready\n    deployment: fastapi\n"})
    h = Harness(fake_kube, tmp_path, playbooks=playbooks)
    try:
        h.apply(1)
        # FastAPI breaks: its next rollout never becomes ready
        fake_kube.set_never_ready("Deployment", "fastapi", "gardenos")
        other = KubeClient(fake_kube.kubeconfig_path, "fake", field_manager="operator")
        patch = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fastapi", "namespace": "gardenos"},
                 "spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}}
        other.apply(patch)
        other.close()
        h.fake.clear_requests()
        plan = h.plan(2)
        assert not plan.ok
        failed = {c.name: c.detail for c in plan.blocking}
        assert failed == {"deployment-ready fastapi": "Deployment gardenos/fastapi: 0 of 2 updated replicas available"}
        with pytest.raises(PreconditionFailed) as err:
            apply_phase(h.adapters, plan)
        assert err.value.exit_code == ExitCode.REFUSED
        assert "refused by the preflight: deployment-ready fastapi" in err.value.message
        assert h.writes() == [] and "rest" in h.names("Deployment")
        assert h.adapters.store.read().phase == 1 and h.kv.cas_calls == 2
    finally:
        h.kube.close()


def test_two_operators_planned_from_the_same_state_only_one_applies(h, fake_kube, tmp_path):
    plan_a = h.plan(1)
    plan_b = h.plan(1)  # a second operator, same recorded revision
    assert plan_a.revision == plan_b.revision == 0
    apply_phase(h.adapters, plan_a)
    h.fake.clear_requests()
    with pytest.raises(PhaseConflict) as err:
        apply_phase(h.adapters, plan_b)
    assert err.value.exit_code == ExitCode.REFUSED
    assert "changed since it was read (now phase 1)" in err.value.message and "nothing was changed by this run" in err.value.message
    assert h.writes() == []  # the loser never reached the API server
    assert err.value.nothing_changed is True  # the journal records it as refused, changed: false
    s = h.adapters.store.read()
    assert s.phase == 1 and len(s.history) == 1


def test_one_step_at_a_time_unless_forced(h):
    plan = h.plan(3)
    step = next(c for c in plan.preflight if c.name == "one step at a time")
    assert not step.ok and step.overridable and "skips 2 phase(s)" in step.detail
    assert not plan.ok and [c.name for c in plan.blocking] == ["one step at a time"]
    forced = h.plan(3, force=True)
    assert forced.ok
    result = apply_phase(h.adapters, forced)
    assert result.to_phase == 3 and "kratos" in h.names("Deployment") and "auth" not in h.names("Deployment")
    assert h.adapters.store.read().history[-1].forced is True


def test_rollback_from_4_keeps_the_minio_claim(h):
    h.apply(1, force=False)
    h.apply(2)
    h.apply(3)
    result = h.apply(4)
    assert "minio-create-bucket" in {o["metadata"]["name"] for o in h.fake.objects("Job", "gardenos")}
    assert {c.ref.name for c in result.applied if c.ref.kind == "PersistentVolumeClaim"} == {"minio-data", "storage-data"}
    plan = h.plan(rollback=True)
    assert plan.target_phase == 3
    kept = [c for c in plan.changes if c.action == KEEP]
    assert [str(c.ref) for c in kept] == ["PersistentVolumeClaim gardenos/minio-data"] and "holds data" in kept[0].note
    back = apply_phase(h.adapters, plan)
    assert back.kept == ("PersistentVolumeClaim gardenos/minio-data",)
    assert "minio" not in h.names("Deployment") and "minio-data" in h.names("PersistentVolumeClaim")
    assert "minio-create-bucket" not in {o["metadata"]["name"] for o in h.fake.objects("Job", "gardenos")}


def test_field_manager_conflict_is_found_by_the_dry_run(h):
    h.apply(1)
    other = KubeClient(h.fake.kubeconfig_path, "fake", field_manager="kubectl-edit")
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fastapi", "namespace": "gardenos"},
           "spec": {"template": {"spec": {"containers": [{"name": "fastapi", "env": [{"name": "SERVE_REST_V1", "value": "maybe"}]}]}}}}
    other.apply(obj, force_conflicts=True)
    other.close()
    plan = h.plan(2)
    dry = next(c for c in plan.preflight if c.name == "server-side apply dry run")
    assert not dry.ok and "conflict" in dry.detail and "kubectl-edit" in dry.detail
    assert not plan.ok
    forced = h.plan(2, force_conflicts=True)
    assert forced.ok
    apply_phase(h.adapters, forced)
    env = {e["name"]: e.get("value") for e in h.fake.get_object("Deployment", "fastapi", "gardenos")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SERVE_REST_V1"] == "true"


def test_reapply_is_unchanged_and_drift_shows_up(h):
    h.apply(1)
    plan = h.plan(1)
    assert plan.action == "reapply" and {c.action for c in plan.changes} == {UNCHANGED}
    # drift: someone deleted a Service by hand
    h.fake.delete_object("Service", "studio", "gardenos")
    drift = h.plan(1)
    assert [(c.action, str(c.ref)) for c in drift.changes if c.action != UNCHANGED] == [(CREATE, "Service gardenos/studio")]


def test_failed_post_check_is_exit_8_and_not_recorded(fake_kube, tmp_path):
    fake_kube.ready_after_gets = 0
    playbooks = write_playbooks(tmp_path / "pb", post={1: "  - check: http-ok\n    url: http://app.test\n    path: /health/ready\n"})
    h = Harness(fake_kube, tmp_path, playbooks=playbooks, http_get=lambda url, timeout: (503, "not ready: database unreachable"))
    try:
        with pytest.raises(OperationFailed) as err:
            h.apply(1)
        assert err.value.exit_code == ExitCode.FAILED == 8
        assert "post-checks failed: http-ok http://app.test: http://app.test/health/ready answered HTTP 503" in err.value.message
        s = h.adapters.store.read()
        assert s.phase == 0 and s.claim is None and "post-checks failed" in s.last_failure["error"]
    finally:
        h.kube.close()


def test_no_kubernetes_access_plans_offline_and_refuses_to_apply(fake_kube, tmp_path):
    h = Harness(fake_kube, tmp_path)
    h.adapters.kube = None
    h.adapters.kube_problem = "context prod has no kubernetes section"
    try:
        plan = h.plan(1)
        assert not plan.live and plan.live_error == "context prod has no kubernetes section"
        assert plan.counts[CREATE] == 25  # the rendered diff
        assert [c.name for c in plan.blocking] == ["Kubernetes API reachable"]
    finally:
        h.kube.close()


def test_unreachable_api_is_a_failed_check_not_a_crash(fake_kube, tmp_path):
    h = Harness(fake_kube, tmp_path)
    kubeconfig = shutil.copy(fake_kube.kubeconfig_path, tmp_path / "kubeconfig")
    h.kube.close()
    h.kube = h.adapters.kube = h.checks.kube = KubeClient(str(kubeconfig), "fake", timeout_seconds=2)
    fake_kube.stop()
    try:
        plan = h.plan(1)
        reach = next(c for c in plan.preflight if c.name == "Kubernetes API reachable")
        assert not reach.ok and "connection refused" in reach.detail
        assert not plan.live
    finally:
        h.kube.close()


def test_status_lists_phases_and_a_failed_attempt(h):
    h.fake.set_never_ready("Deployment", "kong", "gardenos")
    with pytest.raises(OperationTimeout):
        h.apply(1, timeout_seconds=5)
    s = read_status(h.adapters)
    assert [p.phase for p in s.phases] == [1, 2, 3, 4, 5] and s.phases[0].title == "test phase 1"
    assert s.last_failure and s.last_failure["to"] == 1 and s.next_phase == 1 and not s.recorded
    assert "kong" in h.names("Deployment")  # the objects stay: re-running apply resumes


def test_rollback_after_a_failed_apply_restores_the_recorded_phase(h):
    h.apply(1)
    kong_cm_1 = {n for n in h.names("ConfigMap") if n.startswith("kong-config-")}
    h.fake.set_never_ready("Deployment", "fastapi", "gardenos")
    with pytest.raises(OperationTimeout):
        h.apply(2, timeout_seconds=10)
    kong_cms = {n for n in h.names("ConfigMap") if n.startswith("kong-config-")}
    assert len(kong_cms) == 2 and "rest" in h.names("Deployment")  # applied, not yet pruned: between phases
    h.fake.set_never_ready("Deployment", "fastapi", "gardenos", never=False)
    plan = h.plan(rollback=True)
    assert (plan.action, plan.current_phase, plan.target_phase) == ("reapply", 1, 1)
    assert {(c.action, c.ref.name) for c in plan.changes if c.action != UNCHANGED} == {
        (UPDATE, "fastapi"), (UPDATE, "kong"), (DELETE, (kong_cms - kong_cm_1).pop())}
    result = apply_phase(h.adapters, plan)
    assert result.to_phase == 1 and {n for n in h.names("ConfigMap") if n.startswith("kong-config-")} == kong_cm_1
    s = h.adapters.store.read()
    assert s.phase == 1 and s.last_failure is None and [t.action for t in s.history] == ["apply", "reapply"]
