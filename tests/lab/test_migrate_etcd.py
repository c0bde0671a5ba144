"""migrate-phase with the phase recorded in the lab's REAL etcd, Kubernetes served by the fake API server, the CLI
run as a user would; compare-and-set races between real etcd clients; a refused preflight from the real PostgreSQL."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from gardenctl.backends.kube import KubeClient
from gardenctl.errors import PreconditionFailed
from gardenctl.ops.clients import etcd_client, postgres_endpoint
from gardenctl.ops.db_prepare import PgSession, apply_db_prepare, plan_db_prepare, resolve_passwords
from gardenctl.ops.migrate import MigrateAdapters, apply_phase, plan_phase
from gardenctl.ops.migrate.checks import CheckEnv
from gardenctl.ops.migrate.render import Renderer
from gardenctl.ops.migrate.state import PhaseConflict, PhaseStore
from gardenctl.ops.status import collect
from tests.conftest import run_cli
from tests.fakes.kube.fixture import fake_kube  # noqa: F401  (fixture)

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")]

ROOT = Path(__file__).resolve().parents[2]

PLAYBOOK = """phase: {n}
title: lab phase {n}
rollout-timeout-seconds: 60
preflight:
  - check: cluster-healthy
    skip-rules: [{skip}]
  - check: drill-passed
  - check: db-prepared
{extra}post-checks:
  - check: deployment-ready
    deployment: kong
