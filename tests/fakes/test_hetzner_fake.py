"""Tests of the fake Hetzner Cloud API, driven through the real hcloud library."""

from __future__ import annotations

import ipaddress
import time

import httpx
import pytest
import requests
from hcloud import APIException
from hcloud.actions import ActionFailedException
from hcloud.firewalls import FirewallResource, FirewallResourceLabelSelector, FirewallRule
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.networks import NetworkSubnet
from hcloud.placement_groups import PlacementGroup
from hcloud.server_types import ServerType
from hcloud.servers import Server, ServerCreatePublicNetwork

from tests.fakes.hetzner import ERROR_STATUS, make_test_public_key
from tests.fakes.hetzner.fixture import check_fake, client, fake_hcloud, start_fake_hcloud  # noqa: F401

CX23, UBUNTU = ServerType(name="cx23"), Image(name="ubuntu-24.04")


@pytest.fixture
def hc(fake_hcloud):
    return client(fake_hcloud)


@pytest.fixture
def raw(fake_hcloud):
    # plain http on loopback: verify=False only skips building a TLS context (~0.1 s)
    with httpx.Client(base_url=fake_hcloud.endpoint, headers={"Authorization": f"Bearer {fake_hcloud.token}"}, timeout=5, verify=False) as c:
        yield c


def api_error(excinfo) -> tuple[str, str]:
    return excinfo.value.code, excinfo.value.message


# -- lifecycle -------------------------------------------------------------------------------------
def test_starts_and_stops_fast():
    t0 = time.perf_counter()
    fake = start_fake_hcloud()
    started = time.perf_counter() - t0
    endpoint = fake.endpoint
    hc = client(fake)
    try:
        assert fake.endpoint.startswith("http://127.0.0.1:") and fake.endpoint.endswith("/v1")
        assert fake.token
        r = httpx.get(fake.endpoint + "/locations", headers={"Authorization": f"Bearer {fake.token}"}, verify=False)
        assert r.status_code == 200
        assert len(hc.locations.get_all()) == 6  # leaves a kept-alive connection behind
    finally:
        t1 = time.perf_counter()
        fake.stop()
        stopped = time.perf_counter() - t1
    assert started < 0.5, started
    assert stopped < 0.5, stopped
    with pytest.raises(httpx.TransportError):
        httpx.get(endpoint + "/locations", timeout=1, verify=False)
    with pytest.raises(requests.exceptions.ConnectionError):  # not even on the kept-alive connection
        hc.locations.get_all()


def test_wrong_token_is_unauthorized(fake_hcloud):
    bad = client(fake_hcloud, token="not-the-token")
    with pytest.raises(APIException) as exc:
        bad.locations.get_all()
    assert exc.value.code == "unauthorized"
    assert fake_hcloud.requests[-1].status == 401


# -- catalogue -------------------------------------------------------------------------------------
def test_locations(hc):
    locations = hc.locations.get_all()
    assert [l.name for l in locations] == ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]
    fsn1 = hc.locations.get_by_name("fsn1")
    assert (fsn1.city, fsn1.country, fsn1.network_zone) == ("Falkenstein", "DE", "eu-central")
    assert hc.locations.get_by_id(6).name == "sin"


def test_server_types_current_retired_and_unavailable(hc):
    types = {t.name: t for t in hc.server_types.get_all()}
    for name in ("cx23", "cx33", "cx43", "cx53", "cpx12", "cpx22", "cpx32", "cax11", "cax21", "ccx13", "cx22", "cpx11"):
        assert name in types
    cx23 = types["cx23"]
    assert (cx23.cores, cx23.memory, cx23.disk, cx23.architecture) == (2, 4.0, 40, "x86")
    assert sorted(l.location.name for l in cx23.locations) == ["fsn1", "hel1", "nbg1"]
    assert all(l.deprecation is None and l.available for l in cx23.locations)
    assert types["cax11"].architecture == "arm"

    for retired in ("cx22", "cpx11"):
        locs = types[retired].locations
        assert locs and all(l.deprecation is not None for l in locs)
        assert all(l.deprecation.unavailable_after.year == 2026 for l in locs)
        assert not any(l.available for l in locs)

    cpx32 = {l.location.name: l for l in types["cpx32"].locations}
    assert cpx32["sin"].available is False and cpx32["fsn1"].available is True


