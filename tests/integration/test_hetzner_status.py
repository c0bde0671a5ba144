"""The Hetzner layer of `gardenctl status`: plain httpx against the (fake) API, no hcloud import."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from gardenctl.config import load_config, select_cluster
from gardenctl.errors import BackendError
from gardenctl.model import Probe, Severity
from gardenctl.ops import rules as rules_mod
from tests.fakes.hetzner.fixture import fake_hcloud  # noqa: F401  (fixture)
from tests.integration._bootstrap_support import hetzner_section, write_config


MODULE = "gardenctl.ops.hetzner_status"


@pytest.fixture(scope="module", autouse=True)
def layer():
    """Import the layer (which registers its rules) only for these tests, and put the rule registry back after them:
    other suites count the registered rules."""
    saved = dict(rules_mod.RULES)
    had = MODULE in sys.modules
    import importlib

    module = importlib.import_module(MODULE)
    globals().update(collect=module.collect, HetznerStatus=module.HetznerStatus)
    yield module
    rules_mod.RULES.clear()
    rules_mod.RULES.update(saved)
    if not had:
        sys.modules.pop(MODULE, None)


def _cluster(tmp_path, fake):
    return select_cluster(load_config(write_config(tmp_path, hetzner_section(endpoint=fake.endpoint))))


def _seed(fake, names_roles, **kw):
    out = {}
    for name, role in names_roles:
        out[name] = fake.add_server(name, server_type=kw.get("server_type", "cx23"), labels={"gardenos/cluster": "garden", "gardenos/role": role})
    return out


def _findings(status):
    from datetime import datetime, timezone

    inp = rules_mod.RuleInput(probes={"hetzner": Probe(status)}, settings=rules_mod.RuleSettings(), now=datetime.now(timezone.utc))
    return [f for name in ("hetzner_servers", "hetzner_server_type_retired") for f in rules_mod.RULES[name].fn(inp)]


def test_all_running(fake_hcloud, tmp_path, monkeypatch):
    monkeypatch.setenv("HCLOUD_TOKEN", fake_hcloud.token)
    _seed(fake_hcloud, [("garden-db-1", "db"), ("garden-db-2", "db"), ("garden-db-3", "db"), ("garden-k3s-server-1", "k3s-server"),
                        ("garden-k3s-agent-1", "k3s-agent"), ("garden-k3s-agent-2", "k3s-agent")])
    fake_hcloud.add_server("other-db-1", labels={"gardenos/cluster": "other"})
    cluster = _cluster(tmp_path, fake_hcloud)
    from gardenctl.ops.status import optional_layers_for

    assert optional_layers_for(cluster)["hetzner"] is collect  # registered through the status engine's hook
    status = collect(cluster, timeout=5)
    assert [s.name for s in status.servers] == sorted(f"garden-{n}" for n in ("db-1", "db-2", "db-3", "k3s-server-1", "k3s-agent-1", "k3s-agent-2"))
    assert all(s.status == "running" and s.location == "fsn1" for s in status.servers)
    assert status.summary == "6/6 servers running" and status.missing == ()
    assert [f.severity for f in _findings(status)] == [Severity.OK]
    assert all(r.method == "GET" for r in fake_hcloud.requests)
    assert {r.path for r in fake_hcloud.requests} == {"/servers", "/server_types"}
    assert fake_hcloud.find_requests("GET", "/servers")[0].query["label_selector"] == ["gardenos/cluster=garden"]


def test_retired_type_in_its_location_is_a_warning(fake_hcloud, tmp_path, monkeypatch):
    monkeypatch.setenv("HCLOUD_TOKEN", fake_hcloud.token)
    servers = _seed(fake_hcloud, [("garden-db-1", "db"), ("garden-db-2", "db"), ("garden-db-3", "db"), ("garden-k3s-server-1", "k3s-server"),
                                  ("garden-k3s-agent-1", "k3s-agent"), ("garden-k3s-agent-2", "k3s-agent")])
    cx22 = next(t for t in fake_hcloud.server_types.values() if t["name"] == "cx22")
    with fake_hcloud.lock:
        servers["garden-db-2"]["server_type"] = copy.deepcopy(cx22)  # created before the retirement
    status = collect(_cluster(tmp_path, fake_hcloud), timeout=5)
    row = next(s for s in status.servers if s.name == "garden-db-2")
    assert row.type_problem == "retired in fsn1 since 2026-01-01"
    findings = _findings(status)
    warn = [f for f in findings if f.rule == "hetzner_server_type_retired"]
    assert len(warn) == 1 and warn[0].severity == Severity.WARNING and "cx22" in warn[0].message


def test_missing_and_stopped_servers(fake_hcloud, tmp_path, monkeypatch):
    monkeypatch.setenv("HCLOUD_TOKEN", fake_hcloud.token)
    servers = _seed(fake_hcloud, [("garden-db-1", "db"), ("garden-db-2", "db"), ("garden-k3s-server-1", "k3s-server"), ("garden-k3s-agent-1", "k3s-agent")])
    with fake_hcloud.lock:
        servers["garden-k3s-agent-1"]["status"] = "off"
    status = collect(_cluster(tmp_path, fake_hcloud), timeout=5)
    assert status.missing == ("garden-db-3", "garden-k3s-agent-2")
    assert status.summary == "3/4 servers running, 2 missing"
    sev = {(f.subject, f.severity) for f in _findings(status)}
    assert ("garden-db-3", Severity.CRITICAL) in sev and ("garden-k3s-agent-2", Severity.WARNING) in sev
    assert ("garden-k3s-agent-1", Severity.WARNING) in sev


def test_api_error_is_a_backend_error(fake_hcloud, tmp_path, monkeypatch):
    monkeypatch.setenv("HCLOUD_TOKEN", "wrong")
    with pytest.raises(BackendError) as err:
        collect(_cluster(tmp_path, fake_hcloud), timeout=5)
    assert err.value.code == "unauthorized"


def test_status_layer_does_not_import_hcloud():
    code = "import sys, gardenctl.ops.hetzner_status; print('hcloud' in sys.modules, 'kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False False"
