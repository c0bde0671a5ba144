"""Phase playbooks are data validated on load: every mistake is one error naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gardenctl.errors import ConfigError, ExitCode
from gardenctl.ops.migrate.playbook import CHECK_KINDS, find_playbook_dir, load_phase_playbook, parse_phase_playbook

ROOT = Path(__file__).resolve().parents[2]
SRC = "pb.yaml"


def parse(text: str, expected: int | None = None):
    return parse_phase_playbook(text, SRC, expected_phase=expected)


def error(text: str, expected: int | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        parse(text, expected)
    assert err.value.exit_code == ExitCode.CONFIG
    return err.value.message


@pytest.mark.parametrize("phase", [1, 2, 3, 4, 5])
def test_shipped_playbooks_load(phase):
    pb = load_phase_playbook(find_playbook_dir(), phase)
    assert pb.phase == phase and pb.title
    kinds = [c.kind for c in pb.preflight]
    assert "cluster-healthy" in kinds and "drill-passed" in kinds  # every phase: check OK and a recent drill
    drill = next(c for c in pb.preflight if c.kind == "drill-passed")
    assert drill.overridable and drill.params["max_age_days"] == 7


def test_shipped_phase_2_checks_fastapi_and_row_level_security():
    pb = load_phase_playbook(find_playbook_dir(), 2)
    by_kind = {c.kind: c for c in pb.preflight}
    assert by_kind["deployment-ready"].params == {"object": "fastapi", "namespace": None}
    assert by_kind["http-ok"].params["service"] == "fastapi" and by_kind["http-ok"].params["path"] == "/health/ready"
    assert by_kind["rls-enabled"].params == {"schemas": ("public",), "roles": ("anon", "authenticated")}
    assert not any(c.overridable for c in pb.preflight if c.kind != "drill-passed")


def test_shipped_phase_4_and_5_check_minio_buckets():
    post4 = {c.kind: c for c in load_phase_playbook(find_playbook_dir(), 4).post_checks}
    assert post4["s3-bucket"].params["buckets"] == ("gardenos-storage",) and post4["s3-bucket"].params["service"] == "minio"
    pre5 = {c.kind: c for c in load_phase_playbook(find_playbook_dir(), 5).preflight}
    assert pre5["s3-bucket"].params["port"] == 9000


def test_a_full_playbook_parses_with_defaults():
    pb = parse(
        """
phase: 2
title: t
rollout-timeout-seconds: 90
preflight:
  - check: http-ok
    url: http://x:8000
    path: health
    expect-status: [200, 204]
  - check: drill-passed
  - check: s3-bucket
    url: https://s3.example
    buckets: [a, b]
post-checks:
  - check: job-complete
    job: j
    namespace: other
    name: the job finished