def test_images_by_name_and_architecture(hc):
    arm = hc.images.get_by_name_and_architecture("debian-12", "arm")
    x86 = hc.images.get_by_name_and_architecture("debian-12", "x86")
    assert arm.id != x86.id and arm.architecture == "arm" and x86.os_flavor == "debian"
    assert {i.name for i in hc.images.get_all(type=["system"])} >= {"debian-12", "ubuntu-24.04"}


# -- ssh keys --------------------------------------------------------------------------------------
def test_ssh_keys_crud_and_uniqueness(hc, fake_hcloud):
    pub = make_test_public_key("alice")
    key = hc.ssh_keys.create("alice", pub, labels={"team": "ops"})
    assert key.id in fake_hcloud.ssh_keys
    assert key.fingerprint.count(":") == 15
    assert hc.ssh_keys.get_by_id(key.id).public_key == pub
    assert hc.ssh_keys.get_by_name("alice").id == key.id
    assert hc.ssh_keys.get_by_fingerprint(key.fingerprint).id == key.id
    assert [k.name for k in hc.ssh_keys.get_all(label_selector="team=ops")] == ["alice"]

    with pytest.raises(APIException) as exc:
        hc.ssh_keys.create("alice", make_test_public_key("other"))
    assert exc.value.code == "uniqueness_error"
    assert exc.value.details == {"fields": [{"name": "name"}]}
    with pytest.raises(APIException) as exc:
        hc.ssh_keys.create("bob", pub)
    assert exc.value.code == "uniqueness_error"
    assert fake_hcloud.requests[-1].status == 409

    with pytest.raises(APIException) as exc:
        hc.ssh_keys.create("carol", "not a key")
    assert exc.value.code == "invalid_input"

    assert hc.ssh_keys.update(key, labels={"team": "dev"}).labels == {"team": "dev"}
    assert hc.ssh_keys.delete(key) is True
    with pytest.raises(APIException) as exc:
        hc.ssh_keys.get_by_id(key.id)
    assert exc.value.code == "not_found"
    assert fake_hcloud.ssh_keys == {}


# -- networks --------------------------------------------------------------------------------------
def test_networks_crud_and_add_subnet(hc, fake_hcloud):
    net = hc.networks.create(
        "garden",
        ip_range="10.0.0.0/16",
        subnets=[NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="eu-central")],
        labels={"stack": "garden"},
    )
    assert [s.ip_range for s in net.subnets] == ["10.0.1.0/24"]
    assert net.subnets[0].gateway == "10.0.0.1"

    action = hc.networks.add_subnet(net, NetworkSubnet(type="cloud", ip_range="10.0.2.0/24", network_zone="us-east"))
    assert action.status == "running" and action.command == "add_subnet"
    action.wait_until_finished()
    assert action.status == "success"
    got = hc.networks.get_by_name("garden")
    assert [(s.ip_range, s.network_zone) for s in got.subnets] == [("10.0.1.0/24", "eu-central"), ("10.0.2.0/24", "us-east")]
    assert [a.command for a in got.get_actions()] == ["add_subnet"]

    with pytest.raises(APIException) as exc:  # outside the network's range
        hc.networks.add_subnet(net, NetworkSubnet(type="cloud", ip_range="10.1.0.0/24", network_zone="eu-central"))
    assert exc.value.code == "invalid_input"
    with pytest.raises(APIException) as exc:
        hc.networks.create("garden", ip_range="10.1.0.0/16")
    assert exc.value.code == "uniqueness_error"

    assert hc.networks.get_all(label_selector="stack=garden")[0].id == net.id
    assert hc.networks.delete(net) is True
    assert hc.networks.get_all() == []


