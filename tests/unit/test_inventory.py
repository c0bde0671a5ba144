"""The hetzner section: parsed and validated before anything else, each mistake one line with file:line and key."""

from __future__ import annotations

import stat
from datetime import datetime, timezone

import pytest

from gardenctl.cloud import ServerTypeInfo, TypeLocation
from gardenctl.errors import ConfigError, PreconditionFailed
from gardenctl.inventory import TokenSource, check_catalog
from tests.fakes.hetzner import make_test_public_key
from tests.integration._bootstrap_support import hetzner_section, inventory

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def bad(tmp_path, **overrides) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        inventory(tmp_path, hetzner_section(**overrides))
    return err.value


def test_defaults_names_addresses_and_groups(tmp_path):
    inv = inventory(tmp_path)
    assert inv.token == TokenSource(env="HCLOUD_TOKEN")
    assert inv.endpoint == "https://api.hetzner.cloud/v1" and inv.network_zone == "eu-central"
    assert [(n.name, n.private_ip, n.placement_group) for n in inv.nodes] == [
        ("garden-db-1", "10.0.1.11", "garden-db"),
        ("garden-db-2", "10.0.1.12", "garden-db"),
        ("garden-db-3", "10.0.1.13", "garden-db"),
        ("garden-k3s-server-1", "10.0.1.21", "garden-k3s-server"),
        ("garden-k3s-agent-1", "10.0.1.101", "garden-k3s-agent"),
        ("garden-k3s-agent-2", "10.0.1.102", "garden-k3s-agent"),
    ]
    assert inv.selector == "gardenos/cluster=garden" and inv.role_selector("db") == "gardenos/cluster=garden,gardenos/role=db"
    assert inv.k3s.cluster_cidr == "10.42.0.0/16" and inv.k3s.service_cidr == "10.43.0.0/16"
    assert inv.stack.postgres_version == 15 and inv.stack.timing.ttl_seconds == 20 and inv.stack.scope == "garden"


def test_spread_groups_hold_at_most_ten_servers(tmp_path):
    pools = {"db": {"count": 3, "server-type": "cx33"}, "k3s-server": {"count": 3, "server-type": "cx23"}, "k3s-agent": {"count": 23, "server-type": "cx23"}}
    inv = inventory(tmp_path, hetzner_section(pools=pools))
    groups = dict(inv.placement_groups)
    assert list(groups) == ["garden-db", "garden-k3s-server", "garden-k3s-agent-1", "garden-k3s-agent-2", "garden-k3s-agent-3"]
    per_group: dict[str, int] = {}
    for n in inv.nodes_of("k3s-agent"):
        per_group[n.placement_group] = per_group.get(n.placement_group, 0) + 1
    assert per_group == {"garden-k3s-agent-1": 10, "garden-k3s-agent-2": 10, "garden-k3s-agent-3": 3}


@pytest.mark.parametrize(
    "pools, words",
    [
        ({"db": {"count": 2, "server-type": "cx33"}, "k3s-server": {"count": 1, "server-type": "cx23"}}, "pools.db.count: must be 3 (got 2)"),
        ({"db": {"count": 3, "server-type": "cx33"}, "k3s-server": {"count": 2, "server-type": "cx23"}}, "pools.k3s-server.count: must be odd"),
        ({"db": {"count": 3, "server-type": "cx33"}, "k3s-server": {"count": 0, "server-type": "cx23"}}, "must be odd (1 or 3; got 0)"),
        ({"db": {"count": 3, "server-type": "cx33"}}, "pools.k3s-server: is required"),
        ({"db": {"count": 3, "server-type": "cpx21"}, "k3s-server": {"count": 1, "server-type": "cx23"}}, "cpx21 was retired"),
        ({"db": {"count": 3, "server-type": "cx33", "colour": "red"}, "k3s-server": {"count": 1, "server-type": "cx23"}}, "pools.db.colour: unknown key"),
        ({"db": {"count": 3, "server-type": "cx33", "location": "ash"}, "k3s-server": {"count": 1, "server-type": "cx23"}}, "network zone us-east"),
    ],
)
def test_pool_mistakes(tmp_path, pools, words):
    err = bad(tmp_path, pools=pools)
    assert words in err.message, err.message
    assert err.message.startswith(str(tmp_path / "config.yaml") + ":")  # file:line first
    assert "clusters.garden.hetzner.pools" in err.message


def test_retired_type_hints_its_successor(tmp_path):
    err = bad(tmp_path, pools={"db": {"count": 3, "server-type": "CX42"}, "k3s-server": {"count": 1, "server-type": "cx23"}})
    assert err.hint == "use cx43 (its successor)"


