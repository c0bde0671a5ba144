"""The diff between inventory and current state (a pure function): create / change / keep / extra, and warnings."""

from __future__ import annotations

from gardenctl.cloud import CloudFirewall, CloudNetwork, CloudPlacementGroup, CloudServer, CloudSSHKey, CloudSubnet, PrivateAddress
from gardenctl.ops.bootstrap.plan import CurrentState, firewall_rules, make_plan
from tests.integration._bootstrap_support import inventory

L = {"gardenos/cluster": "garden"}


def complete(inv) -> CurrentState:
    """Named state: everything the inventory asks for exists and runs."""
    net = CloudNetwork(1, "garden", "10.0.0.0/16", (CloudSubnet("10.0.1.0/24", "eu-central"),), L)
    fw = CloudFirewall(2, "garden", L, tuple(firewall_rules(inv)), ("gardenos/cluster=garden",))
    groups = tuple(CloudPlacementGroup(10 + i, name, "spread", {**L, "gardenos/role": role}) for i, (name, role) in enumerate(inv.placement_groups))
    group_id = {g.name: g.id for g in groups}
    servers = tuple(
        CloudServer(100 + i, n.name, "running", n.server_type, n.location, {**L, "gardenos/role": n.role}, f"49.13.0.{i}", (PrivateAddress(1, n.private_ip),), group_id[n.placement_group])
        for i, n in enumerate(inv.nodes)
    )
    keys = (CloudSSHKey(3, "garden-1", "aa:bb", inv.ssh_public_keys[0], L),)
    return CurrentState(servers=servers, networks=(net,), firewalls=(fw,), placement_groups=groups, ssh_keys=keys)


def test_empty_project_creates_everything(tmp_path):
    inv = inventory(tmp_path)
    plan = make_plan(inv, CurrentState())
    assert plan.counts == {"create": 12, "change": 0, "keep": 0, "extra": 0}
    assert [i.kind for i in plan.items][:3] == ["ssh_key", "network", "firewall"]


def test_complete_cluster_keeps_everything(tmp_path):
    inv = inventory(tmp_path)
    plan = make_plan(inv, complete(inv))
    assert plan.up_to_date and plan.counts["keep"] == 12 and plan.warnings == ()


def test_changes_that_apply_makes(tmp_path):
    inv = inventory(tmp_path)
    state = complete(inv)
    net = CloudNetwork(1, "garden", "10.0.0.0/16", (), L)  # subnet missing
    fw = CloudFirewall(2, "garden", L, tuple(firewall_rules(inv))[:2], ())  # ICMP missing, not applied
    servers = list(state.servers)
    s = servers[0]
    servers[0] = CloudServer(s.id, s.name, "off", s.server_type, s.location, {**L}, s.public_ipv4, (), 10)
    plan = make_plan(inv, CurrentState(servers=tuple(servers), networks=(net,), firewalls=(fw,), placement_groups=state.placement_groups, ssh_keys=state.ssh_keys))
    items = {(i.kind, i.name): i for i in plan.items}
    assert items[("network", "garden")].changes == ("add subnet 10.0.1.0/24",)
    assert items[("firewall", "garden")].changes == ("set rules (22, 6443 from 203.0.113.7/32; ICMP)", "apply to servers labelled gardenos/cluster=garden")
    assert items[("server", "garden-db-1")].changes == ("set label gardenos/role=db", "attach to the private network as 10.0.1.11", "power on")
    assert plan.counts["change"] == 3


def test_drift_apply_does_not_fix_is_a_warning_and_extras_are_listed(tmp_path):
    inv = inventory(tmp_path)
    state = complete(inv)
    servers = list(state.servers)
    s = servers[1]
    servers[1] = CloudServer(s.id, s.name, "running", "cx53", s.location, s.labels, s.public_ipv4, (PrivateAddress(1, "10.0.1.77"),), 10)
    servers.append(CloudServer(999, "garden-k3s-agent-3", "running", "cx23", "fsn1", {**L, "gardenos/role": "k3s-agent"}))
    plan = make_plan(inv, CurrentState(servers=tuple(servers), networks=state.networks, firewalls=state.firewalls, placement_groups=state.placement_groups, ssh_keys=state.ssh_keys))
    assert plan.up_to_date  # nothing apply would do ...
    assert any("garden-db-2 is cx53" in w for w in plan.warnings)  # ... but the operator is told
    assert any("has private address 10.0.1.77" in w for w in plan.warnings)
    extra = [i for i in plan.items if i.action == "extra"]
    assert [(i.kind, i.name) for i in extra] == [("server", "garden-k3s-agent-3")]


def test_key_already_in_project_under_another_name_is_kept(tmp_path):
    inv = inventory(tmp_path)
    state = CurrentState(ssh_keys=(CloudSSHKey(7, "laptop", "aa", inv.ssh_public_keys[0] + "", {}),))
    item = make_plan(inv, state).of("ssh_key")[0]
    assert (item.action, item.name) == ("keep", "laptop") and "never deleted" in item.detail