# -- firewalls -------------------------------------------------------------------------------------
def test_firewalls_crud_rules_and_apply(hc, fake_hcloud):
    web = fake_hcloud.add_server("web-1", labels={"role": "web"})
    db = fake_hcloud.add_server("db-1", labels={"role": "db"})
    ssh = FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["0.0.0.0/0", "::/0"])
    resp = hc.firewalls.create(
        "garden-fw",
        rules=[ssh],
        labels={"stack": "garden"},
        resources=[FirewallResource(type="server", server=Server(id=web["id"]))],
    )
    fw = resp.firewall
    assert sorted(a.command for a in resp.actions) == ["apply_firewall", "set_firewall_rules"]
    for a in resp.actions:
        a.wait_until_finished()
    assert [(r.protocol, r.port) for r in fw.rules] == [("tcp", "22")]
    assert [f.firewall.id for f in hc.servers.get_by_id(web["id"]).public_net.firewalls] == [fw.id]

    actions = hc.firewalls.set_rules(
        fw, [ssh, FirewallRule(direction="in", protocol="icmp", source_ips=["0.0.0.0/0"], description="ping")]
    )
    assert [a.command for a in actions] == ["set_firewall_rules", "apply_firewall"]
    assert [r.protocol for r in hc.firewalls.get_by_id(fw.id).rules] == ["tcp", "icmp"]

    actions = hc.firewalls.apply_to_resources(
        fw, [FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector("role=db"))]
    )
    assert [a.command for a in actions] == ["apply_firewall"]
    assert [f.firewall.id for f in hc.servers.get_by_id(db["id"]).public_net.firewalls] == [fw.id]
    applied = hc.firewalls.get_by_id(fw.id).applied_to
    assert [a.type for a in applied] == ["server", "label_selector"]
    assert [r.server.id for r in applied[1].applied_to_resources] == [db["id"]]

    with pytest.raises(APIException) as exc:  # tcp without port: the API refuses it
        hc.firewalls.set_rules(fw, [FirewallRule(direction="in", protocol="tcp", source_ips=["0.0.0.0/0"])])
    assert exc.value.code == "invalid_input"

    with pytest.raises(APIException) as exc:
        hc.firewalls.delete(fw)
    assert exc.value.code == "resource_in_use"
    hc.firewalls.remove_from_resources(fw, [FirewallResource(type="server", server=Server(id=web["id"]))])
    hc.firewalls.remove_from_resources(
        fw, [FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector("role=db"))]
    )
    assert hc.firewalls.get_all(label_selector="stack=garden")[0].applied_to == []
    assert hc.firewalls.delete(fw) is True
    assert fake_hcloud.firewalls == {}


# -- placement groups ------------------------------------------------------------------------------
def test_placement_groups_crud_and_spread_limit(hc, fake_hcloud):
    resp = hc.placement_groups.create("spread-db", "spread", labels={"role": "db"})
    pg = resp.placement_group
    assert (pg.type, pg.servers, resp.action) == ("spread", [], None)
    assert hc.placement_groups.get_by_name("spread-db").id == pg.id
    assert [p.id for p in hc.placement_groups.get_all(label_selector="role=db")] == [pg.id]

    for i in range(10):
        fake_hcloud.add_server(f"db-{i}", placement_group=pg.id)
    assert len(hc.placement_groups.get_by_id(pg.id).servers) == 10
    with pytest.raises(APIException) as exc:
        hc.servers.create("db-10", server_type=CX23, image=UBUNTU, placement_group=PlacementGroup(id=pg.id))
    assert exc.value.code == "placement_group_member_limit_reached"
    assert "contains already 10 servers" in exc.value.message
    assert fake_hcloud.requests[-1].status == 422
    assert hc.servers.get_by_name("db-10") is None

    hc.placement_groups.update(pg, name="spread-db-2")
    assert hc.placement_groups.get_by_id(pg.id).name == "spread-db-2"
    assert hc.placement_groups.delete(pg) is True
    assert hc.placement_groups.get_all() == []