@pytest.mark.parametrize(
    "network, k3s, words",
    [
        ({"ip-range": "10.0.0.0/33", "subnet": "10.0.1.0/24"}, None, "not a valid network"),
        ({"ip-range": "10.0.0.1/16", "subnet": "10.0.1.0/24"}, None, "has host bits set"),
        ({"ip-range": "8.8.0.0/16", "subnet": "8.8.1.0/24"}, None, "private IPv4 range"),
        ({"ip-range": "10.0.0.0/16", "subnet": "10.1.1.0/24"}, None, "not inside ip-range"),
        ({"ip-range": "10.0.0.0/16", "subnet": "10.0.1.0/28"}, None, "too small"),
        ({"ip-range": "10.40.0.0/13", "subnet": "10.40.1.0/24"}, None, "overlaps k3s.cluster-cidr 10.42.0.0/16"),
        ({"ip-range": "10.0.0.0/16", "subnet": "10.0.1.0/24"}, {"service-cidr": "10.42.128.0/17"}, "k3s.cluster-cidr 10.42.0.0/16 overlaps k3s.service-cidr"),
        ({"ip-range": "10.0.0.0/16", "subnet": "10.0.1.0/24"}, {"cluster-cidr": "10.0.128.0/17"}, "network.ip-range 10.0.0.0/16 overlaps k3s.cluster-cidr"),
    ],
)
def test_cidr_mistakes(tmp_path, network, k3s, words):
    overrides = {"network": network}
    if k3s:
        overrides["k3s"] = k3s
    err = bad(tmp_path, **overrides)
    assert words in err.message, err.message


def test_inline_token_is_refused_with_the_alternatives(tmp_path):
    err = bad(tmp_path, token="abc123")
    assert "inline API tokens are not accepted" in err.message and "token-file" in err.hint
    assert "abc123" not in err.message


def test_only_one_token_source(tmp_path):
    err = bad(tmp_path, **{"token-file": "/x", "token-command": "pass hcloud"})
    assert "only one of token-env, token-file, token-command" in err.message


def test_token_sources_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_TOKEN", "from-env")
    assert TokenSource(env="MY_TOKEN").resolve() == "from-env"
    f = tmp_path / "token"
    f.write_text("from-file\n")
    assert TokenSource(env=None, file=str(f)).resolve() == "from-file"
    assert TokenSource(env=None, command="echo from-command").resolve() == "from-command"
    monkeypatch.delenv("HCLOUD_TOKEN", raising=False)
    with pytest.raises(ConfigError) as err:
        TokenSource().resolve()
    assert "HCLOUD_TOKEN is empty" in err.value.message
    with pytest.raises(ConfigError) as err:
        TokenSource(env=None, command="false").resolve()
    assert "exited with 1" in err.value.message


def test_ssh_keys_from_file_or_text_and_damaged_keys_refused(tmp_path):
    pub = tmp_path / "id.pub"
    pub.write_text(make_test_public_key("from-file") + "\n")
    inv = inventory(tmp_path, hetzner_section(**{"ssh-keys": [str(pub), make_test_public_key("inline")]}))
    assert [k.split()[2] for k in inv.ssh_public_keys] == ["from-file", "inline"]
    assert inv.ssh_key_names == ("garden-1", "garden-2")
    err = bad(tmp_path, **{"ssh-keys": ["ssh-ed25519 AAAAnotbase64!! me"]})
    assert "damaged" in err.message
    err = bad(tmp_path, **{"ssh-keys": [str(tmp_path / "missing.pub")]})
    assert "cannot read public key file" in err.message
    err = bad(tmp_path, **{"ssh-keys": "ssh-ed25519 AAAA"})
    assert "expected a list, got a string" in err.message


def test_allowed_networks_required_and_checked(tmp_path):
    assert "allowed-networks: is required" in bad(tmp_path, **{"allowed-networks": None}).message
    assert "not a network in CIDR notation" in bad(tmp_path, **{"allowed-networks": ["office"]}).message


def test_unknown_location_needs_a_zone(tmp_path):
    err = bad(tmp_path, location="xyz1")
    assert "unknown location 'xyz1'" in err.message
    inv = inventory(tmp_path, hetzner_section(location="xyz1", **{"network-zone": "eu-central"}))
    assert inv.network_zone == "eu-central"