"""


class Env:
    """One test's world: the lab's etcd/PostgreSQL, a fake K3s API, a config for the lab's own scope (check compares
    it with Patroni's) whose phase key /gardenos/<scope>/phase starts empty, a state dir with a recent passed drill,
    test playbooks."""

    def __init__(self, lab, fake, tmp_path: Path, extra: dict[int, str] | None = None) -> None:
        self.lab, self.fake = lab, fake
        # the seed's NotReady agent would make `check` WARNING, and cluster-healthy must be OK to migrate
        fake.delete_object("Node", "garden-worker-2", None)
        config = yaml.safe_load(lab.config_path.read_text())
        cluster = config["clusters"]["lab"]
        self.scope = cluster["scope"]
        cluster["kubernetes"] = {"kubeconfig": fake.kubeconfig_path, "context": "fake", "namespace": "gardenos"}
        self.config = tmp_path / "config.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.state = tmp_path / "state"
        self.state.mkdir()
        now = datetime.now(timezone.utc).isoformat()
        (self.state / "drill-history.jsonl").write_text(json.dumps({"context": "lab", "playbook": "kill-leader", "started_at": now, "passed": True}) + "\n")
        self.playbooks = tmp_path / "playbooks"
        self.playbooks.mkdir()
        for n in range(1, 6):
            skip = "k3s_workloads_ready" if n == 1 else "none_such_rule*"
            (self.playbooks / f"phase-{n}.yaml").write_text(PLAYBOOK.format(n=n, skip=skip, extra=(extra or {}).get(n, "")).replace("skip-rules: [none_such_rule*]", "skip-rules: []"))
        self.key = f"/gardenos/{self.scope}/phase"
        self.forget()

    def forget(self) -> None:
        """No recorded phase: each test starts at phase 0 (the key is the lab's, shared by the tests one after another)."""
        with etcd_client(self.lab.cluster) as etcd:
            etcd.delete(self.key)

    def cli(self, *args: str, timeout: float = 180):
        return run_cli(*args, config=self.config, env={"GARDENCTL_STATE_DIR": str(self.state)}, timeout=timeout)

    def migrate(self, *args: str):
        fast = ("--poll-interval", "0.2") if args[0] in ("apply", "rollback") else ()
        return self.cli("migrate-phase", *args, "--playbooks", str(self.playbooks), *fast)

    def stored(self) -> dict | None:
        with etcd_client(self.lab.cluster) as etcd:
            item = etcd.get(self.key)
        return json.loads(item.value) if item else None

    def writes(self):
        return [r for r in self.fake.requests if r.method != "GET" and r.query.get("dryRun") != "All"]


@pytest.fixture
def prepared(lab):
    """The lab database prepared (roles, schemas) - the phases' db-prepared check needs it."""
    ep = postgres_endpoint(lab.cluster, "rw")
    pw = resolve_passwords(None, {"GARDENCTL_DB_SUPABASE_PASSWORD": "Supa_lab-pw1", "GARDENCTL_DB_APP_PASSWORD": "App_lab-pw2", "GARDENCTL_DB_KRATOS_PASSWORD": "Kratos_lab-pw3"})
    apply_db_prepare(ep, pw, plan_db_prepare(ep, pw, context="lab", vector=False))
    return lab


@pytest.fixture
def world(prepared, fake_kube, tmp_path):
    fake_kube.ready_after_gets = 1
    env = Env(prepared, fake_kube, tmp_path)
    yield env
    env.forget()


def test_status_plan_apply_rollback_through_the_cli(world):
    status = world.cli("migrate-phase", "status", "--playbooks", str(world.playbooks), "-o", "json")
    assert status.exit_code == 0, status
    doc = json.loads(status.stdout)
    assert (doc["kind"], doc["phase"], doc["recorded"], doc["key"], doc["next_phase"]) == ("PhaseStatus", 0, False, world.key, 1)

    plan = world.migrate("plan", "1")
    assert plan.exit_code == 0, plan
    assert "preflight passed" in plan.stdout and "cluster-healthy" in plan.stdout and "every status rule OK" in plan.stdout
    assert world.stored() is None and world.writes() == []

    applied = world.migrate("apply", "1", "--yes", "--reason", "TICKET-1")
    assert applied.exit_code == 0, applied
    assert "phase 1 applied, rolled out, verified and recorded" in applied.stdout
    stored = world.stored()
    assert stored["phase"] == 1 and stored["claim"] is None and [(h["from"], h["to"]) for h in stored["history"]] == [(0, 1)]
    assert {o["metadata"]["name"] for o in world.fake.objects("Deployment", "gardenos")} >= {"kong", "rest", "fastapi"}

    applied2 = world.migrate("apply", "2", "--yes")
    assert applied2.exit_code == 0, applied2
    assert "deleted Deployment gardenos/rest" in applied2.stdout
    back = world.migrate("rollback", "--yes")
    assert back.exit_code == 0, back
    assert "(rollback 2 -> 1)" in back.stdout
    stored = world.stored()
    assert stored["phase"] == 1 and [(h["from"], h["to"], h["action"]) for h in stored["history"]] == [(0, 1, "apply"), (1, 2, "apply"), (2, 1, "rollback")]

    table = world.cli("migrate-phase", "status", "--playbooks", str(world.playbooks))
    assert f"lab: phase 1, since" in table.stdout and "rollback" in table.stdout
    journal = [json.loads(line) for line in (world.state / "journal.jsonl").read_text().splitlines()]
    assert [(e["command"], e["outcome"], e["details"]["to_phase"]) for e in journal] == [
        ("migrate-phase apply", "succeeded", 1), ("migrate-phase apply", "succeeded", 2), ("migrate-phase rollback", "succeeded", 1)]
    assert journal[0]["reason"] == "TICKET-1" and journal[0]["details"]["cluster"] == world.scope


def test_dry_run_changes_nothing(world):
    result = world.migrate("apply", "1", "--dry-run")
    assert result.exit_code == 0, result
    assert "dry run: the preflight passed; nothing was changed" in result.stderr
    assert world.stored() is None
    assert world.writes() == []  # GETs and dryRun=All patches only
    assert world.fake.objects("Deployment", "gardenos") == []
    assert not (world.state / "journal.jsonl").exists()
    unconfirmed = world.migrate("apply", "1")  # no terminal, no --yes
    assert unconfirmed.exit_code == 7 and "not confirmed: standard input is not a terminal" in unconfirmed.stderr
    assert world.stored() is None and world.writes() == []
    journal = [json.loads(line) for line in (world.state / "journal.jsonl").read_text().splitlines()]
    assert [(e["outcome"], e["changed"]) for e in journal] == [("refused", False)]
    world.migrate("apply", "1", "--yes")
    world.fake.clear_requests()
    before = world.stored()
    again = world.migrate("apply", "2", "--dry-run")
    assert again.exit_code == 0 and "delete  Deployment gardenos/rest" in again.stdout
    assert world.writes() == [] and any(r.query.get("dryRun") == "All" for r in world.fake.requests)
    assert world.stored() == before


def test_rollout_timeout_is_exit_9_and_the_phase_is_not_recorded(world):
    world.fake.set_never_ready("Deployment", "fastapi", "gardenos")
    result = world.migrate("apply", "1", "--yes", "--timeout", "3")
    assert result.exit_code == 9, result
    assert "timed out after 3s waiting for the rollout of 8 workload(s)" in result.stderr
    assert "fastapi: 0 of 2 updated replicas available" in result.stderr
    stored = world.stored()
    assert stored["phase"] == 0 and stored["history"] == [] and stored["claim"] is None
    assert stored["last_failure"]["to"] == 1 and "timed out" in stored["last_failure"]["error"]
    status = world.cli("migrate-phase", "status", "--playbooks", str(world.playbooks))
    assert "LAST ATTEMPT FAILED: apply to phase 1" in status.stdout
    journal = [json.loads(line) for line in (world.state / "journal.jsonl").read_text().splitlines()]
    assert journal[-1]["outcome"] == "timed_out" and journal[-1]["changed"] is True


def test_two_real_etcd_writers_only_one_wins(lab):
    scope = f"test-{uuid.uuid4().hex[:8]}"
    with etcd_client(lab.cluster) as e1, etcd_client(lab.cluster) as e2:
        a, b = PhaseStore(e1, scope), PhaseStore(e2, scope)
        seen_a, seen_b = a.read(), b.read()
        claimed = a.claim(seen_a, to_phase=1, action="apply", by="alice")
        with pytest.raises(PhaseConflict, match="in progress: apply to phase 1 by alice"):
            b.claim(seen_b, to_phase=1, action="apply", by="bob")
        done = a.record(claimed, to_phase=1, action="apply", by="alice")
        assert done.phase == 1
        stale = b.read()
        a.record(a.claim(a.read(), to_phase=2, action="apply", by="alice"), to_phase=2, action="apply", by="alice")
        with pytest.raises(PhaseConflict, match="now phase 2"):
            b.claim(stale, to_phase=2, action="apply", by="bob")
        assert [t.by for t in b.read().history] == ["alice", "alice"]
        e1.delete(f"/gardenos/{scope}/phase")


def test_two_operators_apply_at_once_one_is_refused_nothing_applied_twice(prepared, fake_kube, tmp_path):
    fake_kube.ready_after_gets = 0
    world = Env(prepared, fake_kube, tmp_path)
    renderer = Renderer(ROOT / "manifests")
    results: dict[str, object] = {}
    clients = []

    def operator(name: str, plan_ready: threading.Barrier) -> None:
        etcd = etcd_client(prepared.cluster)
        kube = KubeClient(fake_kube.kubeconfig_path, "fake")
        clients.extend([etcd, kube])
        checks = CheckEnv(context="lab", namespace="gardenos", state_dir=world.state, now=datetime.now(timezone.utc), kube=kube)
        adapters = MigrateAdapters(context="lab", store=PhaseStore(etcd, world.scope), renderer=renderer, playbooks_dir=world.playbooks,
                                   checks=checks, who=name, kube=kube, poll_interval_seconds=0.05)
        checks.postgres = lambda: postgres_endpoint(prepared.cluster, "rw")
        checks.status = lambda: collect(prepared.cluster)
        plan = plan_phase(adapters, target=1)
        plan_ready.wait(60)  # both planned from the same recorded state
        try:
            results[name] = apply_phase(adapters, plan)
        except PreconditionFailed as exc:
            results[name] = exc

    renderer.render(1)
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=operator, args=(n, barrier)) for n in ("alice", "bob")]
    fake_kube.clear_requests()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for c in clients:
        c.close()
    winners = [n for n, r in results.items() if not isinstance(r, Exception)]
    losers = [r for r in results.values() if isinstance(r, PhaseConflict)]
    assert len(winners) == 1 and len(losers) == 1, results
    applies = [r for r in fake_kube.requests if r.method == "PATCH" and r.query.get("dryRun") != "All"]
    assert len(applies) == 25  # one operator's objects, once
    stored = world.stored()
    assert stored["phase"] == 1 and [h["by"] for h in stored["history"]] == winners


