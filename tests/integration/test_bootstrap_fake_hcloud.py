"""bootstrap plan / apply / destroy against the fake Hetzner Cloud API, through the real hcloud library.

Covers the Done-when list of issue 4 (zero creates on a second apply, resume after an interruption, destroy removes
exactly the cluster's resources) and field case F10 (every error code through the fake's injection API).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from gardenctl.backends.hetzner import HetznerCloud, RetryPolicy
from gardenctl.cloud import CLUSTER_LABEL, ROLE_LABEL
from gardenctl.errors import BackendError, OperationFailed, PreconditionFailed
from gardenctl.inventory import check_catalog
from gardenctl.ops.bootstrap import apply_infrastructure, destroy, plan, plan_destroy
from gardenctl.ops.bootstrap.secrets import generate
from tests.fakes.hetzner import make_test_public_key
from tests.fakes.hetzner.fixture import fake_hcloud  # noqa: F401  (fixture)
from tests.integration._bootstrap_support import FakeClock, hetzner_section, inventory

SECRETS = generate()
RETIRED = datetime(2025, 12, 31, tzinfo=timezone.utc)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def cloud(fake_hcloud, clock):
    return HetznerCloud(fake_hcloud.token, endpoint=fake_hcloud.endpoint, clock=clock, wall=clock.wall, timeout_seconds=10)


@pytest.fixture
def inv(tmp_path):
    return inventory(tmp_path)


def posts(fake, since: int = 0) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests[since:] if r.method == "POST"]


def creates(fake, since: int = 0) -> list[str]:
    """POSTs that create a resource (not actions on existing ones)."""
    return [p for p in posts(fake, since) if "/actions/" not in p]


def apply(cloud, inv, **kw):
    return apply_infrastructure(cloud, inv, SECRETS, plan(cloud, inv), **kw)


# ------------------------------------------------------------------------------------------------ apply / idempotency


def test_first_apply_creates_everything_in_order_and_verifies(fake_hcloud, cloud, inv):
    first = plan(cloud, inv)
    assert first.counts == {"create": 12, "change": 0, "keep": 0, "extra": 0}
    assert all(r.method == "GET" for r in fake_hcloud.requests), "plan must only read"

    events = []
    result = apply_infrastructure(cloud, inv, SECRETS, first, progress=events.append)

    made = creates(fake_hcloud)
    order = [p.split()[1].split("/")[1] for p in made]
    assert order[:3] == ["ssh_keys", "networks", "firewalls"]
    assert order[3:6] == ["placement_groups"] * 3 and order[6:] == ["servers"] * 6
    assert len(result.created) == 12 and not result.changed
    # every server: powered off at create, attached with its inventory address, then powered on
    assert fake_hcloud.count("POST", "/servers", exact=True) == 6
    assert len([p for p in posts(fake_hcloud) if p.endswith("/attach_to_network")]) == 6
    assert len([p for p in posts(fake_hcloud) if p.endswith("/poweron")]) == 6
    body = next(r.body for r in fake_hcloud.requests if r.method == "POST" and r.path == "/servers")
    assert body["start_after_create"] is False and body["labels"][CLUSTER_LABEL] == "garden"
    by_name = {s["name"]: s for s in fake_hcloud.servers.values()}
    for node in inv.nodes:
        server = by_name[node.name]
        assert server["status"] == "running"
        assert server["labels"] == {CLUSTER_LABEL: "garden", ROLE_LABEL: node.role}
        assert [p["ip"] for p in server["private_net"]] == [node.private_ip]
        assert server["server_type"]["name"] == node.server_type
    db1 = by_name["garden-db-1"]
    user_data = fake_hcloud.server_user_data(db1["id"])
    assert user_data.startswith("#cloud-config") and "etcd-server" in user_data and SECRETS.rest_password in user_data
    # spread groups, one per pool; the firewall reaches every server through the label selector
    groups = {pg["name"]: pg for pg in fake_hcloud.placement_groups.values()}
    assert set(groups) == {"garden-db", "garden-k3s-server", "garden-k3s-agent"}
    assert all(pg["type"] == "spread" for pg in groups.values()) and len(groups["garden-db"]["servers"]) == 3
    fw = next(iter(fake_hcloud.firewalls.values()))
    assert fw["applied_to"] == [{"type": "label_selector", "label_selector": {"selector": "gardenos/cluster=garden"}, "applied_to_resources": []}]
    ports = sorted((r["protocol"], r["port"], tuple(r["source_ips"])) for r in fw["rules"])
    assert ports == [("icmp", None, ("0.0.0.0/0", "::/0")), ("tcp", "22", ("203.0.113.7/32",)), ("tcp", "6443", ("203.0.113.7/32",))]
    assert all(len(fake_hcloud.render_server(s)["public_net"]["firewalls"]) == 1 for s in fake_hcloud.servers.values())
    # progress reported for each phase
    assert {e.phase for e in events} >= {"ssh keys", "network", "firewall", "placement groups", "servers"}
    assert [n.status for n in result.nodes] == ["running"] * 6


def test_second_apply_makes_zero_create_calls(fake_hcloud, cloud, inv):
    apply(cloud, inv)
    before = len(fake_hcloud.requests)
    again = plan(cloud, inv)
    assert again.up_to_date and again.counts["keep"] == 12
    result = apply_infrastructure(cloud, inv, SECRETS, again)
    assert posts(fake_hcloud, before) == []
    assert [r.method for r in fake_hcloud.requests[before:]] == ["GET"] * (len(fake_hcloud.requests) - before)
    assert result.created == () and result.changed == ()


def test_interrupted_apply_creates_only_what_is_missing(fake_hcloud, cloud, inv):
    # the third server create fails (no capacity), as if the first apply was interrupted there
    fake_hcloud.inject("POST", "/servers", "resource_unavailable", times=1, skip=2)
    with pytest.raises(BackendError):
        apply(cloud, inv, parallel=1)
    existing = {s["name"] for s in fake_hcloud.servers.values()}
    assert existing == {"garden-db-1", "garden-db-2"}  # 2 of 3 db servers exist

    before = len(fake_hcloud.requests)
    resumed = plan(cloud, inv)
    assert resumed.counts["create"] == 4 and resumed.counts["keep"] == 8
    apply_infrastructure(cloud, inv, SECRETS, resumed)
    made = creates(fake_hcloud, before)
    assert made == ["POST /servers"] * 4
    assert {s["name"] for s in fake_hcloud.servers.values()} == {n.name for n in inv.nodes}


def test_server_left_powered_off_and_detached_is_fixed_not_recreated(fake_hcloud, cloud, inv):
    apply(cloud, inv)
    server = next(s for s in fake_hcloud.servers.values() if s["name"] == "garden-k3s-agent-2")
    with fake_hcloud.lock:
        server["status"] = "off"
        server["private_net"] = []
    p = plan(cloud, inv)
    item = next(i for i in p.items if i.name == "garden-k3s-agent-2")
    assert item.action == "change"
    assert item.changes == ("attach to the private network as 10.0.1.102", "power on")
    before = len(fake_hcloud.requests)
    apply_infrastructure(cloud, inv, SECRETS, p)
    assert creates(fake_hcloud, before) == []
    assert sorted(p.rsplit("/", 1)[1] for p in posts(fake_hcloud, before)) == ["attach_to_network", "poweron"]
    assert server["status"] == "running" and server["private_net"][0]["ip"] == "10.0.1.102"


def test_existing_ssh_key_in_project_is_used_not_uploaded_and_never_deleted(fake_hcloud, cloud, inv):
    fake_hcloud.add_ssh_key("laptop", public_key=make_test_public_key("op@example"))
    p = plan(cloud, inv)
    key_item = p.of("ssh_key")[0]
    assert key_item.action == "keep" and "laptop" in key_item.detail
    apply_infrastructure(cloud, inv, SECRETS, p)
    assert fake_hcloud.count("POST", "/ssh_keys") == 0
    laptop_id = next(k["id"] for k in fake_hcloud.ssh_keys.values() if k["name"] == "laptop")
    assert all(fake_hcloud.server_ssh_keys(sid) == [laptop_id] for sid in fake_hcloud.servers)
    destroy(cloud, plan_destroy(cloud, inv))
    assert [k["name"] for k in fake_hcloud.ssh_keys.values()] == ["laptop"]


def test_catalog_refuses_retired_and_sold_out_types_by_location(fake_hcloud, cloud, tmp_path):
    types = cloud.list_server_types()
    ok = inventory(tmp_path)
    check_catalog(ok, types)
    # retired (per-location deprecation in the past): refused offline already, and by the catalogue
    retired = inventory(tmp_path, hetzner_section(location="sin", pools={
        "db": {"count": 3, "server-type": "cpx32"}, "k3s-server": {"count": 1, "server-type": "cpx22"}}))
    with pytest.raises(PreconditionFailed) as err:
        check_catalog(retired, types)
    assert "cpx32 is not available in sin" in err.value.message
    assert "cpx32 in" in err.value.hint and "fsn1" in err.value.hint
    # the top-level deprecated flag is not what decides: cx33 retired in fsn1 only, still fine elsewhere
    cx33 = next(t for t in types if t.name == "cx33")
    retired_fsn1 = replace(cx33, locations=tuple(replace(loc, unavailable_after=RETIRED) if loc.location == "fsn1" else loc for loc in cx33.locations))
    patched = [retired_fsn1 if t.name == "cx33" else t for t in types]
    assert not retired_fsn1.deprecated
    with pytest.raises(PreconditionFailed) as err:
        check_catalog(ok, patched)
    assert "cx33 is retired in fsn1" in err.value.message


# ------------------------------------------------------------------------------------------------ F10 error codes


def test_rate_limit_waits_until_reset_header(fake_hcloud, cloud, clock, inv):
    reset = int(clock.wall()) + 42
    fake_hcloud.inject("GET", "/servers", "rate_limit_exceeded", times=1, headers={"RateLimit-Reset": str(reset), "RateLimit-Limit": "3600"})
    plan(cloud, inv)
    assert fake_hcloud.count("GET", "/servers", exact=True) == 2
    assert len(clock.sleeps) == 1 and 42 <= clock.sleeps[0] <= 44  # until the reset (+1 s margin), not a guess
    assert cloud.header_hook_installed


def test_rate_limit_far_in_the_future_stops_with_a_hint(fake_hcloud, cloud, clock, inv):
    fake_hcloud.inject("GET", "/servers", "rate_limit_exceeded", times=1, headers={"RateLimit-Reset": str(int(clock.wall()) + 3000)})
    with pytest.raises(BackendError) as err:
        plan(cloud, inv)
    assert err.value.code == "rate_limit_exceeded" and "resets in about" in err.value.hint
    assert clock.sleeps == []


def test_locked_server_is_retried_with_backoff(fake_hcloud, cloud, clock, inv):
    fake_hcloud.inject("POST", r"/servers/\d+/actions/poweron", "locked", times=2)
    apply(cloud, inv, parallel=1)
    assert len([r for r in fake_hcloud.requests if r.path.endswith("/poweron") and r.injected == "locked"]) == 2
    assert all(s["status"] == "running" for s in fake_hcloud.servers.values())
    assert 1.0 in clock.sleeps and 2.0 in clock.sleeps  # gardenctl's backoff, on gardenctl's clock


def test_conflict_is_retried_by_gardenctl_alone(fake_hcloud, cloud, clock, inv):
    fake_hcloud.inject("POST", "/firewalls", "conflict", times=1)
    apply(cloud, inv)
    # exactly one retry: hcloud's own retry loop is off on this client, the policy is in one place
    assert fake_hcloud.count("POST", "/firewalls", exact=True) == 2
    assert clock.sleeps[0] == 1.0


def test_uniqueness_error_adopts_resource_with_the_cluster_label(fake_hcloud, cloud, inv):
    p = plan(cloud, inv)  # nothing exists yet ...
    net = fake_hcloud.add_network("garden", "10.0.0.0/16", labels={CLUSTER_LABEL: "garden"})  # ... then it appears
    result = apply_infrastructure(cloud, inv, SECRETS, p)
    assert fake_hcloud.count("POST", "/networks", exact=True) == 1
    assert fake_hcloud.find_requests("POST", "/networks", exact=True)[0].status == 409
    assert len(fake_hcloud.networks) == 1
    assert all(s["private_net"][0]["network"] == net["id"] for s in fake_hcloud.servers.values())
    assert "network garden" not in result.created


def test_uniqueness_error_refuses_a_foreign_resource_of_the_same_name(fake_hcloud, cloud, inv):
    p = plan(cloud, inv)
    fake_hcloud.add_network("garden", "10.0.0.0/16", labels={"team": "other"})
    with pytest.raises(PreconditionFailed) as err:
        apply_infrastructure(cloud, inv, SECRETS, p)
    assert "does not carry gardenos/cluster=garden" in err.value.message
    assert fake_hcloud.count("POST", "/servers") == 0


@pytest.mark.parametrize("code, words", [("resource_unavailable", "another server-type or location"), ("resource_limit_exceeded", "limit")])
def test_capacity_errors_stop_with_a_suggestion(fake_hcloud, cloud, inv, code, words):
    fake_hcloud.inject("POST", "/servers", code, times=None)
    with pytest.raises(BackendError) as err:
        apply(cloud, inv, parallel=1)
    assert err.value.code == code and words in err.value.hint
    assert code in err.value.message
    assert fake_hcloud.count("POST", "/servers", exact=True) == 1  # never retried


def test_action_ending_in_error_reports_command_code_and_message(fake_hcloud, cloud, inv):
    fake_hcloud.fail_next_action("attach_to_network", code="ip_not_available", message="the IP is taken")
    with pytest.raises(OperationFailed) as err:
        apply(cloud, inv, parallel=1)
    msg = err.value.message
    assert "attach_to_network" in msg and "ip_not_available" in msg and "the IP is taken" in msg


def test_html_gateway_error_has_an_integer_code_and_is_retried(fake_hcloud, cloud, clock, inv):
    fake_hcloud.inject("GET", "/networks", "html_502", times=1)
    p = plan(cloud, inv)
    assert p.counts["create"] == 12
    assert fake_hcloud.count("GET", "/networks", exact=True) == 2 and clock.sleeps == [1.0]


def test_html_gateway_error_that_persists_is_reported_with_its_status(fake_hcloud, clock, inv):
    cloud = HetznerCloud(fake_hcloud.token, endpoint=fake_hcloud.endpoint, clock=clock, wall=clock.wall, policy=RetryPolicy(max_attempts=3))
    fake_hcloud.inject("GET", "/servers", "html_503", times=None)
    with pytest.raises(BackendError) as err:
        plan(cloud, inv)
    assert err.value.status == 503 and "HTTP 503" in err.value.message
    assert fake_hcloud.count("GET", "/servers", exact=True) == 3


def test_unauthorized_token_is_one_clear_error(fake_hcloud, clock, inv):
    cloud = HetznerCloud("wrong", endpoint=fake_hcloud.endpoint, clock=clock)
    with pytest.raises(BackendError) as err:
        plan(cloud, inv)
    assert err.value.code == "unauthorized" and "read-write token" in err.value.hint


# ------------------------------------------------------------------------------------------------ destroy


def test_destroy_removes_exactly_the_clusters_resources_in_reverse_order(fake_hcloud, cloud, inv):
    apply(cloud, inv)
    other = fake_hcloud.add_server("other-db-1", labels={CLUSTER_LABEL: "other", ROLE_LABEL: "db"})
    foreign_net = fake_hcloud.add_network("shared", "10.1.0.0/16")
    foreign_fw = fake_hcloud.add_firewall("garden-office")  # similar name, no label
    before = len(fake_hcloud.requests)
    dp = plan_destroy(cloud, inv)
    assert len(dp.servers) == 6 and len(dp.networks) == 1 and len(dp.firewalls) == 1 and len(dp.placement_groups) == 3 and len(dp.ssh_keys) == 1
    result = destroy(cloud, dp)
    deletes = [r.path.split("/")[1] for r in fake_hcloud.requests[before:] if r.method == "DELETE"]
    assert deletes == ["servers"] * 6 + ["firewalls"] + ["placement_groups"] * 3 + ["networks", "ssh_keys"]
    assert set(fake_hcloud.servers) == {other["id"]}
    assert set(fake_hcloud.networks) == {foreign_net["id"]} and set(fake_hcloud.firewalls) == {foreign_fw["id"]}
    assert fake_hcloud.placement_groups == {} and fake_hcloud.ssh_keys == {}
    assert len(result.deleted) == 12
    assert plan_destroy(cloud, inv).empty


def test_destroy_refuses_a_protected_cluster(fake_hcloud, cloud, tmp_path):
    inv = inventory(tmp_path, hetzner_section(protected=True))
    apply(cloud, inv)
    before = len(fake_hcloud.requests)
    with pytest.raises(PreconditionFailed) as err:
        destroy(cloud, plan_destroy(cloud, inv))
    assert "protected" in err.value.message
    assert [r for r in fake_hcloud.requests[before:] if r.method == "DELETE"] == []


def test_request_counts_for_the_report(fake_hcloud, cloud, inv, tmp_path):
    """Not an assertion on timing: records how many requests each scenario sends (docs/bootstrap-requests.json)."""
    t0 = time.perf_counter()
    apply(cloud, inv)
    first = len(fake_hcloud.requests)
    apply(cloud, inv)
    second = len(fake_hcloud.requests) - first
    summary = {"first_apply_requests": first, "first_apply_posts": len(posts(fake_hcloud)[: first]), "second_apply_requests": second,
               "second_apply_posts": len(posts(fake_hcloud, first)), "seconds": round(time.perf_counter() - t0, 2)}
    (tmp_path / "counts.json").write_text(json.dumps(summary))
    print("bootstrap request counts:", summary)
    assert summary["second_apply_posts"] == 0