# -- servers ---------------------------------------------------------------------------------------
def test_server_create_get_list_delete(hc, fake_hcloud):
    key = hc.ssh_keys.create("ops", make_test_public_key("ops"))
    net = hc.networks.create(
        "garden", "10.0.0.0/16", subnets=[NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="eu-central")]
    )
    fw = hc.firewalls.create("fw", rules=[FirewallRule(direction="in", protocol="icmp", source_ips=["0.0.0.0/0"])]).firewall
    pg = hc.placement_groups.create("pg", "spread").placement_group

    resp = hc.servers.create(
        "pg-1",
        server_type=CX23,
        image=UBUNTU,
        location=Location(name="nbg1"),
        ssh_keys=[key],
        networks=[net],
        firewalls=[fw],
        placement_group=pg,
        labels={"role": "db"},
        user_data="#cloud-config\nruncmd: [true]\n",
        public_net=ServerCreatePublicNetwork(enable_ipv4=True, enable_ipv6=False),
    )
    server = resp.server
    assert server.status == "initializing"
    assert resp.action.command == "create_server" and resp.action.status == "running"
    assert [a.command for a in resp.next_actions] == ["start_server"]
    assert resp.root_password is None  # an SSH key was given

    resp.action.wait_until_finished()
    got = hc.servers.get_by_id(server.id)
    assert got.status == "running"
    assert (got.server_type.name, got.image.name, got.location.name) == ("cx23", "ubuntu-24.04", "nbg1")
    assert got.labels == {"role": "db"}
    assert got.public_net.ipv4 is not None and ipaddress.ip_address(got.public_net.ipv4.ip).version == 4
    assert got.public_net.ipv6 is None
    assert [f.firewall.id for f in got.public_net.firewalls] == [fw.id]
    assert got.placement_group.id == pg.id
    assert len(got.private_net) == 1 and got.private_net[0].network.id == net.id
    assert ipaddress.ip_address(got.private_net[0].ip) in ipaddress.ip_network("10.0.1.0/24")
    assert fake_hcloud.server_ssh_keys(server.id) == [key.id]
    assert fake_hcloud.server_user_data(server.id).startswith("#cloud-config")
    assert hc.networks.get_by_id(net.id).servers[0].id == server.id

    second = hc.servers.create("pg-2", server_type=ServerType(name="cax11"), image=Image(name="debian-12"), networks=[net])
    assert second.root_password  # no SSH key: a root password is generated
    assert second.server.image.architecture == "arm"  # the image matching the type's architecture
    ips = {s.private_net[0].ip for s in hc.servers.get_all()}
    assert len(ips) == 2

    assert hc.servers.get_by_name("pg-1").id == server.id
    assert [s.name for s in hc.servers.get_all(name="pg-2")] == ["pg-2"]
    action = hc.servers.delete(got)
    assert action.command == "delete_server"
    action.wait_until_finished()
    with pytest.raises(APIException) as exc:
        hc.servers.get_by_id(server.id)
    assert exc.value.code == "not_found"
    assert hc.placement_groups.get_by_id(pg.id).servers == []
    assert fake_hcloud.count("POST", "/servers", exact=True) == 2


def test_server_create_uniqueness_and_catalogue_errors(hc, fake_hcloud):
    fake_hcloud.add_server("app-1")
    with pytest.raises(APIException) as exc:
        hc.servers.create("app-1", server_type=CX23, image=UBUNTU)
    assert exc.value.code == "uniqueness_error"
    assert fake_hcloud.requests[-1].status == 409

    cases = [
        (dict(server_type=ServerType(name="cax11"), location=Location(name="ash")), "invalid_input", 422, "unsupported location for server type"),
        (dict(server_type=ServerType(name="cx22"), location=Location(name="fsn1")), "invalid_input", 422, "unsupported location for server type"),
        (dict(server_type=ServerType(name="cpx32"), location=Location(name="sin")), "resource_unavailable", 412, "error during placement"),
        (dict(server_type=ServerType(name="cx99")), "invalid_input", 422, "server type 'cx99' not found"),
        (dict(server_type=CX23, location=Location(name="mars1")), "invalid_input", 422, "location 'mars1' not found"),
    ]
    for kwargs, code, status, message in cases:
        with pytest.raises(APIException) as exc:
            hc.servers.create("app-2", image=kwargs.pop("image", UBUNTU), **kwargs)
        assert (exc.value.code, exc.value.message) == (code, message)
        assert fake_hcloud.requests[-1].status == status
    with pytest.raises(APIException) as exc:
        hc.servers.create("not_a_hostname", server_type=CX23, image=UBUNTU)
    assert exc.value.code == "invalid_input" and exc.value.details["fields"][0]["name"] == "name"
    assert len(fake_hcloud.servers) == 1


