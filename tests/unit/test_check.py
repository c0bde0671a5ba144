"""ops/check: the plugin summary and lines, perfdata, per-rule status, --only/--skip, the UNKNOWN result, and the
Prometheus textfile exposition (checked with prometheus_client's parser plus structural rules of the format)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gardenctl.config import parse_config
from gardenctl.errors import ConfigError
from gardenctl.model import Finding, Severity
from gardenctl.ops.check import (
    PerfDatum,
    format_perfdata,
    plugin_lines,
    run_check,
    summarize,
    unknown_result,
    with_finding,
)
from gardenctl.ops.status import Sources
from gardenctl.render.prometheus import check_metrics, escape_label_value, write_textfile
from tests.unit.fixtures.health import ETCD_IDS, NOW, FakeEtcd, FakeHAProxy, FakePatroni, Scenario, load_json, pcluster, pmember, routed_csv

OK, WARNING, CRITICAL, UNKNOWN = Severity.OK, Severity.WARNING, Severity.CRITICAL, Severity.UNKNOWN


def cfg(thresholds: dict | None = None):
    cluster = {
        "patroni": {"endpoints": ["http://10.0.0.11:8008", "http://10.0.0.12:8008", "http://10.0.0.13:8008"]},
        "etcd": {"endpoints": ["http://10.0.0.21:2379"]},
        "haproxy": {"stats-socket": "/nonexistent.sock"},
    }
    if thresholds:
        cluster["thresholds"] = thresholds
    return parse_config(yaml.safe_dump({"clusters": {"prod": cluster}}), Path("/c.yaml")).clusters["prod"]


def check(s: Scenario, **kw):
    return run_check(kw.pop("cluster", cfg()), sources=Sources(FakePatroni(s), FakeEtcd(s), FakeHAProxy(s)), now=NOW, **kw)


def no_leader() -> Scenario:
    return Scenario(
        cluster=pcluster(pmember("node-b", index=1), pmember("node-c", "replica", "stopped", index=2, lag="unknown", timeline=None)),
        haproxy=routed_csv("node-a", ("node-a", "node-b", "node-c"), rw_up=()),
    )


# ------------------------------------------------------------------------------------------------ summary and lines


def test_healthy_check_is_ok_with_a_one_line_summary():
    result = check(Scenario())
    assert result.status is OK and result.exit_code == 0
    assert result.first_line == "OK - leader node-a, 2/2 replicas streaming, etcd 3/3 healthy, rw -> node-a"
    assert all(r.status is OK and r.evaluated for r in result.rules)
    assert {r.rule for r in result.rules} >= {"patroni_leader", "haproxy_rw", "etcd_alarms"}


def test_critical_summary_names_the_first_critical_then_counts():
    result = check(no_leader())
    assert result.status is CRITICAL and result.exit_code == 2
    assert result.first_line == "CRITICAL - no leader (members: node-b replica/streaming, node-c replica/stopped); 1 more critical; 2 warnings"
    lines = plugin_lines(result)
    assert lines[0] == result.first_line
    assert lines[1:] == [
        "CRITICAL: [patroni_leader] no leader (members: node-b replica/streaming, node-c replica/stopped)",
        "  hint: Patroni elects a leader within ttl when a healthy replica can take the leader key; if none appears, check etcd quorum and the members' logs",
        "CRITICAL: [haproxy_rw] read-write (pg_rw): no server UP: writes fail (node-a DOWN, node-b DOWN, node-c DOWN)",
        "WARNING: [patroni_replication] node-c is 'stopped', not streaming",
        "WARNING: [patroni_members] no Patroni member answers for the configured endpoint http://10.0.0.11:8008: node stopped or removed from the cluster",
        "OK: [patroni_lag] replication lag within thresholds (largest 0 B)",
        "OK: [patroni_failover_candidates] the leader is down; Patroni can promote node-b (running, lag within the limit)",
        "OK: [haproxy_ro] read-only (pg_ro) routes to node-b, node-c",
        "OK: [etcd_members] 3 of 3 etcd members healthy",
        "OK: [etcd_quorum] etcd quorum (3 of 3 voters healthy, quorum 2); tolerates 1 more failure",
    ]


@pytest.mark.parametrize(
    "severities,expected",
    [
        ([CRITICAL], "c0"),
        ([CRITICAL, WARNING, WARNING], "c0; 2 warnings"),
        ([WARNING, CRITICAL, CRITICAL, UNKNOWN], "c1; 1 more critical; 1 unknown; 1 warning"),
        ([WARNING], "w0"),
        ([WARNING, WARNING, WARNING], "w0; 2 more warnings"),
        ([UNKNOWN, WARNING], "u0; 1 warning"),
    ],
)
def test_summarize(severities, expected):
    findings = [Finding("r", sev, f"{sev.value[0].lower()}{i}") for i, sev in enumerate(severities)]
    status = Severity.worst(severities)
    assert summarize(status, findings, (), None) == expected


def test_only_and_skip_select_rules_and_the_status_follows():
    result = check(no_leader(), only=["etcd_*"])
    assert result.status is OK
    assert [r.rule for r in result.rules] == ["etcd_reachable", "etcd_members", "etcd_quorum", "etcd_alarms", "etcd_db_size"]
    skipped = check(no_leader(), skip=["patroni_leader", "haproxy_rw"])
    assert skipped.status is WARNING
    assert skipped.first_line == "WARNING - node-c is 'stopped', not streaming; 1 more warning"


def test_unknown_rule_name_fails_before_any_request():
    s = Scenario()
    patroni = FakePatroni(s)
    with pytest.raises(ConfigError, match="unknown rule: leader"):
        run_check(cfg(), sources=Sources(patroni, FakeEtcd(s), FakeHAProxy(s)), only=["leader"], now=NOW)
    assert patroni.calls == 0


def test_a_selected_rule_that_could_not_run_makes_the_check_unknown():
    result = check(Scenario(patroni_down="patroni: connection refused"), only=["patroni_leader", "patroni_lag"])
    assert result.status is UNKNOWN and result.exit_code == 3
    assert result.findings == ()
    assert result.first_line == "UNKNOWN - 2 rules not evaluated (patroni did not answer)"
    assert plugin_lines(result)[1:] == ["UNKNOWN: not evaluated (patroni did not answer): patroni_leader, patroni_lag"]


def test_unknown_result_for_errors_of_the_check_itself():
    result = unknown_result("unknown context 'x' in /c.yaml (known: lab)", None, NOW, hint="gardenctl config get-contexts")
    assert result.exit_code == 3
    assert plugin_lines(result) == ["UNKNOWN - unknown context 'x' in /c.yaml (known: lab)", "  hint: gardenctl config get-contexts"]


def test_with_finding_raises_the_status():
    result = with_finding(check(Scenario()), "cannot write --prometheus file /x.prom: Permission denied")
    assert result.status is UNKNOWN
    assert result.first_line == "UNKNOWN - cannot write --prometheus file /x.prom: Permission denied"


def test_maintenance_age_is_remembered_between_checks(tmp_path):
    s = Scenario(cluster=load_json("patroni/f05_paused.json"))
    first = check(s, state_dir=tmp_path)
    assert first.status is WARNING
    assert "maintenance mode on for at least 0 min (first seen 2026-01-05" in first.first_line
    quick = check(s, state_dir=tmp_path, cluster=cfg({"maintenance-critical-minutes": 1}))
    assert quick.status is WARNING  # first seen "now": still below 1 minute


# ------------------------------------------------------------------------------------------------ perfdata


def test_perfdata_lag_thresholds_and_unknown_values():
    s = Scenario(cluster=pcluster(pmember("node-a", "leader", index=0), pmember("node-b", index=1, lag=512), pmember("node c", index=2, lag="unknown")))
    result = check(s, cluster=cfg({"lag-warning-bytes": 1000, "lag-critical-bytes": 9000}))
    text = format_perfdata(result.perfdata)
    assert text.split(" ")[:3] == ["lag_node-b=512B;1000;9000;0", "'lag_node", "c'=U;1000;9000;0"]
    assert "replicas_streaming=2;;;0;2" in text
    assert "etcd_healthy_voters=3;;;0;3" in text
    assert "etcd_db_etcd-a=49152B;1717986918;;0;2147483648" in text
    first = plugin_lines(result, perfdata=True)[0]
    assert first.startswith("WARNING - node c: lag unknown") and " | lag_node-b=512B;1000;9000;0 " in first


def test_perf_labels_are_quoted_when_needed():
    assert format_perfdata([PerfDatum("it's", 1.5, "s")]) == "'it''s'=1.5s"
    assert format_perfdata([PerfDatum("plain", None)]) == "plain=U"


# ------------------------------------------------------------------------------------------------ prometheus


def parse_strict(text: str) -> dict[str, object]:
    """prometheus_client's parser plus the structural rules node_exporter relies on."""
    assert text.endswith("\n")
    seen_types: dict[str, str] = {}
    helped: set[str] = set()
    series: set[str] = set()
    for line in text.splitlines():
        assert line, "no blank lines"
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helped, f"second HELP for {name}"
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter", "untyped")
            assert name not in seen_types, f"second TYPE for {name}"
            seen_types[name] = kind
        else:
            assert not line.startswith("#")
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            assert name in seen_types and name in helped, f"{name}: sample before its HELP/TYPE"
            key = line.rsplit(" ", 1)[0]
            assert key not in series, f"duplicate series {key}"
            series.add(key)
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(families, name):
    return {tuple(sorted(s.labels.items())): s.value for s in families[name].samples}


