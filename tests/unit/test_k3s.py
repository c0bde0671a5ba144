"""K3s install lines (first server, further servers, agents) and the private interface found by address (F11)."""

from __future__ import annotations

import json

import pytest

from gardenctl.errors import PreconditionFailed
from gardenctl.ops.k3s import ENV_FILE, K3sNode, find_interface, install_plan, tls_sans
from gardenctl.ops.bootstrap.render import k3s_installs
from tests.integration._bootstrap_support import hetzner_section, inventory


def _link(index: int, name: str, *addrs: tuple[str, int], kind: str = "ether", flags: tuple[str, ...] = ("BROADCAST", "MULTICAST", "UP", "LOWER_UP")) -> dict:
    """One entry of `ip -j addr` (iproute2), shaped like the output on a Hetzner Cloud server."""
    return {
        "ifindex": index,
        "ifname": name,
        "flags": list(flags),
        "mtu": 65536 if name == "lo" else (1450 if name != "eth0" else 1500),
        "qdisc": "noqueue" if name == "lo" else "fq_codel",
        "operstate": "UNKNOWN" if name == "lo" else "UP",
        "group": "default",
        "txqlen": 1000,
        "link_type": "loopback" if name == "lo" else kind,
        "address": "00:00:00:00:00:00" if name == "lo" else f"86:00:00:aa:bb:{index:02x}",
        "broadcast": "00:00:00:00:00:00" if name == "lo" else "ff:ff:ff:ff:ff:ff",
        "addr_info": [
            {"family": "inet6" if ":" in ip else "inet", "local": ip, "prefixlen": plen, "scope": "host" if name == "lo" else "global",
             "dynamic": name != "lo", "label": name, "valid_life_time": 86000, "preferred_life_time": 86000}
            for ip, plen in addrs
        ],
    }


LO = _link(1, "lo", ("127.0.0.1", 8), ("::1", 128), flags=("LOOPBACK", "UP", "LOWER_UP"))
ETH0 = _link(2, "eth0", ("49.13.150.129", 32), ("2a01:4f8:c012:1::1", 64))

# cx*/cpx* of the older generations: the private network is ens10
GEN_ENS10 = json.dumps([LO, ETH0, _link(3, "ens10", ("10.0.1.21", 32))])
# newer generations: enp7s0
GEN_ENP7S0 = json.dumps([LO, _link(2, "enp1s0", ("49.13.150.130", 32)), _link(3, "enp7s0", ("10.0.1.22", 32))])
# the address ended up on lo (the route-guessing failure mode): never a flannel interface
ON_LO = json.dumps([_link(1, "lo", ("127.0.0.1", 8), ("10.0.1.23", 32), flags=("LOOPBACK", "UP", "LOWER_UP")), ETH0])
# the same address on two interfaces: ambiguous
TWICE = json.dumps([LO, ETH0, _link(3, "ens10", ("10.0.1.24", 32)), _link(4, "enp7s0", ("10.0.1.24", 32))])


def test_interface_found_by_address_on_both_generations():
    assert find_interface(GEN_ENS10, "10.0.1.21") == "ens10"
    assert find_interface(GEN_ENP7S0, "10.0.1.22") == "enp7s0"
    assert find_interface(json.loads(GEN_ENS10), "10.0.1.21") == "ens10"  # parsed JSON too


def test_loopback_is_refused():
    with pytest.raises(PreconditionFailed) as err:
        find_interface(ON_LO, "10.0.1.23")
    assert "loopback interface lo" in err.value.message and "ens10 or enp7s0" in err.value.hint
    with pytest.raises(PreconditionFailed):
        find_interface(GEN_ENS10, "127.0.0.1")


def test_more_than_one_match_is_refused():
    with pytest.raises(PreconditionFailed) as err:
        find_interface(TWICE, "10.0.1.24")
    assert "more than one interface (ens10, enp7s0)" in err.value.message


def test_no_match_names_the_address():
    with pytest.raises(PreconditionFailed) as err:
        find_interface(GEN_ENS10, "10.0.1.99")
    assert "no interface holds the private address 10.0.1.99" in err.value.message


def test_real_ip_output_of_this_machine_parses():
    """The real `ip -j addr` of the test machine (iproute2 as on Debian 12): lo holds 127.0.0.1 and is refused."""
    import subprocess

    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout
    with pytest.raises(PreconditionFailed):
        find_interface(out, "127.0.0.1")


# ------------------------------------------------------------------------------------------------ flags