def test_preseeded_two_of_three_servers(hc, fake_hcloud):
    """The typical idempotency scenario: only the missing server gets created."""
    fake_hcloud.add_server("pg-1", labels={"cluster": "garden"})
    fake_hcloud.add_server("pg-2", labels={"cluster": "garden"})

    existing = {s.name for s in hc.servers.get_all(label_selector="cluster=garden")}
    for name in ("pg-1", "pg-2", "pg-3"):
        if name not in existing:
            hc.servers.create(name, server_type=CX23, image=UBUNTU, labels={"cluster": "garden"}).action.wait_until_finished()

    assert fake_hcloud.count("POST", "/servers", exact=True) == 1
    assert fake_hcloud.find_requests("POST", "/servers", exact=True)[0].body["name"] == "pg-3"
    assert sorted(s["name"] for s in fake_hcloud.servers.values()) == ["pg-1", "pg-2", "pg-3"]
    assert {s.status for s in hc.servers.get_all()} == {"running"}


def test_server_power_and_network_actions(hc, fake_hcloud):
    net = fake_hcloud.add_network("n", "10.0.0.0/16")
    s = fake_hcloud.add_server("s-1")
    server = hc.servers.get_by_id(s["id"])
    server.power_off().wait_until_finished()
    assert hc.servers.get_by_id(s["id"]).status == "off"
    server.power_on().wait_until_finished()
    assert hc.servers.get_by_id(s["id"]).status == "running"
    server.attach_to_network(hc.networks.get_by_id(net["id"]), ip="10.0.0.7").wait_until_finished()
    assert hc.servers.get_by_id(s["id"]).private_net[0].ip == "10.0.0.7"
    with pytest.raises(APIException) as exc:
        server.attach_to_network(hc.networks.get_by_id(net["id"]))
    assert exc.value.code == "server_already_attached"
    assert [a.command for a in server.get_actions(sort=["id"])] == ["stop_server", "start_server", "attach_to_network"]


# -- label selectors, names, pagination -------------------------------------------------------------
@pytest.mark.parametrize(
    "selector, expected",
    [
        ("env=prod", ["a", "b"]),
        ("env==prod,role=db", ["a"]),
        ("role", ["a", "b", "c"]),
        ("!role", ["d"]),
        ("env!=prod", ["c", "d"]),
        ("env=prod,role!=db", ["b"]),
        ("env in (prod,staging),role=db", ["a", "c"]),
        ("env notin (prod)", ["c", "d"]),
        ("canary", ["c"]),
        ("env=dev", []),
    ],
)
def test_label_selector(hc, fake_hcloud, selector, expected):
    fake_hcloud.add_server("a", labels={"env": "prod", "role": "db"})
    fake_hcloud.add_server("b", labels={"env": "prod", "role": "web"})
    fake_hcloud.add_server("c", labels={"env": "staging", "role": "db", "canary": ""})
    fake_hcloud.add_server("d")
    assert sorted(s.name for s in hc.servers.get_all(label_selector=selector)) == expected


def test_invalid_label_selector_and_labels(hc, fake_hcloud):
    with pytest.raises(APIException) as exc:
        hc.servers.get_all(label_selector="env=prod,,")
    assert exc.value.code == "invalid_input"
    with pytest.raises(APIException) as exc:
        hc.ssh_keys.create("k", make_test_public_key("k"), labels={"hetzner.cloud/x": "y"})
    assert exc.value.code == "invalid_input"
    with pytest.raises(APIException) as exc:  # value pattern comes from the spec's labels schema
        hc.ssh_keys.create("k", make_test_public_key("k"), labels={"ok": "-bad-"})
    assert exc.value.code == "invalid_input"


