"""Renders from the inventory through gardenctl.stack: the StackSpec, etcd's env file, user data, redaction."""

from __future__ import annotations

import yaml

from gardenctl.ops.bootstrap.render import etcd_env, render_all, stack_spec, user_data
from gardenctl.ops.bootstrap.secrets import generate
from gardenctl.stack import Timing
from tests.integration._bootstrap_support import hetzner_section, inventory

SECRETS = generate()


def test_stack_spec_uses_private_addresses_hetzner_ports_and_the_lab_timing(tmp_path):
    spec = stack_spec(inventory(tmp_path), SECRETS)
    assert [(n.name, n.host, n.pg_port, n.rest_port, n.etcd_client_port, n.etcd_peer_port) for n in spec.nodes] == [
        ("garden-db-1", "10.0.1.11", 5432, 8008, 2379, 2380),
        ("garden-db-2", "10.0.1.12", 5432, 8008, 2379, 2380),
        ("garden-db-3", "10.0.1.13", 5432, 8008, 2379, 2380),
    ]
    assert (spec.haproxy_rw_port, spec.haproxy_ro_port, spec.haproxy_stats_port) == (5000, 5001, 7000)
    assert spec.timing == Timing() and not spec.listen_all
    assert spec.bin_dir == "/usr/lib/postgresql/15/bin" and spec.nodes[0].data_dir == "/var/lib/postgresql/15/main"
    assert spec.client_networks == ("10.0.1.0/24", "127.0.0.1/32")
    assert spec.credentials.rest_password == SECRETS.rest_password and spec.etcd_cluster_token == SECRETS.etcd_cluster_token


def test_etcd_env_is_the_lab_flags_as_variables(tmp_path):
    spec = stack_spec(inventory(tmp_path), SECRETS)
    env = dict(line.split("=", 1) for line in etcd_env(spec, spec.nodes[2]).splitlines() if not line.startswith("#"))
    assert env["ETCD_NAME"] == '"garden-db-3"'
    assert env["ETCD_LISTEN_CLIENT_URLS"] == '"http://10.0.1.13:2379,http://127.0.0.1:2379"'
    assert env["ETCD_INITIAL_CLUSTER_STATE"] == '"new"' and env["ETCD_DATA_DIR"] == '"/var/lib/etcd/gardenos"'


def test_debian_13_renders_postgres_17(tmp_path):
    inv = inventory(tmp_path, hetzner_section(pools={"db": {"count": 3, "server-type": "cx33", "image": "debian-13"}, "k3s-server": {"count": 1, "server-type": "cx23"}}))
    data = yaml.safe_load(user_data(inv, inv.nodes[0], stack_spec(inv, SECRETS)))
    assert "if [ -d /etc/postgresql/17/main ]; then pg_dropcluster --stop 17 main; fi" in data["runcmd"]
    assert stack_spec(inv, SECRETS).bin_dir == "/usr/lib/postgresql/17/bin"


def test_renders_are_identical_with_the_same_secrets_and_redacted_ones_hide_them(tmp_path):
    inv = inventory(tmp_path)
    a = render_all(inv, SECRETS, interfaces={"garden-k3s-server-1": "ens10"})
    b = render_all(inv, SECRETS, interfaces={"garden-k3s-server-1": "ens10"})
    assert a == b
    red = "".join(f.content for f in render_all(inv, SECRETS.redacted()))
    for secret in (SECRETS.superuser_password, SECRETS.replication_password, SECRETS.rewind_password, SECRETS.rest_password, SECRETS.k3s_token):
        assert secret not in red
    real = "".join(f.content for f in a)
    assert SECRETS.superuser_password in real and SECRETS.k3s_token not in real  # the token is never in a rendered file


def test_user_data_stays_under_hetzners_limit(tmp_path):
    inv = inventory(tmp_path)
    spec = stack_spec(inv, SECRETS)
    for node in inv.nodes:
        assert len(user_data(inv, node, spec).encode()) < 32 * 1024
