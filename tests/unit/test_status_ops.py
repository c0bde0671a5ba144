"""ops/status.collect with hand-written in-memory adapters: concurrency, per-layer deadlines, unreachable layers,
the etcd alarm list that needs quorum, maintenance age tracking, optional layers; and the adapter factory."""

from __future__ import annotations

import sys
import textwrap
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from gardenctl.config import parse_config
from gardenctl.errors import ConfigError
from gardenctl.model import Severity
from gardenctl.ops import status as status_mod
from gardenctl.ops.clients import effective_timeout, etcd_client, haproxy_client, patroni_client, postgres_endpoint
from gardenctl.ops.rules import RULES
from gardenctl.ops.status import OptionalLayer, PauseTracker, Sources, collect, register_optional_layer
from tests.unit.fixtures.health import NOW, FakeEtcd, FakeHAProxy, FakePatroni, Scenario, load_json


def cluster_config(extra: str = "", *, patroni_extra: dict | None = None) -> object:
    """A parsed context ``test``; ``extra`` is YAML added to the cluster section."""
    cluster = {
        "scope": "pg-main",
        "request-timeout-seconds": 0.5,
        "patroni": {"endpoints": ["http://10.0.0.11:8008", "http://10.0.0.12:8008", "http://10.0.0.13:8008"], **(patroni_extra or {})},
        "etcd": {"endpoints": ["http://10.0.0.21:2379"]},
        "haproxy": {"stats-socket": "/nonexistent/haproxy.sock", "rw-address": "10.0.0.10:5000"},
    }
    cluster.update(yaml.safe_load(extra) or {})
    text = yaml.safe_dump({"clusters": {"test": cluster}})
    return parse_config(text, Path("/test/config.yaml")).clusters["test"]


def sources(s: Scenario, **kw) -> Sources:
    return Sources(patroni=FakePatroni(s, block=kw.get("patroni_block")), etcd=FakeEtcd(s, alarms_block=kw.get("alarms_block"), block=kw.get("etcd_block")), haproxy=FakeHAProxy(s))


def by_rule(report, name):
    return [(f.severity, f.message) for f in report.findings if f.rule == name]


# ------------------------------------------------------------------------------------------------ collect


def test_collect_healthy_cluster_joins_every_layer():
    s = Scenario()
    report = collect(cluster_config(), sources=sources(s), now=NOW)
    assert report.context == "test"
    assert report.collected_at == NOW
    assert report.patroni.ok and report.etcd.ok and report.haproxy.ok
    assert [m.name for m in report.patroni.value.members] == ["node-a", "node-b", "node-c"]
    assert [m.name for m in report.etcd.value.members] == ["etcd-a", "etcd-b", "etcd-c"]
    assert all(m.healthy for m in report.etcd.value.members)
    assert report.etcd.value.quota_bytes == 2 * 1024**3  # from the config (etcd 3.4 does not report it)
    assert report.haproxy.value.rw_target == "node-a"
    assert report.severity is Severity.OK
    assert all(p.elapsed_ms is not None for p in (report.patroni, report.etcd, report.haproxy))
    assert report.hetzner is None and report.k3s is None


def test_unreachable_patroni_becomes_a_probe_error_and_the_rest_renders():
    s = Scenario(patroni_down="patroni: no member answered GET /cluster: connection refused")
    report = collect(cluster_config(), sources=sources(s), now=NOW)
    assert report.patroni.value is None
    assert report.patroni.error == "patroni: no member answered GET /cluster: connection refused"
    assert report.etcd.ok and report.haproxy.ok
    assert by_rule(report, "patroni_reachable")[0][0] is Severity.UNKNOWN
    assert report.severity is Severity.UNKNOWN


def test_a_layer_that_hangs_is_cut_at_its_deadline():
    s = Scenario()
    gate = threading.Event()
    try:
        report = collect(cluster_config(), sources=sources(s, patroni_block=gate), timeout=0.05, now=NOW)
    finally:
        gate.set()
    assert report.patroni.error == "patroni: no answer within 0.6s"  # 2 x timeout + 0.5 s
    assert report.etcd.ok and report.haproxy.ok
    assert by_rule(report, "etcd_quorum")[0][0] is Severity.OK