def test_prometheus_exposition_of_a_degraded_cluster_is_valid_and_complete():
    s = Scenario(cluster=load_json("patroni/lab_cluster_replica_stopped.json"), alarms=[(ETCD_IDS[0], "NOSPACE")])
    s.etcd[2].answers = False
    s.haproxy = routed_csv("node0", ("node0", "node1", "node2"))
    result = check(s)
    fam = parse_strict(check_metrics(result))
    ctx = ("context", "prod")
    assert samples(fam, "gardenctl_check_status") == {(ctx,): 2.0}
    rules = samples(fam, "gardenctl_check_rule_status")
    assert rules[(ctx, ("layer", "etcd"), ("rule", "etcd_alarms"))] == 2.0
    assert rules[(ctx, ("layer", "patroni"), ("rule", "patroni_replication"))] == 1.0
    assert rules[(ctx, ("layer", "patroni"), ("rule", "patroni_leader"))] == 0.0
    assert samples(fam, "gardenctl_patroni_member_is_leader")[(ctx, ("member", "node0"))] == 1.0
    lag = samples(fam, "gardenctl_patroni_member_lag_bytes")
    assert lag[(ctx, ("member", "node1"))] == 0.0
    assert math.isnan(lag[(ctx, ("member", "node2"))])  # unknown, not 0
    assert (ctx, ("member", "node0")) not in lag  # the leader has no lag
    info = samples(fam, "gardenctl_patroni_member_info")
    assert info[(ctx, ("member", "node2"), ("role", "replica"), ("state", "stopped"))] == 1.0
    healthy = samples(fam, "gardenctl_etcd_member_healthy")
    assert healthy[(ctx, ("member", "etcd-c"), ("member_id", "5555555555555555"))] == 0.0
    assert healthy[(ctx, ("member", "etcd-a"), ("member_id", "aaaaaaaaaaaaaaaa"))] == 1.0
    assert samples(fam, "gardenctl_etcd_member_db_size_bytes")[(ctx, ("member", "etcd-a"), ("member_id", "aaaaaaaaaaaaaaaa"))] == 49152.0
    assert samples(fam, "gardenctl_etcd_alarm") == {(("alarm", "NOSPACE"), ctx, ("member", "etcd-a"), ("member_id", "aaaaaaaaaaaaaaaa")): 1.0}
    assert samples(fam, "gardenctl_etcd_db_quota_bytes") == {(ctx,): float(2 * 1024**3)}
    assert samples(fam, "gardenctl_layer_up") == {(ctx, ("layer", "patroni")): 1.0, (ctx, ("layer", "etcd")): 1.0, (ctx, ("layer", "haproxy")): 1.0}
    assert samples(fam, "gardenctl_haproxy_server_up")[(("backend", "pg_rw"), ctx, ("server", "node0"))] == 1.0


