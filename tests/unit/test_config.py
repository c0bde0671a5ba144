"""The config file: contexts, precedence, and one clear error naming file, line and key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gardenctl.config import load_config, parse_config, redacted, select_cluster, set_current_context, upsert_cluster
from gardenctl.errors import ConfigError, ExitCode

GOOD = """\
current-context: prod
clusters:
  prod:
    scope: pg-main
    patroni:
      endpoints: [http://10.0.0.11:8008, http://10.0.0.12:8008]
      username: patroni
      password-env: PATRONI_REST_PASSWORD
    etcd:
      endpoints: [http://10.0.0.11:2379]
    haproxy:
      stats-url: http://10.0.0.11:7000/stats
      rw-address: 10.0.0.11:5000
      ro-address: 10.0.0.11:5001
    postgres:
      user: app
      password-file: /etc/gardenctl/pgpass
    thresholds:
      lag-warning-bytes: 1000
      lag-critical-bytes: 5000
  staging:
    patroni: {endpoints: [http://10.1.0.11:8008]}
    etcd: {endpoints: [http://10.1.0.11:2379]}
    haproxy: {stats-socket: /run/haproxy/admin.sock}
"""


def cfg(text: str, tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path)


def test_good_config_parses_every_section(tmp_path):
    config = cfg(GOOD, tmp_path)
    prod = select_cluster(config)
    assert prod.name == "prod"
    assert prod.scope == "pg-main"
    assert prod.patroni.endpoints == ("http://10.0.0.11:8008", "http://10.0.0.12:8008")
    assert prod.patroni.password.env == "PATRONI_REST_PASSWORD"
    assert prod.haproxy.stats_url == "http://10.0.0.11:7000/stats"
    assert prod.haproxy.rw_backend == "pg_rw"  # default
    assert prod.postgres.user == "app"
    assert prod.thresholds.lag_warning_bytes == 1000
    assert prod.thresholds.lag_critical_bytes == 5000
    assert prod.thresholds.maintenance_critical_minutes == 60  # default
    staging = select_cluster(config, "staging")
    assert staging.haproxy.stats_socket == "/run/haproxy/admin.sock"
    assert staging.postgres.user == "postgres"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # malformed YAML: file and line
        ("clusters:\n  a:\n    patroni: [unclosed\n", r"config.yaml:4: malformed YAML"),
        # wrong type: line of the key, full key path
        (
            "clusters:\n  a:\n    patroni:\n      endpoints: http://x:8008\n    etcd: {endpoints: [http://x:2379]}\n    haproxy: {stats-socket: /s}\n",
            "config.yaml:4: clusters.a.patroni.endpoints: expected a list, got a string",
        ),
        # missing required section
        ("clusters:\n  a:\n    etcd: {endpoints: [http://x:2379]}\n    haproxy: {stats-socket: /s}\n", "config.yaml:2: clusters.a.patroni: is required but missing"),
        # unknown key (typo)
        (
            "clusters:\n  a:\n    patroni: {endpoints: [http://x:8008]}\n    etcd: {endpoints: [http://x:2379]}\n    haproxy: {stats-socket: /s}\n    tresholds: {}\n",
            "config.yaml:6: clusters.a.tresholds: unknown key",
        ),
        # not a URL
        (
            "clusters:\n  a:\n    patroni: {endpoints: [10.0.0.1:8008]}\n    etcd: {endpoints: [http://x:2379]}\n    haproxy: {stats-socket: /s}\n",
            "clusters.a.patroni.endpoints: item 1 '10.0.0.1:8008': expected an http:// or https:// URL",
        ),
        # haproxy without any stats source
        (
            "clusters:\n  a:\n    patroni: {endpoints: [http://x:8008]}\n    etcd: {endpoints: [http://x:2379]}\n    haproxy: {rw-address: x:5000}\n",
            "clusters.a.haproxy: needs stats-socket",
        ),
        # current-context naming nothing
        ("current-context: nope\nclusters: {}\n", "config.yaml:1: current-context: no cluster named 'nope' (known: none)"),
        # top level is not a mapping
        ("- a\n- b\n", "expected a mapping, got a list"),
        # thresholds inverted
        (
            "clusters:\n  a:\n    patroni: {endpoints: [http://x:8008]}\n    etcd: {endpoints: [http://x:2379]}\n    haproxy: {stats-socket: /s}\n"
            "    thresholds: {lag-warning-bytes: 10, lag-critical-bytes: 5}\n",
            "lag-critical-bytes must not be below lag-warning-bytes",
        ),
        # booleans are not numbers
        (
            "clusters:\n  a:\n    patroni: {endpoints: [http://x:8008]}\n    etcd: {endpoints: [http://x:2379]}\n    haproxy: {stats-socket: /s}\n"
            "    request-timeout-seconds: true\n",
            "clusters.a.request-timeout-seconds: expected a number, got a boolean",
        ),
        # duplicate keys are an error, not "last one wins"
        ("clusters:\n  a: {}\n  a: {}\n", "line 3: duplicate key 'a'"),
    ],
)
def test_bad_config_names_file_line_and_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        cfg(text, tmp_path)
    assert expected in info.value.message
    assert str(tmp_path / "config.yaml") in info.value.message
    assert info.value.exit_code == ExitCode.CONFIG


def test_inline_password_refused_with_hint(tmp_path):
    text = "clusters:\n  a:\n    patroni: {endpoints: [http://x:8008]}\n    etcd: {endpoints: [http://x:2379]}\n    haproxy: {stats-socket: /s}\n    postgres:\n      password: hunter2\n"
    with pytest.raises(ConfigError) as info:
        cfg(text, tmp_path)
    assert "config.yaml:7: clusters.a.postgres.password: inline secrets are not accepted" in info.value.message
    assert "password-env" in info.value.hint
    assert "hunter2" not in info.value.message


def test_missing_file_is_empty_and_selecting_says_how_to_start(tmp_path):
    config = load_config(tmp_path / "nope.yaml")
    assert not config.exists
    with pytest.raises(ConfigError) as info:
        select_cluster(config)
    assert "no config file at" in info.value.message
    assert "gardenctl lab up" in info.value.hint


def test_unknown_context_lists_known_ones(tmp_path):
    with pytest.raises(ConfigError) as info:
        select_cluster(cfg(GOOD, tmp_path), "prdo")
    assert info.value.message.startswith("unknown context 'prdo'")
    assert "(known: prod, staging)" in info.value.message


def test_no_current_context_with_one_cluster_uses_it(tmp_path):
    text = "clusters:\n  only:\n    patroni: {endpoints: [http://x:8008]}\n    etcd: {endpoints: [http://x:2379]}\n    haproxy: {stats-socket: /s}\n"
    assert select_cluster(cfg(text, tmp_path)).name == "only"


def test_no_current_context_with_two_clusters_is_an_error(tmp_path):
    text = GOOD.replace("current-context: prod\n", "")
    with pytest.raises(ConfigError) as info:
        select_cluster(cfg(text, tmp_path))
    assert "no current-context set" in info.value.message


def test_secret_resolution_env_and_file(tmp_path, monkeypatch):
    config = cfg(GOOD, tmp_path)
    prod = select_cluster(config)
    with pytest.raises(ConfigError) as info:
        prod.patroni.password.resolve("patroni")
    assert "PATRONI_REST_PASSWORD is not set" in info.value.message
    monkeypatch.setenv("PATRONI_REST_PASSWORD", "s3cret")
    assert prod.patroni.password.resolve("patroni") == "s3cret"
    with pytest.raises(ConfigError) as info:
        prod.postgres.password.resolve("postgres")
    assert "cannot read password file /etc/gardenctl/pgpass" in info.value.message


def test_use_context_and_upsert_keep_other_clusters_and_mode_0600(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    set_current_context(load_config(path), "staging")
    config = load_config(path)
    assert config.current_context == "staging"
    assert set(config.clusters) == {"prod", "staging"}
    upsert_cluster(path, "lab", {"patroni": {"endpoints": ["http://127.0.0.1:1"]}, "etcd": {"endpoints": ["http://127.0.0.1:2"]}, "haproxy": {"stats-socket": "/x"}})
    config = load_config(path)
    assert config.current_context == "lab"
    assert set(config.clusters) == {"prod", "staging", "lab"}
    assert config.clusters["prod"].patroni.endpoints == ("http://10.0.0.11:8008", "http://10.0.0.12:8008")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_upsert_refuses_to_write_an_invalid_cluster(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    with pytest.raises(ConfigError):
        upsert_cluster(path, "broken", {"patroni": {"endpoints": "not-a-list"}})
    assert path.read_text() == GOOD


def test_redacted_masks_values_but_keeps_references():
    raw = {"a": {"password-env": "X", "token": "abc", "nested": [{"secret": "s"}], "password-file": "/f"}}
    assert redacted(raw) == {"a": {"password-env": "X", "token": "REDACTED", "nested": [{"secret": "REDACTED"}], "password-file": "/f"}}


def test_parse_config_empty_file_is_no_clusters(tmp_path):
    config = parse_config("", tmp_path / "c.yaml")
    assert config.clusters == {}
    assert config.current_context is None