def test_pagination(hc, fake_hcloud, raw):
    for i in range(60):
        fake_hcloud.add_ssh_key(f"key-{i:02d}")
    keys, meta = hc.ssh_keys.get_list(page=2, per_page=25)
    assert [k.name for k in keys] == [f"key-{i:02d}" for i in range(25, 50)]
    p = meta.pagination
    assert (p.page, p.per_page, p.previous_page, p.next_page, p.last_page, p.total_entries) == (2, 25, 1, 3, 3, 60)
    keys, meta = hc.ssh_keys.get_list(page=3, per_page=25)
    assert len(keys) == 10 and meta.pagination.next_page is None

    before = fake_hcloud.count("GET", "/ssh_keys", exact=True)
    assert len(hc.ssh_keys.get_all()) == 60
    calls = fake_hcloud.find_requests("GET", "/ssh_keys", exact=True)[before:]
    assert [(c.query["page"], c.query["per_page"]) for c in calls] == [(["1"], ["50"]), (["2"], ["50"])]

    r = raw.get("/ssh_keys", params={"per_page": 100, "sort": "name:desc"})
    body = r.json()
    assert body["meta"]["pagination"]["per_page"] == 50  # capped like the real API
    assert body["ssh_keys"][0]["name"] == "key-59"
    assert 'rel="next"' in r.headers["Link"] and 'rel="last"' in r.headers["Link"]
    assert raw.get("/ssh_keys", params={"page": "x"}).json()["error"]["code"] == "invalid_input"


# -- actions ---------------------------------------------------------------------------------------
def test_action_runs_for_configured_polls_then_succeeds(hc, fake_hcloud):
    resp = hc.servers.create("s", server_type=CX23, image=UBUNTU, start_after_create=False)
    assert resp.next_actions == []
    aid = resp.action.id
    assert fake_hcloud.actions[aid]["status"] == "running"
    resp.action.wait_until_finished()
    # reported running on 2 polls, success on the 3rd
    assert fake_hcloud.count("GET", f"/actions/{aid}", exact=True) == 3
    assert resp.action.status == "success" and resp.action.progress == 100 and resp.action.finished is not None
    assert hc.servers.get_by_id(resp.server.id).status == "off"  # start_after_create=False

    fake_hcloud.action_polls = 0
    action = hc.servers.get_by_id(resp.server.id).power_on()
    action.wait_until_finished()
    assert fake_hcloud.count("GET", f"/actions/{action.id}", exact=True) == 1


def test_actions_endpoints(hc, fake_hcloud, raw):
    resp = hc.servers.create("s", server_type=CX23, image=UBUNTU)
    ids = [resp.action.id] + [a.id for a in resp.next_actions]
    listed = raw.get("/actions", params=[("id", i) for i in ids]).json()["actions"]
    assert sorted(a["id"] for a in listed) == sorted(ids)
    assert raw.get("/actions").json()["error"]["code"] == "invalid_input"
    assert raw.get(f"/servers/{resp.server.id}/actions/{resp.action.id}").json()["action"]["command"] == "create_server"
    assert raw.get(f"/servers/actions/{resp.action.id}").status_code == 200
    assert raw.get(f"/networks/actions/{resp.action.id}").json()["error"]["code"] == "not_found"
    assert {a.command for a in hc.servers.actions.get_all()} == {"create_server", "start_server"}
    fake_hcloud.complete_all_actions()
    assert {a.status for a in hc.servers.get_actions_list(resp.server).actions} == {"success"}
    assert [a.command for a in hc.servers.get_actions(resp.server, status=["success"])] == ["create_server", "start_server"]


def test_injected_action_failure(hc, fake_hcloud):
    fake_hcloud.fail_next_action("create_server", code="server_error", message="cannot create server")
    resp = hc.servers.create("s", server_type=CX23, image=UBUNTU)
    with pytest.raises(ActionFailedException) as exc:
        resp.action.wait_until_finished()
    assert exc.value.action.error == {"code": "server_error", "message": "cannot create server"}
    assert exc.value.action.status == "error"
    assert "cannot create server" in str(exc.value)
    assert hc.servers.get_by_id(resp.server.id).status == "off"
    # only the next one fails
    ok = hc.servers.create("s2", server_type=CX23, image=UBUNTU)
    ok.action.wait_until_finished()
    assert ok.action.status == "success"