def test_prometheus_exposition_when_the_check_could_not_run():
    fam = parse_strict(check_metrics(unknown_result("no config file at /x", "prod", NOW)))
    assert samples(fam, "gardenctl_check_status") == {(("context", "prod"),): 3.0}
    assert samples(fam, "gardenctl_check_timestamp_seconds") == {(("context", "prod"),): NOW.timestamp()}
    assert "gardenctl_patroni_members" not in fam


def test_prometheus_label_values_are_escaped():
    s = Scenario(cluster=pcluster(pmember('no"de\\a\nb', "leader", index=0), pmember("node-b", index=1)))
    text = check_metrics(check(s))
    assert 'member="no\\"de\\\\a\\nb"' in text
    fam = parse_strict(text)
    members = {dict(k)["member"] for k in samples(fam, "gardenctl_patroni_member_is_leader")}
    assert members == {'no"de\\a\nb', "node-b"}
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_textfile_is_written_atomically(tmp_path):
    target = tmp_path / "gardenctl.prom"
    target.write_text("old\n")
    inode_before = os.stat(target).st_ino
    write_textfile(target, "new 1\n")
    assert target.read_text() == "new 1\n"
    assert os.stat(target).st_ino != inode_before  # replaced by rename, never rewritten in place
    assert oct(os.stat(target).st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gardenctl.prom"]  # no temporary file left


def test_textfile_write_failure_leaves_nothing_behind(tmp_path):
    with pytest.raises(OSError):
        write_textfile(tmp_path / "missing-dir" / "x.prom", "x 1\n")
    assert list(tmp_path.iterdir()) == []


def test_check_result_json_document_shape():
    from gardenctl.render import document

    doc = document(check(no_leader()))
    assert list(doc)[:4] == ["kind", "version", "context", "status"]
    assert doc["kind"] == "CheckResult" and doc["version"] == 1
    assert doc["status"] == "CRITICAL" and doc["exit_code"] == 2
    assert doc["summary"].startswith("no leader")
    assert set(doc["findings"][0]) == {"rule", "severity", "message", "layer", "subject", "hint"}
    assert set(doc["rules"][0]) == {"rule", "layer", "status", "evaluated", "findings", "reason"}
    assert "_report" not in doc and "report" not in doc
    assert doc["perfdata"][0] == {"label": "lag_node-b", "value": 0, "unit": "B", "warn": 1048576, "crit": 16777216, "min": 0, "max": None}