def test_timing_profile_checked(tmp_path):
    assert "loop_wait + 2 x retry_timeout" in bad(tmp_path, stack={"ttl": 20, "loop-wait": 10, "retry-timeout": 10}).message
    inv = inventory(tmp_path, hetzner_section(stack={"ttl": 30, "loop-wait": 5, "retry-timeout": 10, "scope": "pg-main"}))
    assert (inv.stack.timing.ttl_seconds, inv.stack.scope) == (30, "pg-main")


def test_image_without_known_postgres_needs_a_version(tmp_path):
    pools = {"db": {"count": 3, "server-type": "cx33", "image": "rocky-9"}, "k3s-server": {"count": 1, "server-type": "cx23"}}
    assert "set postgres-version" in bad(tmp_path, pools=pools).message
    pools["db"]["image"] = "debian-13"
    assert inventory(tmp_path, hetzner_section(pools=pools)).stack.postgres_version == 17


def test_bad_cluster_name_for_hostnames(tmp_path):
    with pytest.raises(ConfigError) as err:
        inventory(tmp_path, name="Prod_1")
    assert "cannot name Hetzner servers" in err.value.message


def test_context_without_hetzner_section(tmp_path):
    from gardenctl.config import load_config, select_cluster
    from gardenctl.inventory import parse_inventory
    from tests.integration._bootstrap_support import write_config

    path = write_config(tmp_path)
    text = path.read_text()
    path.write_text(text[: text.index("  hetzner:")] if "  hetzner:" in text else text)
    cluster = select_cluster(load_config(path))
    cluster = type(cluster)(**{**{f: getattr(cluster, f) for f in cluster.__dataclass_fields__}, "hetzner": None})
    with pytest.raises(ConfigError) as err:
        parse_inventory(cluster)
    assert "has no hetzner section" in err.value.message


# ------------------------------------------------------------------------------------------------ catalogue


def _type(name: str, *locs: TypeLocation, cores: int = 2, deprecated: bool = False) -> ServerTypeInfo:
    return ServerTypeInfo(name=name, architecture="x86", cores=cores, memory_gb=4.0, cpu_type="shared", deprecated=deprecated, locations=tuple(locs))


RETIRED = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_catalog_uses_per_location_deprecation_not_the_top_level_flag(tmp_path):
    inv = inventory(tmp_path)
    ok = [_type("cx33", TypeLocation("fsn1", True)), _type("cx23", TypeLocation("fsn1", True))]
    check_catalog(inv, ok, now=NOW)
    # top-level says fine, the location says retired
    retired_here = [_type("cx33", TypeLocation("fsn1", False, unavailable_after=RETIRED), TypeLocation("nbg1", True)), _type("cx23", TypeLocation("fsn1", True)), _type("cx43", TypeLocation("fsn1", True), cores=8)]
    with pytest.raises(PreconditionFailed) as err:
        check_catalog(inv, retired_here, now=NOW)
    assert "pool db: server type cx33 is retired in fsn1 since 2026-01-01" == err.value.message
    # same architecture and CPU kind, at least as many cores, orderable here; or the same type elsewhere
    assert err.value.hint == "db: try server-type cx23, cx43 in fsn1, or cx33 in nbg1"
    # announced but still orderable: fine
    later = [_type("cx33", TypeLocation("fsn1", True, unavailable_after=datetime(2027, 1, 1, tzinfo=timezone.utc))), _type("cx23", TypeLocation("fsn1", True))]
    check_catalog(inv, later, now=NOW)


def test_catalog_sold_out_and_unknown_types(tmp_path):
    inv = inventory(tmp_path)
    with pytest.raises(PreconditionFailed) as err:
        check_catalog(inv, [_type("cx33", TypeLocation("fsn1", False)), _type("cx23", TypeLocation("fsn1", True))], now=NOW)
    assert "not available in fsn1 right now" in err.value.message
    with pytest.raises(PreconditionFailed) as err:
        check_catalog(inv, [_type("cx23", TypeLocation("fsn1", True))], now=NOW)
    assert "cx33 does not exist" in err.value.message
    with pytest.raises(PreconditionFailed) as err:
        check_catalog(inv, [_type("cx33", TypeLocation("nbg1", True)), _type("cx23", TypeLocation("nbg1", True))], now=NOW)
    assert err.value.message == "3 pools cannot be ordered" and len(err.value.details) == 3


def test_secrets_are_kept_0600_and_reused(tmp_path):
    import os

    from gardenctl.ops.bootstrap.secrets import load_or_create, secrets_path

    first, created = load_or_create(tmp_path, "garden")
    again, created_again = load_or_create(tmp_path, "garden")
    assert created and not created_again and first == again
    path = secrets_path(tmp_path, "garden")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert len(first.k3s_token) == 64 and first.redacted().k3s_token == "<redacted>"