# -- injected failures and rate limiting ----------------------------------------------------------------
def test_injected_429_headers_and_hcloud_retry(fake_hcloud, raw):
    fake_hcloud.inject("GET", "/locations", "rate_limit_exceeded", times=1)
    r = raw.get("/locations")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert r.headers["RateLimit-Limit"] == "3600"
    assert r.headers["RateLimit-Remaining"] == "0"
    assert int(r.headers["RateLimit-Reset"]) > time.time()
    ok = raw.get("/locations")
    assert ok.status_code == 200 and int(ok.headers["RateLimit-Remaining"]) > 3500

    hc = client(fake_hcloud)
    fake_hcloud.inject("GET", "/server_types", "rate_limit_exceeded", times=2)
    assert len(hc.server_types.get_all()) == 12  # hcloud retried twice by itself
    assert [r.status for r in fake_hcloud.find_requests("GET", "/server_types")] == [429, 429, 200]

    fake_hcloud.inject("GET", "/images", "rate_limit_exceeded", times=None)
    with pytest.raises(APIException) as exc:
        hc.images.get_all()
    assert exc.value.code == "rate_limit_exceeded"
    assert fake_hcloud.count("GET", "/images") == 6  # 1 try + hcloud's 5 retries


def test_real_rate_limit_bucket():
    fake = start_fake_hcloud(rate_limit=3)
    try:
        with httpx.Client(base_url=fake.endpoint, headers={"Authorization": f"Bearer {fake.token}"}, verify=False) as c:
            remaining = [c.get("/locations").headers["RateLimit-Remaining"] for _ in range(3)]
            assert remaining == ["2", "1", "0"]
            r = c.get("/locations")
            assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    finally:
        fake.stop()
    check_fake(fake)


@pytest.mark.parametrize(
    "code, status, retried",
    [
        ("locked", 423, False),
        ("conflict", 409, True),
        ("resource_unavailable", 412, False),
        ("resource_limit_exceeded", 403, False),
        ("timeout", 504, True),
        ("server_error", 500, False),
    ],
)
def test_injected_api_errors(fake_hcloud, code, status, retried):
    hc = client(fake_hcloud)
    fake_hcloud.inject("POST", "/servers", code)
    if retried:
        resp = hc.servers.create("s", server_type=CX23, image=UBUNTU)
        assert resp.server.name == "s"
    else:
        with pytest.raises(APIException) as exc:
            hc.servers.create("s", server_type=CX23, image=UBUNTU)
        assert exc.value.code == code
    posts = fake_hcloud.find_requests("POST", "/servers", exact=True)
    assert posts[0].status == status and posts[0].injected == code
    assert len(posts) == (2 if retried else 1)
    assert len(fake_hcloud.servers) == (1 if retried else 0)


def test_injected_locked_on_action_with_skip(fake_hcloud):
    hc = client(fake_hcloud)
    s = fake_hcloud.add_server("s")
    fake_hcloud.inject("POST", r"/servers/\d+/actions/poweroff", "locked", skip=1, message="server is locked by a running action")
    hc.servers.power_off(Server(id=s["id"]))  # first one passes
    with pytest.raises(APIException) as exc:
        hc.servers.power_off(Server(id=s["id"]))
    assert api_error(exc) == ("locked", "server is locked by a running action")


def test_injected_html_gateway_errors(fake_hcloud, raw):
    fake_hcloud.inject("GET", "/locations", "html_503")
    r = raw.get("/locations")
    assert r.status_code == 503 and r.headers["Content-Type"] == "text/html"
    assert "<h1>503" in r.text

    hc = client(fake_hcloud)
    fake_hcloud.inject("GET", "/locations", "html_503")
    with pytest.raises(APIException) as exc:  # not JSON: hcloud raises with the HTTP status as code
        hc.locations.get_all()
    assert exc.value.code == 503 and b"<html>" in exc.value.details["content"]

    fake_hcloud.inject("GET", "/locations", "html_502")
    assert len(hc.locations.get_all()) == 6  # hcloud retries 502 by itself
    assert [r.status for r in fake_hcloud.find_requests("GET", "/locations")][-2:] == [502, 200]