def test_etcd_alarm_list_hanging_without_quorum_is_unknown_not_empty():
    s = Scenario()
    gate = threading.Event()
    try:
        report = collect(cluster_config(), sources=sources(s, alarms_block=gate), timeout=0.05, now=NOW)
    finally:
        gate.set()
    etcd = report.etcd.value
    assert etcd is not None and len(etcd.members) == 3
    assert etcd.alarms == ()
    assert etcd.alarms_error == "no answer within 0.05s (listing alarms needs quorum)"
    assert by_rule(report, "etcd_alarms")[0][0] is Severity.UNKNOWN


def test_etcd_members_down_are_unhealthy_with_their_reason():
    s = Scenario()
    s.etcd[1].answers = False
    s.etcd[2].answers = False
    s.etcd[0].has_leader = False
    report = collect(cluster_config(), sources=sources(s), now=NOW)
    members = {m.name: m for m in report.etcd.value.members}
    assert members["etcd-a"].healthy is False and members["etcd-a"].error == "no leader"
    assert members["etcd-b"].healthy is False and members["etcd-b"].error == "connection refused"
    assert by_rule(report, "etcd_quorum")[0][0] is Severity.CRITICAL


def test_etcd_member_list_failing_is_an_etcd_probe_error():
    s = Scenario(etcd_down="etcd: no endpoint answered: http://10.0.0.21:2379: connection refused")
    report = collect(cluster_config(), sources=sources(s), now=NOW)
    assert report.etcd.error == "etcd: no endpoint answered: http://10.0.0.21:2379: connection refused"
    assert report.patroni.ok


def test_a_bug_in_an_adapter_is_not_disguised_as_unreachable():
    class Broken(FakeHAProxy):
        def get_state(self):
            raise ZeroDivisionError("bug")

    s = Scenario()
    with pytest.raises(ZeroDivisionError):
        collect(cluster_config(), sources=Sources(FakePatroni(s), FakeEtcd(s), Broken(s)), now=NOW)


def test_collect_without_evaluation_has_no_findings():
    report = collect(cluster_config(), sources=sources(Scenario()), now=NOW, evaluate=False)
    assert report.findings == ()


def test_configured_endpoints_reach_the_rules():
    s = Scenario()
    s.cluster["members"] = s.cluster["members"][:2]
    report = collect(cluster_config(), sources=sources(s), now=NOW)
    assert by_rule(report, "patroni_members") == [
        (Severity.WARNING, "no Patroni member answers for the configured endpoint http://10.0.0.13:8008: node stopped or removed from the cluster")
    ]


def test_thresholds_come_from_the_context():
    s = Scenario()
    s.cluster["members"][1]["lag"] = 5000
    cfg = cluster_config("thresholds:\n  lag-warning-bytes: 1000\n  lag-critical-bytes: 2000\n")
    report = collect(cfg, sources=sources(s), now=NOW)
    assert by_rule(report, "patroni_lag")[0][0] is Severity.CRITICAL


# ------------------------------------------------------------------------------------------------ maintenance age


def test_pause_tracker_remembers_the_first_sighting(tmp_path):
    times = iter([NOW, NOW + timedelta(minutes=30), NOW + timedelta(minutes=90)])
    tracker = PauseTracker(tmp_path / "state", "prod", clock=lambda: next(times))
    assert tracker.observe(False) is None
    first = tracker.observe(True)
    assert first == NOW
    assert tracker.observe(True) == NOW  # not moved by later sightings
    assert tracker.observe(None) == NOW  # Patroni did not answer: keep what we knew
    other = PauseTracker(tmp_path / "state", "staging", clock=lambda: NOW)
    assert other.observe(False) is None
    assert tracker.observe(False) is None
    assert (tmp_path / "state" / PauseTracker.FILE).read_text().strip() == "{}"
    assert tracker.observe(True) == NOW + timedelta(minutes=30)