def test_refused_preflight_rls_disabled_on_a_table_the_api_reaches(prepared, fake_kube, tmp_path):
    fake_kube.ready_after_gets = 1
    world = Env(prepared, fake_kube, tmp_path, extra={2: "  - check: rls-enabled\n    schemas: [public]\n"})
    ep = postgres_endpoint(prepared.cluster, "rw")
    with PgSession(ep, autocommit=True) as s:
        s.run("DROP TABLE IF EXISTS public.gardenctl_rls_probe", what="t")
        s.run("CREATE TABLE public.gardenctl_rls_probe (id int)", what="t")  # default privileges: anon/authenticated get ALL
    try:
        assert world.migrate("apply", "1", "--yes").exit_code == 0
        refused = world.migrate("apply", "2", "--yes")
        assert refused.exit_code == 7, refused
        assert "refused by the preflight: rls-enabled public" in refused.stderr
        assert "row-level security is OFF on 1 table(s) the API roles can reach: public.gardenctl_rls_probe" in refused.stderr
        assert world.stored()["phase"] == 1 and "rest" in {o["metadata"]["name"] for o in fake_kube.objects("Deployment", "gardenos")}
        with PgSession(ep, autocommit=True) as s:
            s.run("ALTER TABLE public.gardenctl_rls_probe ENABLE ROW LEVEL SECURITY", what="t")
        allowed = world.migrate("plan", "2")
        assert allowed.exit_code == 0, allowed
        assert "row-level security on for all" in allowed.stdout
    finally:
        with PgSession(ep, autocommit=True) as s:
            s.run("DROP TABLE IF EXISTS public.gardenctl_rls_probe", what="t")


def test_shipped_phase_2_playbook_refuses_without_fastapi(prepared, fake_kube, tmp_path):
    """The real playbook: FastAPI is not deployed, so phase 2's preflight names it (and nothing is applied)."""
    fake_kube.ready_after_gets = 1
    world = Env(prepared, fake_kube, tmp_path)
    with etcd_client(prepared.cluster) as etcd:
        store = PhaseStore(etcd, world.scope)
        store.record(store.claim(store.read(), to_phase=1, action="apply", by="seed"), to_phase=1, action="apply", by="seed")
    result = world.cli("migrate-phase", "plan", "2")
    assert result.exit_code == 7, result
    assert "deployment-ready fastapi" in result.stdout and "Deployment gardenos/fastapi: does not exist" in result.stdout
    assert world.writes() == []


def test_kubectl_missing_is_refused(world, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    result = run_cli("migrate-phase", "plan", "1", config=world.config, env={"GARDENCTL_STATE_DIR": str(world.state), "PATH": str(bare)})
    assert result.exit_code == 7, result
    assert "Error: kubectl is not installed (needed to render the phases with kustomize)" in result.stderr
    assert "hint: install kubectl >= 1.27" in result.stderr