# -- validation ------------------------------------------------------------------------------------
def test_request_body_validation(raw, fake_hcloud):
    r = raw.post("/servers", json={"name": "s", "server_type": "cx23"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_input"
    assert err["details"]["fields"] == [{"name": "image", "messages": ["is required"]}]

    r = raw.post("/servers", json={"name": "s", "server_type": {"name": "cx23"}, "image": "debian-12"})
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["name"] == "server_type"

    r = raw.post("/placement_groups", json={"name": "pg", "type": "cluster"})
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["name"] == "type"

    r = raw.post("/ssh_keys", json={"name": "k", "public_key": make_test_public_key("k"), "colour": "red"})
    assert r.status_code == 422 and "unknown field name 'colour'" in r.json()["error"]["message"]

    r = raw.post("/ssh_keys", content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_error"

    r = raw.post("/networks", json={"name": "n", "ip_range": "10.0.0.0/16", "subnets": [{"ip_range": "10.0.1.0/24"}]})
    fields = {f["name"] for f in r.json()["error"]["details"]["fields"]}
    assert r.status_code == 422 and fields == {"subnets.0.network_zone", "subnets.0.type"}
    # integer ids where the document says "ID or name" are accepted, as by the real API
    r = raw.post("/servers", json={"name": "s", "server_type": 114, "image": 161547269, "location": 1})
    assert r.status_code == 201, r.text
    assert fake_hcloud.servers == {r.json()["server"]["id"]: fake_hcloud.servers[r.json()["server"]["id"]]}


def test_unknown_paths_and_methods(raw):
    r = raw.get("/nope")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = raw.patch("/servers")
    assert (r.status_code, r.json()["error"]["code"]) == (405, "method_not_allowed")
    r = raw.get("/servers/999")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")


def test_every_response_is_validated(hc, fake_hcloud):
    hc.servers.create("s", server_type=CX23, image=UBUNTU).action.wait_until_finished()
    hc.locations.get_all()
    assert all(r.status for r in fake_hcloud.requests)
    assert fake_hcloud.violations == []

    # corrupt a stored resource: the fake refuses to send a response the spec forbids
    sid = next(iter(fake_hcloud.servers))
    fake_hcloud.servers[sid]["status"] = "exploded"
    with pytest.raises(APIException) as exc:
        hc.servers.get_by_id(sid)
    assert exc.value.code == "server_error" and "FAKE BUG" in exc.value.message
    assert len(fake_hcloud.violations) == 1 and "status" in fake_hcloud.violations[0]
    with pytest.raises(pytest.fail.Exception, match="exploded"):
        check_fake(fake_hcloud)
    fake_hcloud.violations.clear()  # this test caused the violation on purpose


def test_error_status_table_matches_reference():
    # spot checks of the statuses taken from the API reference's error table
    assert ERROR_STATUS["invalid_input"] == 422
    assert ERROR_STATUS["uniqueness_error"] == 409
    assert ERROR_STATUS["locked"] == 423
    assert ERROR_STATUS["resource_unavailable"] == 412
    assert ERROR_STATUS["resource_limit_exceeded"] == 403
    assert ERROR_STATUS["rate_limit_exceeded"] == 429


def test_concurrent_clients(fake_hcloud):
    from concurrent.futures import ThreadPoolExecutor

    net = fake_hcloud.add_network("n", "10.0.0.0/16")

    def create(i: int) -> int:
        hc = client(fake_hcloud)
        resp = hc.servers.create(f"w-{i}", server_type=CX23, image=UBUNTU, networks=[hc.networks.get_by_id(net["id"])])
        resp.action.wait_until_finished()
        return resp.server.id

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(create, range(8)))
    assert len(set(ids)) == 8
    ips = [s["private_net"][0]["ip"] for s in fake_hcloud.servers.values()]
    assert len(set(ips)) == 8
    assert {s["status"] for s in fake_hcloud.servers.values()} == {"running"}