"""
    )
    assert pb.rollout_timeout_seconds == 90.0
    http, drill, s3 = pb.preflight
    assert http.params["path"] == "/health" and http.params["expect_status"] == (200, 204) and http.name == "http-ok http://x:8000"
    assert drill.params == {"max_age_days": 7.0, "playbook": None} and not drill.overridable
    assert s3.params["buckets"] == ("a", "b") and s3.name == "s3-bucket a, b"
    assert pb.post_checks[0].params == {"object": "j", "namespace": "other"} and pb.post_checks[0].name == "the job finished"
    assert pb.preflight[0].where == "pb.yaml:6"


def test_unknown_check_names_line_key_and_known_checks():
    msg = error("phase: 1\ntitle: t\npreflight:\n  - check: dril-passed\n")
    assert msg.startswith("pb.yaml:4: preflight[1].check: unknown check 'dril-passed'")
    for kind in CHECK_KINDS:
        assert kind in msg


@pytest.mark.parametrize(
    "text, expected",
    [
        ("title: t\n", "pb.yaml:1: phase: is required but missing"),
        ("phase: 0\ntitle: t\n", "pb.yaml:1: phase: must be 1 or more"),
        ("phase: two\ntitle: t\n", "pb.yaml:1: phase: expected an integer, got a string"),
        ("phase: 1\n", "pb.yaml:1: title: is required but missing"),
        ("phase: 1\ntitle: t\ntimeout: 3\n", "pb.yaml:3: timeout: unknown key"),
        ("phase: 1\ntitle: t\nrollout-timeout-seconds: -1\n", "pb.yaml:3: rollout-timeout-seconds: must be a positive number"),
        ("phase: 1\ntitle: t\npreflight: {check: x}\n", "pb.yaml:3: preflight: expected a list, got a mapping"),
        ("phase: 1\ntitle: t\npreflight:\n  - cluster-healthy\n", "pb.yaml:3: preflight[1]: expected a mapping, got a string"),
        ("phase: 1\ntitle: t\npreflight:\n  - check: deployment-ready\n", "pb.yaml:4: preflight[1].deployment: is required but missing"),
        ("phase: 1\ntitle: t\npreflight:\n  - check: deployment-ready\n    deployment: a\n    replicas: 2\n", "pb.yaml:6: preflight[1].replicas: unknown key"),
        ("phase: 1\ntitle: t\npreflight:\n  - check: http-ok\n    service: a\n", "pb.yaml:5: preflight[1].port: http-ok: service needs a port"),
        ("phase: 1\ntitle: t\npreflight:\n  - check: http-ok\n", "pb.yaml:4: preflight[1]: http-ok: needs url (http(s)://...) or service + port"),
        ("phase: 1\ntitle: t\npreflight:\n  - check: http-ok\n    url: ftp://x\n", "pb.yaml:5: preflight[1].url: expected an http:// or https:// URL"),
        ("phase: 1\ntitle: t\npreflight:\n  - check: http-ok\n    service: a\n    port: 70000\n", "pb.yaml:6: preflight[1].port: must be a port number"),
        ("phase: 1\ntitle: t\npreflight:\n  - check: http-ok\n    url: http://x\n    expect-status: [700]\n", "pb.yaml:6: preflight[1].expect-status: expected HTTP status codes"),
        ("phase: 1\ntitle: t\npost-checks:\n  - check: s3-bucket\n    url: http://x\n", "pb.yaml:4: post-checks[1]: s3-bucket: needs bucket"),
        ("phase: 1\ntitle: t\npreflight:\n  - check: drill-passed\n    max-age-days: yes\n", "pb.yaml:5: preflight[1].max-age-days: expected a number, got a boolean"),
        ("phase: 1\ntitle: t\npreflight:\n  - check: rls-enabled\n    schemas: public\n", "pb.yaml:5: preflight[1].schemas: expected a list, got a string"),
        ("phase: 1\ntitle: t\npreflight:\n  - check: cluster-healthy\n    overridable: sure\n", "pb.yaml:5: preflight[1].overridable: expected true or false, got a string"),
        ("phase: 1\ntitle: t\ntitle: u\n", "pb.yaml: line 3: duplicate key 'title'"),
        ("phase: 1\ntitle: [t\n", "pb.yaml:3: malformed YAML"),
    ],
)
def test_mistakes_name_file_line_and_key(text, expected):
    assert error(text).startswith(expected)


def test_playbook_of_another_phase_is_refused():
    assert error("phase: 3\ntitle: t\n", expected=2).startswith("pb.yaml:1: phase: says phase 3, but the file is the playbook of phase 2")


def test_missing_playbook_and_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"no playbook for phase 4 .*phase-4.yaml"):
        load_phase_playbook(tmp_path, 4)
    with pytest.raises(ConfigError, match="not a directory"):
        find_playbook_dir(tmp_path / "nope")
    (tmp_path / "phase-4.yml").write_text("phase: 4\ntitle: from yml\n")
    assert load_phase_playbook(tmp_path, 4).title == "from yml"


@pytest.mark.parametrize("phase", [1, 2, 3, 4, 5])
def test_shipped_skip_rules_name_real_rules(phase):
    import gardenctl.ops.k3s_status  # noqa: F401  (registers the k3s rules)
    from gardenctl.ops.rules import rule_names

    healthy = next(c for c in load_phase_playbook(find_playbook_dir(), phase).preflight if c.kind == "cluster-healthy")
    assert healthy.params["skip_rules"] == ("k3s_workloads_ready", "k3s_pods_restarting")
    assert set(healthy.params["skip_rules"]) <= set(rule_names())