def test_pause_tracker_on_an_unwritable_state_dir_reports_unknown_age(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    tracker = PauseTracker(blocker / "state", "prod", clock=lambda: NOW)
    assert tracker.observe(True) is None


def test_collect_turns_a_long_pause_critical(tmp_path):
    s = Scenario(cluster=load_json("patroni/f05_paused.json"))
    state = tmp_path / "state"
    PauseTracker(state, "test", clock=lambda: NOW - timedelta(minutes=75)).observe(True)
    report = collect(cluster_config(), sources=sources(s), now=NOW, paused_since=PauseTracker(state, "test").observe)
    assert by_rule(report, "patroni_maintenance") == [
        (Severity.CRITICAL, "maintenance mode on for at least 75 min (first seen 2026-01-05 10:45:00Z): automatic failover is off")
    ]


# ------------------------------------------------------------------------------------------------ optional layers


PLUGIN = '''
from gardenctl.errors import BackendUnreachable
from gardenctl.model import Finding, Severity
from gardenctl.ops.rules import rule

CALLS = []


def collect(cluster, *, timeout):
    CALLS.append((cluster.name, timeout))
    if cluster.kubernetes.get("down"):
        raise BackendUnreachable("k3s: https://10.0.0.30:6443: connection refused")
    return {"nodes": 3, "ready": cluster.kubernetes.get("ready", 3)}


@rule("k3s_plugin_test_ready", layer="k3s", needs=("k3s",), description="test plugin rule")
def _ready(inp):
    v = inp.value("k3s")
    sev = Severity.OK if v["ready"] == v["nodes"] else Severity.WARNING
    return [Finding("", sev, f"{v['ready']} of {v['nodes']} nodes ready")]
'''


@pytest.fixture
def k3s_plugin(tmp_path, monkeypatch):
    (tmp_path / "gardenctl_test_k3s_layer.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = dict(status_mod.OPTIONAL_LAYERS)
    register_optional_layer(OptionalLayer(field="k3s", config_key="kubernetes", module="gardenctl_test_k3s_layer"))
    yield
    status_mod.OPTIONAL_LAYERS.clear()
    status_mod.OPTIONAL_LAYERS.update(saved)
    RULES.pop("k3s_plugin_test_ready", None)
    sys.modules.pop("gardenctl_test_k3s_layer", None)


def test_optional_layer_is_not_imported_without_its_config_section(k3s_plugin):
    report = collect(cluster_config(), sources=sources(Scenario()), now=NOW)
    assert report.k3s is None
    assert "gardenctl_test_k3s_layer" not in sys.modules


def test_optional_layer_is_collected_and_judged_when_configured(k3s_plugin):
    report = collect(cluster_config("kubernetes:\n  ready: 2\n"), sources=sources(Scenario()), now=NOW)
    assert report.k3s is not None and report.k3s.value == {"nodes": 3, "ready": 2}
    assert sys.modules["gardenctl_test_k3s_layer"].CALLS == [("test", 0.5)]
    assert by_rule(report, "k3s_plugin_test_ready") == [(Severity.WARNING, "2 of 3 nodes ready")]


def test_optional_layer_unreachable_is_unknown_and_the_rest_renders(k3s_plugin):
    report = collect(cluster_config("kubernetes:\n  down: true\n"), sources=sources(Scenario()), now=NOW)
    assert report.k3s.error == "k3s: https://10.0.0.30:6443: connection refused"
    assert by_rule(report, "k3s_reachable") == [(Severity.UNKNOWN, "K3s API server did not answer: k3s: https://10.0.0.30:6443: connection refused")]
    assert by_rule(report, "k3s_plugin_test_ready") == []
    assert report.patroni.ok


def test_optional_layer_whose_module_does_not_exist_is_skipped():
    saved = dict(status_mod.OPTIONAL_LAYERS)
    try:
        register_optional_layer(OptionalLayer(field="hetzner", config_key="hetzner", module="gardenctl_no_such_layer_module"))
        report = collect(cluster_config("hetzner:\n  token-env: X\n"), sources=sources(Scenario()), now=NOW)
        assert report.hetzner is None
    finally:
        status_mod.OPTIONAL_LAYERS.clear()
        status_mod.OPTIONAL_LAYERS.update(saved)


def test_optional_layer_needs_a_report_field():
    with pytest.raises(ValueError, match="no field 'dns'"):
        register_optional_layer(OptionalLayer(field="dns", config_key="dns", module="x"))


# ------------------------------------------------------------------------------------------------ adapter factory


def test_patroni_client_from_config(tmp_path):
    secret = tmp_path / "rest"
    secret.write_text("s3cret\n")
    cfg = cluster_config(patroni_extra={"username": "patroni", "password-file": str(secret)})
    client = patroni_client(cfg, timeout=1.5)
    try:
        assert client.endpoints == ("http://10.0.0.11:8008", "http://10.0.0.12:8008", "http://10.0.0.13:8008")
        assert (client.http.username, client.http.password, client.http.timeout_seconds) == ("patroni", "s3cret", 1.5)
        assert client.http.verify is False  # plain http: nothing to verify, skip loading the CA bundle
    finally:
        client.close()
    with patroni_client(cfg) as default:
        assert default.http.timeout_seconds == 0.5  # the context's request-timeout-seconds


def test_https_endpoints_keep_verification():
    text = textwrap.dedent(
        """
        clusters:
          t:
            patroni: {endpoints: ["https://db1:8008"]}
            etcd: {endpoints: ["https://db1:2379"]}
            haproxy: {stats-url: "http://db1:7000/stats"}
        """
    )
    cfg = parse_config(text, Path("/x.yaml")).clusters["t"]
    with patroni_client(cfg) as p, etcd_client(cfg) as e:
        assert p.http.verify is True and e.http.verify is True
    hp = haproxy_client(cfg, timeout=3)
    assert (hp.stats_url, hp.stats_socket, hp.timeout_seconds, hp.rw_backend) == ("http://db1:7000/stats", None, 3.0, "pg_rw")


def test_missing_etcd_password_file_is_a_config_error():
    # etcd asks for credentials on reads too; Patroni does not (see test_status_cli: read without its password)
    cfg = cluster_config('etcd: {endpoints: ["http://10.0.0.21:2379"], username: root, password-file: /nonexistent/secret}')
    with pytest.raises(ConfigError, match="cannot read password file /nonexistent/secret"):
        collect(cfg, now=NOW)


def test_missing_patroni_password_file_is_a_config_error_for_a_changing_client_only():
    cfg = cluster_config(patroni_extra={"username": "patroni", "password-file": "/nonexistent/secret"})
    with pytest.raises(ConfigError, match="cannot read password file /nonexistent/secret"):
        patroni_client(cfg)
    with patroni_client(cfg, read_only=True) as p:
        assert p.http.username is None and p.http.password is None


def test_postgres_endpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASS_TEST", "pw")
    cfg = cluster_config("postgres:\n  password-env: PGPASS_TEST\n  user: app\n")
    ep = postgres_endpoint(cfg, "rw")
    assert (ep.host, ep.port, ep.user, ep.password, ep.connect_timeout_seconds) == ("10.0.0.10", 5000, "app", "pw", 3)
    with pytest.raises(ConfigError, match="haproxy.ro-address is not set"):
        postgres_endpoint(cfg, "ro")


def test_timeout_must_be_positive():
    assert effective_timeout(cluster_config(), None) == 0.5
    with pytest.raises(ConfigError):
        effective_timeout(cluster_config(), 0)


def test_report_severity_and_replace_keep_types():
    report = collect(cluster_config(), sources=sources(Scenario()), now=NOW)
    again = replace(report, collected_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert again.severity is Severity.OK
