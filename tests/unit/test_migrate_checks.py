"""Rollout readings and the playbook checks that need no cluster: drill history, cluster health, HTTP, S3."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gardenctl.backends.kube import ObjectRef
from gardenctl.errors import BackendUnreachable
from gardenctl.model import Finding, Probe, Severity, StatusReport
from gardenctl.ops.migrate.checks import CheckEnv, read_drill_runs, run_check
from gardenctl.ops.migrate.playbook import parse_phase_playbook
from gardenctl.ops.migrate.rollout import rollout_state

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
DEPLOY = ObjectRef("apps/v1", "Deployment", "gardenos", "web")


def dep(generation=2, observed=2, spec_replicas=2, **status):
    return {"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": spec_replicas}, "status": {"observedGeneration": observed, **status}}


@pytest.mark.parametrize(
    "obj, done, failed, message",
    [
        (None, False, False, "does not exist"),
        (dep(observed=1), False, False, "waiting for the controller to observe generation 2"),
        (dep(updatedReplicas=1, replicas=2), False, False, "1 of 2 updated replicas"),
        (dep(updatedReplicas=2, replicas=3, availableReplicas=2), False, False, "1 old replicas pending termination"),
        # the fake's "never ready": all updated, none available (the API omits availableReplicas then)
        (dep(updatedReplicas=2, replicas=2, unavailableReplicas=2), False, False, "0 of 2 updated replicas available"),
        (dep(updatedReplicas=2, replicas=2, availableReplicas=2), True, False, "2/2 available"),
        (dep(conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-1 has timed out"}]), False, True, "exceeded its progress deadline: ReplicaSet web-1 has timed out"),
        (dep(spec_replicas=0), True, False, "0/0 available"),
    ],
)
def test_deployment_rollout_reading(obj, done, failed, message):
    if obj is not None and obj["spec"]["replicas"] == 0:
        obj["status"] = {"observedGeneration": 2}
    state = rollout_state(obj, DEPLOY)
    assert (state.done, state.failed, state.message) == (done, failed, message)


def test_statefulset_and_job_readings():
    sts = ObjectRef("apps/v1", "StatefulSet", "n", "db")
    base = {"metadata": {"generation": 1}, "spec": {"replicas": 3}}
    assert rollout_state({**base, "status": {"observedGeneration": 1, "readyReplicas": 2}}, sts).message == "2 of 3 ready"
    assert rollout_state({**base, "status": {"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "a", "updateRevision": "b"}}, sts).message.startswith("waiting for the update revision")
    assert rollout_state({**base, "status": {"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "b", "updateRevision": "b"}}, sts).done
    job = ObjectRef("batch/v1", "Job", "n", "j")
    assert rollout_state({"status": {"active": 1}}, job).message == "running (1 active, 0 succeeded)"
    assert rollout_state({"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}, job).done
    failed = rollout_state({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}}, job)
    assert failed.failed and failed.message == "failed: BackoffLimitExceeded Job has reached the specified backoff limit"


# ------------------------------------------------------------------------------------------------ checks


def spec(yaml_item: str):
    return parse_phase_playbook(f"phase: 1\ntitle: t\npreflight:\n{yaml_item}", "pb.yaml").preflight[0]


def env(tmp_path: Path, **kw) -> CheckEnv:
    return CheckEnv(context="prod", namespace="gardenos", state_dir=tmp_path, now=NOW, **kw)


def history(tmp_path: Path, *lines) -> None:
    (tmp_path / "drill-history.jsonl").write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))


def test_drill_passed_recently(tmp_path):
    history(
        tmp_path,
        {"version": 1, "context": "prod", "playbook": "kill-leader", "started_at": "2025-02-27T09:00:00Z", "passed": True, "recovered": True, "figures": []},
        {"context": "other", "playbook": "kill-leader", "started_at": "2025-03-01T09:00:00Z", "passed": True},
    )
    check = run_check(env(tmp_path), spec("  - check: drill-passed\n"))
    assert check.ok and check.detail == "drill passed kill-leader at 2025-02-27T09:00:00+00:00"


def test_drill_too_old_failed_or_missing(tmp_path):
    c = spec("  - check: drill-passed\n    max-age-days: 2\n")
    assert run_check(env(tmp_path), c).detail.startswith("no passed drill on context prod in ")
    history(
        tmp_path,
        {"context": "prod", "playbook": "kill-leader", "started_at": "2025-02-20T09:00:00", "passed": True},
        {"context": "prod", "playbook": "kill-leader", "started_at": "2025-03-01T09:00:00Z", "passed": False},
        {"context": "prod", "playbook": "kill-leader", "started_at": "2025-03-01T10:00:00Z", "passed": True, "recovered": False},
    )
    check = run_check(env(tmp_path), c)
    assert not check.ok
    assert check.detail.startswith("the last passed drill (kill-leader) was 9 days ago, more than 2 days; run `gardenctl drill run`")


def test_drill_history_is_read_defensively_and_filtered_by_playbook(tmp_path):
    history(
        tmp_path,
        "not json",
        "[1, 2]",
        {"context": "prod", "started_at": "yesterday", "passed": True},
        {"context": "prod", "started_at": "2025-03-01T08:00:00Z"},
        {"context": "prod", "playbook": "stop-etcd", "started_at": "2025-03-01T08:00:00Z", "passed": True},
        "",
    )
    runs, bad = read_drill_runs(tmp_path, "prod")
    assert bad == 4 and [(r[1], r[2]) for r in runs] == [("stop-etcd", True)]
    ok = run_check(env(tmp_path), spec("  - check: drill-passed\n    playbook: stop-*\n"))
    assert ok.ok and ok.detail.endswith("(4 unreadable line(s) skipped)")
    other = run_check(env(tmp_path), spec("  - check: drill-passed\n    playbook: kill-leader\n"))
    assert not other.ok and "no passed drill kill-leader" in other.detail


def report(*severities: Severity) -> StatusReport:
    findings = tuple(Finding(rule=f"rule_{i}", severity=s, message=f"m{i}") for i, s in enumerate(severities))
    return StatusReport(context="prod", collected_at=NOW, patroni=Probe(None, "x"), etcd=Probe(None, "x"), haproxy=Probe(None, "x"), findings=findings)


def test_cluster_healthy_reads_the_status_rules(tmp_path):
    ok = run_check(env(tmp_path, status=lambda: report(Severity.OK, Severity.OK)), spec("  - check: cluster-healthy\n"))
    assert ok.ok and ok.detail == "every status rule OK (2 findings)"
    warn = env(tmp_path, status=lambda: report(Severity.OK, Severity.WARNING))
    bad = run_check(warn, spec("  - check: cluster-healthy\n"))
    assert not bad.ok and bad.detail == "gardenctl check is WARNING: WARNING rule_1: m1"
    assert run_check(warn, spec("  - check: cluster-healthy\n    allow-warning: true\n")).ok
    assert run_check(warn, spec("  - check: cluster-healthy\n    skip-rules: [rule_1]\n")).ok
    crit = run_check(env(tmp_path, status=lambda: report(Severity.CRITICAL)), spec("  - check: cluster-healthy\n    allow-warning: true\n"))
    assert not crit.ok and crit.detail.startswith("gardenctl check is CRITICAL")


def test_a_check_that_cannot_reach_its_backend_fails_with_the_reason(tmp_path):
    def down():
        raise BackendUnreachable("etcd: no endpoint answered")

    check = run_check(env(tmp_path, status=down), spec("  - check: cluster-healthy\n"))
    assert not check.ok and check.detail == "could not check: etcd: no endpoint answered"
    no_kube = run_check(env(tmp_path, kube_problem="context prod has no kubernetes section"), spec("  - check: deployment-ready\n    deployment: web\n"))
    assert not no_kube.ok and no_kube.detail == "could not check: the Kubernetes API is not available: context prod has no kubernetes section"
    no_pg = run_check(env(tmp_path), spec("  - check: rls-enabled\n"))
    assert not no_pg.ok and "PostgreSQL is not configured" in no_pg.detail


def test_http_and_s3_checks_through_a_url(tmp_path):
    answers = {"http://s3.test/present": (403, "<Error><Code>AccessDenied</Code></Error>"), "http://s3.test/absent": (404, "<Error><Code>NoSuchBucket</Code></Error>"),
               "http://app.test/health": (200, "ok"), "http://app.test/sick": (503, "database   down")}
    seen = []

    def get(url, timeout):
        seen.append(url)
        return answers[url]

    e = env(tmp_path, http_get=get)
    assert run_check(e, spec("  - check: http-ok\n    url: http://app.test\n    path: /health\n")).detail == "http://app.test/health answered HTTP 200"
    sick = run_check(e, spec("  - check: http-ok\n    url: http://app.test\n    path: /sick\n"))
    assert not sick.ok and sick.detail == "http://app.test/sick answered HTTP 503: database down"
    assert run_check(e, spec("  - check: http-ok\n    url: http://app.test\n    path: /sick\n    expect-status: 503\n")).ok
    s3 = run_check(e, spec("  - check: s3-bucket\n    url: http://s3.test\n    buckets: [present, absent]\n"))
    assert not s3.ok and s3.detail == "S3 at http://s3.test: bucket absent missing"
    assert run_check(e, spec("  - check: s3-bucket\n    url: http://s3.test\n    bucket: present\n")).ok


class ProxyOnly:
    """A KubeReads whose service proxy answers from a table (the fake API server has no proxy subresource)."""

    def __init__(self, answers):
        self.answers = answers

    def get(self, ref):
        return None

    def proxy_get(self, namespace, service, port, path):
        return self.answers[(namespace, service, port, path)]


def test_checks_through_the_api_proxy(tmp_path):
    kube = ProxyOnly({("gardenos", "fastapi", 8000, "/health/ready"): (200, "ok"), ("gardenos", "minio", 9000, "/gardenos-storage"): (403, "")})
    e = env(tmp_path, kube=kube)
    http = run_check(e, spec("  - check: http-ok\n    service: fastapi\n    port: 8000\n    path: /health/ready\n"))
    assert http.ok and http.detail == "service gardenos/fastapi:8000/health/ready (API proxy) answered HTTP 200"
    assert run_check(e, spec("  - check: s3-bucket\n    service: minio\n    port: 9000\n    bucket: gardenos-storage\n")).ok
    missing = run_check(e, spec("  - check: deployment-ready\n    deployment: fastapi\n"))
    assert not missing.ok and missing.detail == "Deployment gardenos/fastapi: does not exist"