SERVERS = [K3sNode("c-k3s-server-1", "k3s-server", "10.0.1.21", "49.13.0.21"), K3sNode("c-k3s-server-2", "k3s-server", "10.0.1.22", "49.13.0.22"), K3sNode("c-k3s-server-3", "k3s-server", "10.0.1.23", "49.13.0.23")]
AGENTS = [K3sNode("c-k3s-agent-1", "k3s-agent", "10.0.1.101", "49.13.0.101")]
IFACES = {"c-k3s-server-1": "ens10", "c-k3s-server-2": "enp7s0", "c-k3s-server-3": "ens10", "c-k3s-agent-1": "enp7s0"}


def test_first_server_further_servers_and_agents():
    installs = install_plan(SERVERS + AGENTS, token="T0KEN", interfaces=IFACES, api_address="k8s.example.org", extra_sans=("10.9.9.9",), version="v1.31.4+k3s1")
    first, second, third, agent = installs
    sans = ["--tls-san", "10.0.1.21", "--tls-san", "10.0.1.22", "--tls-san", "10.0.1.23", "--tls-san", "10.9.9.9", "--tls-san", "49.13.0.21",
            "--tls-san", "49.13.0.22", "--tls-san", "49.13.0.23", "--tls-san", "k8s.example.org"]
    assert list(first.args) == ["server", "--cluster-init", "--node-name", "c-k3s-server-1", "--node-ip", "10.0.1.21", "--advertise-address", "10.0.1.21",
                                "--flannel-iface", "ens10", "--node-external-ip", "49.13.0.21", *sans, "--cluster-cidr", "10.42.0.0/16", "--service-cidr", "10.43.0.0/16"]
    assert list(second.args[:3]) == ["server", "--server", "https://10.0.1.21:6443"]
    assert "--cluster-init" not in second.args and ("--flannel-iface", "enp7s0") == second.args[second.args.index("--flannel-iface"):][:2]
    assert second.args[second.args.index("--tls-san"):] == first.args[first.args.index("--tls-san"):]  # identical SANs on every server
    assert first.env == {"K3S_TOKEN": "T0KEN", "INSTALL_K3S_VERSION": "v1.31.4+k3s1"}
    assert list(agent.args) == ["agent", "--node-name", "c-k3s-agent-1", "--node-ip", "10.0.1.101", "--flannel-iface", "enp7s0", "--node-external-ip", "49.13.0.101"]
    assert agent.env == {"K3S_TOKEN": "T0KEN", "INSTALL_K3S_VERSION": "v1.31.4+k3s1", "K3S_URL": "https://10.0.1.21:6443"}
    for install in installs:  # --node-ip and --flannel-iface always together
        assert ("--node-ip" in install.args) and ("--flannel-iface" in install.args)


def test_token_never_on_the_command_line():
    install = install_plan(SERVERS[:1], token="s3cret-token", interfaces=IFACES, api_address=None)[0]
    cmd = install.command("https://get.k3s.io")
    assert "s3cret-token" not in cmd
    assert cmd.startswith(f"set -a && . {ENV_FILE} && set +a && curl -sfL https://get.k3s.io | sh -s - server --cluster-init")
    assert install.env_file() == "K3S_TOKEN=s3cret-token\n"
    assert install.redacted_env() == {"K3S_TOKEN": "<redacted>"}
    assert install_plan(SERVERS[:1], token="x", interfaces=IFACES, api_address=None)[0].command("/opt/k3s-install.sh").split("&& ")[-1].startswith("sh /opt/k3s-install.sh server")


def test_rerun_renders_identical_flags_and_fingerprint():
    a = install_plan(SERVERS + AGENTS, token="T", interfaces=IFACES, api_address="1.2.3.4")
    b = install_plan(list(SERVERS + AGENTS), token="T", interfaces=dict(IFACES), api_address="1.2.3.4")
    assert a == b and [i.fingerprint("u") for i in a] == [i.fingerprint("u") for i in b]
    c = install_plan(SERVERS + AGENTS, token="other", interfaces=IFACES, api_address="1.2.3.4")
    assert a[0].fingerprint("u") != c[0].fingerprint("u")


def test_tls_sans_sorted_addresses_first():
    assert tls_sans(SERVERS[:1], "api.example.org", ["b.example.org"]) == ("10.0.1.21", "49.13.0.21", "api.example.org", "b.example.org")


def test_installs_from_inventory(tmp_path):
    inv = inventory(tmp_path, hetzner_section(k3s={"tls-san": ["k8s.example.org"], "channel": "stable"}))
    installs = k3s_installs(inv, "tok", {}, {"garden-k3s-server-1": "49.13.1.1"})
    assert [i.node for i in installs] == ["garden-k3s-server-1", "garden-k3s-agent-1", "garden-k3s-agent-2"]
    assert installs[0].env["INSTALL_K3S_CHANNEL"] == "stable"
    assert "<iface-by-address>" in installs[0].args  # before the servers are reachable: a visible placeholder
    assert "49.13.1.1" in installs[0].args and "k8s.example.org" in installs[0].args
