"""`gardenctl bootstrap ...` run as a user would (a new process, no TTY), against the fake Hetzner API."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import run_cli
from tests.fakes.hetzner.fixture import check_fake, start_fake_hcloud
from tests.integration._bootstrap_support import hetzner_section, write_config


@pytest.fixture
def fake_hcloud():
    """Actions finish on their first observation: the CLI polls on the real clock."""
    fake = start_fake_hcloud(action_polls=0)
    try:
        yield fake
    finally:
        fake.stop()
    check_fake(fake)


@pytest.fixture
def setup(fake_hcloud, tmp_path):
    cfg = write_config(tmp_path, hetzner_section(endpoint=fake_hcloud.endpoint))
    env = {"HCLOUD_TOKEN": fake_hcloud.token, "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    return cfg, env, tmp_path


def test_plan_apply_again_destroy_through_the_cli(fake_hcloud, setup):
    cfg, env, tmp_path = setup
    plan = run_cli("bootstrap", "plan", config=cfg, env=env)
    assert plan.exit_code == 0, plan
    assert "Plan: 12 to create, 0 to change, 0 unchanged." in plan.stdout
    assert "+  server" in plan.stdout.replace("  ", "  ") or "garden-db-1" in plan.stdout
    assert fake_hcloud.count("POST") == 0

    refused = run_cli("bootstrap", "apply", "--infra-only", config=cfg, env=env)
    assert refused.exit_code == 7 and "not a terminal" in refused.stderr and fake_hcloud.count("POST") == 0

    applied = run_cli("bootstrap", "apply", "--infra-only", "--yes", "-o", "json", config=cfg, env=env)
    assert applied.exit_code == 0, applied
    doc = json.loads(applied.stdout)
    assert doc["kind"] == "BootstrapApply" and len(doc["created"]) == 12
    assert sorted(n["private_ip"] for n in doc["nodes"]) == ["10.0.1.101", "10.0.1.102", "10.0.1.11", "10.0.1.12", "10.0.1.13", "10.0.1.21"]
    secrets = tmp_path / "state" / "gardenctl" / "bootstrap" / "garden" / "secrets.json"
    assert stat.S_IMODE(os.stat(secrets).st_mode) == 0o600
    journal = (tmp_path / "state" / "gardenctl" / "journal.jsonl").read_text().splitlines()
    assert json.loads(journal[-1])["command"] == "bootstrap apply" and json.loads(journal[-1])["outcome"] == "succeeded"

    posts_before = fake_hcloud.count("POST")
    again = run_cli("bootstrap", "apply", "--infra-only", "--yes", config=cfg, env=env)
    assert again.exit_code == 0, again
    assert "Plan: 0 to create, 0 to change, 12 unchanged." in again.stdout
    assert fake_hcloud.count("POST") == posts_before  # zero creates, zero actions

    no_name = run_cli("bootstrap", "destroy", "--yes", config=cfg, env=env)
    assert no_name.exit_code == 7 and "--cluster-name" in no_name.stderr
    wrong = run_cli("bootstrap", "destroy", "--yes", "--cluster-name", "prod", config=cfg, env=env)
    assert wrong.exit_code == 7 and "does not match" in wrong.stderr
    no_tty = run_cli("bootstrap", "destroy", config=cfg, env=env)
    assert no_tty.exit_code == 7 and "not a terminal" in no_tty.stderr
    assert fake_hcloud.count("DELETE") == 0

    gone = run_cli("bootstrap", "destroy", "--yes", "--cluster-name", "garden", config=cfg, env=env)
    assert gone.exit_code == 0, gone
    assert "12 resources deleted" in gone.stdout
    assert not fake_hcloud.servers and not fake_hcloud.networks and not fake_hcloud.firewalls


def test_protected_cluster_refuses_destroy(fake_hcloud, tmp_path):
    cfg = write_config(tmp_path, hetzner_section(endpoint=fake_hcloud.endpoint, protected=True))
    env = {"HCLOUD_TOKEN": fake_hcloud.token, "XDG_STATE_HOME": str(tmp_path / "state")}
    fake_hcloud.add_server("garden-db-1", labels={"gardenos/cluster": "garden", "gardenos/role": "db"})
    res = run_cli("bootstrap", "destroy", "--yes", "--cluster-name", "garden", config=cfg, env=env)
    assert res.exit_code == 7 and "protected" in res.stderr
    assert fake_hcloud.count("DELETE") == 0 and len(fake_hcloud.servers) == 1


def test_retired_type_and_missing_token_are_one_line_errors(fake_hcloud, tmp_path):
    pools = {"db": {"count": 3, "server-type": "cx22"}, "k3s-server": {"count": 1, "server-type": "cx23"}}
    cfg = write_config(tmp_path, hetzner_section(endpoint=fake_hcloud.endpoint, pools=pools))
    res = run_cli("bootstrap", "plan", config=cfg, env={"HCLOUD_TOKEN": fake_hcloud.token})
    assert res.exit_code == 4, res
    assert "server type cx22 was retired" in res.stderr and "hint: use cx23" in res.stderr and "Traceback" not in res.stderr

    cfg = write_config(tmp_path, hetzner_section(endpoint=fake_hcloud.endpoint))
    res = run_cli("bootstrap", "plan", config=cfg, env={"HCLOUD_TOKEN": ""})
    assert res.exit_code == 4 and "HCLOUD_TOKEN" in res.stderr and "Traceback" not in res.stderr
    assert fake_hcloud.requests == []


def test_capacity_error_exit_code_and_hint(fake_hcloud, setup):
    cfg, env, _ = setup
    fake_hcloud.inject("POST", "/servers", "resource_unavailable", times=None)
    res = run_cli("bootstrap", "apply", "--infra-only", "--yes", "--parallel", "1", config=cfg, env=env)
    assert res.exit_code == 6, res
    assert "resource_unavailable" in res.stderr and "another server-type or location" in res.stderr


def test_render_writes_every_file_redacted(fake_hcloud, setup):
    cfg, env, tmp_path = setup
    out = tmp_path / "rendered"
    res = run_cli("bootstrap", "render", str(out), "-o", "json", config=cfg, env=env)
    assert res.exit_code == 0, res
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert "garden-db-1/patroni.yml" in files and "garden-db-3/etcd.env" in files and "garden-db-2/haproxy.cfg" in files
    assert "garden-k3s-agent-2/k3s-install.sh" in files and "cluster/db-bridge.yaml" in files
    assert len([f for f in files if f.endswith("cloud-init.yaml")]) == 6
    secrets = json.loads((tmp_path / "state" / "gardenctl" / "bootstrap" / "garden" / "secrets.json").read_text())
    everything = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    for value in secrets.values():
        assert value not in everything
    assert "<redacted>" in (out / "garden-db-1" / "patroni.yml").read_text()
    assert fake_hcloud.requests == []  # offline
    # a second render is identical (secrets reused)
    before = {f: (out / f).read_text() for f in files}
    assert run_cli("bootstrap", "render", str(out), config=cfg, env=env).exit_code == 0
    assert before == {f: (out / f).read_text() for f in files}


@pytest.mark.parametrize("sub", ["plan", "apply", "destroy", "render"])
def test_every_subcommand_has_help(sub):
    res = run_cli("bootstrap", sub, "--help")
    assert res.exit_code == 0 and len(res.stdout) > 300
