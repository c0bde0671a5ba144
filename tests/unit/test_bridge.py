"""gardenctl.bridge: the selector-less Services + EndpointSlices that connect K3s workloads to HAProxy on the db nodes."""

from __future__ import annotations

import pytest
import yaml

from gardenctl.bridge import BridgeNames, DbNode, main, render_db_bridge, to_yaml
from gardenctl.errors import ConfigError, ExitCode

NODES = [("db-1", "10.0.0.11"), ("db-2", "10.0.0.12"), ("db-3", "10.0.0.13")]


def by_kind(objs, kind):
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def test_three_nodes_give_two_selectorless_services_and_two_slices():
    objs = render_db_bridge("gardenos", NODES, 5000, 5001)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("Service", "db-rw"),
        ("Service", "db-ro"),
        ("EndpointSlice", "db-rw-ipv4"),
        ("EndpointSlice", "db-ro-ipv4"),
    ]
    services = by_kind(objs, "Service")
    for name, port in (("db-rw", 5000), ("db-ro", 5001)):
        spec = services[name]["spec"]
        assert "selector" not in spec
        assert spec["ports"] == [{"name": "postgres", "port": 5432, "protocol": "TCP", "targetPort": port}]
        assert services[name]["metadata"]["namespace"] == "gardenos"
        assert services[name]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gardenos"
    slices = by_kind(objs, "EndpointSlice")
    rw = slices["db-rw-ipv4"]
    assert rw["apiVersion"] == "discovery.k8s.io/v1"
    assert rw["addressType"] == "IPv4"
    assert rw["metadata"]["labels"]["kubernetes.io/service-name"] == "db-rw"
    assert rw["ports"] == [{"name": "postgres", "port": 5000, "protocol": "TCP"}]
    assert rw["endpoints"] == [
        {"addresses": ["10.0.0.11"], "conditions": {"ready": True}, "hostname": "db-1"},
        {"addresses": ["10.0.0.12"], "conditions": {"ready": True}, "hostname": "db-2"},
        {"addresses": ["10.0.0.13"], "conditions": {"ready": True}, "hostname": "db-3"},
    ]
    assert slices["db-ro-ipv4"]["ports"][0]["port"] == 5001
    # The controller-owned value would make the EndpointSlice controller fight us; ours is distinct.
    assert rw["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] != "endpointslice-controller.k8s.io"


def test_objects_pass_the_kubernetes_schema():
    import kubernetes_validate

    for obj in render_db_bridge("gardenos", NODES + [("db-4", "fd00::14")], 6432, 6433):
        kubernetes_validate.validate(obj, "1.32", strict=True)


def test_mixed_families_get_one_slice_each_and_names_and_ports_are_configurable():
    objs = render_db_bridge(
        "db", [DbNode("a", "10.1.0.1"), ("b", "fd00::2")], 7000, 7001, BridgeNames(rw="pg-primary", ro="pg-replicas"), service_port=6543
    )
    slices = by_kind(objs, "EndpointSlice")
    assert set(slices) == {"pg-primary-ipv4", "pg-primary-ipv6", "pg-replicas-ipv4", "pg-replicas-ipv6"}
    assert slices["pg-primary-ipv6"]["endpoints"][0]["addresses"] == ["fd00::2"]
    assert slices["pg-replicas-ipv4"]["ports"][0]["port"] == 7001
    assert by_kind(objs, "Service")["pg-primary"]["spec"]["ports"][0]["port"] == 6543


def test_ipv6_addresses_are_normalised_and_odd_node_names_get_no_hostname():
    objs = render_db_bridge("gardenos", [("DB_One", "FD00:0:0::1")], 5000, 5001)
    endpoint = by_kind(objs, "EndpointSlice")["db-rw-ipv6"]["endpoints"][0]
    assert endpoint == {"addresses": ["fd00::1"], "conditions": {"ready": True}}


def test_the_function_is_pure_and_deterministic():
    assert render_db_bridge("gardenos", NODES) == render_db_bridge("gardenos", list(NODES))
    one = render_db_bridge("gardenos", NODES)
    one[0]["metadata"]["name"] = "changed"
    assert render_db_bridge("gardenos", NODES)[0]["metadata"]["name"] == "db-rw"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(nodes=[]), "at least one db node"),
        (dict(nodes=[("db-1", "10.0.0.300")]), "is not an IP address"),
        (dict(nodes=[("db-1", "127.0.0.1")]), "cannot be an endpoint"),
        (dict(nodes=[("db-1", "169.254.0.5")]), "cannot be an endpoint"),
        (dict(nodes=[("db-1", "10.0.0.1"), ("db-1", "10.0.0.2")]), "duplicate name db-1"),
        (dict(nodes=[("db-1", "10.0.0.1"), ("db-2", "10.0.0.1")]), "duplicate address 10.0.0.1"),
        (dict(nodes=["db-1"]), "expected (name, private ip)"),
        (dict(rw_port=5000, ro_port=5000), "must differ"),
        (dict(rw_port=0), "is not a TCP port"),
        (dict(ro_port=70000), "is not a TCP port"),
        (dict(rw_port=True), "is not a TCP port"),
        (dict(namespace="Garden OS"), "not a valid Kubernetes name"),
        (dict(names=BridgeNames(rw="db", ro="db")), "different names"),
        (dict(names=BridgeNames(rw="1db", ro="db-ro")), "not a valid Kubernetes name"),
    ],
)
def test_bad_input_is_a_config_error_with_a_clear_message(kwargs, message):
    args = dict(namespace="gardenos", nodes=NODES, rw_port=5000, ro_port=5001, names=BridgeNames())
    args.update(kwargs)
    with pytest.raises(ConfigError) as info:
        render_db_bridge(args["namespace"], args["nodes"], args["rw_port"], args["ro_port"], args["names"])
    assert message in info.value.message
    assert info.value.exit_code == ExitCode.CONFIG


def test_to_yaml_round_trips_with_a_header():
    objs = render_db_bridge("gardenos", NODES)
    text = to_yaml(objs, header="line one\n\nline three")
    assert text.startswith("# line one\n#\n# line three\n---\n")
    assert [d for d in yaml.safe_load_all(text) if d] == objs


def test_command_line_prints_the_manifests_and_refuses_bad_nodes(capsys):
    assert main(["--node", "db-1=10.0.0.11", "--node", "db-2=10.0.0.12", "--rw-port", "6000", "--ro-port", "6001"]) == 0
    out = capsys.readouterr().out
    assert "python -m gardenctl.bridge --namespace gardenos --node db-1=10.0.0.11 --node db-2=10.0.0.12" in out
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert docs == render_db_bridge("gardenos", [("db-1", "10.0.0.11"), ("db-2", "10.0.0.12")], 6000, 6001)
    assert main(["--node", "db-1=127.0.0.1"]) == int(ExitCode.CONFIG)
    err = capsys.readouterr().err
    assert err.startswith("Error: db node 'db-1': 127.0.0.1 cannot be an endpoint")
    assert "hint: " in err
