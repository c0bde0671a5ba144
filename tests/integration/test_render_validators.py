"""Every file `bootstrap render` writes passes its real validator: cloud-init schema, patroni --validate-config,
haproxy -c. Plus: the bridge manifests parse as Kubernetes objects.

Patroni's validator connects to every address it validates (listen addresses must be free, etcd hosts reachable) and
refuses loopback connect addresses. The Hetzner render uses private 10.x addresses, which must never be contacted
from here: the validation therefore runs in a network namespace of its own (``unshare -n``, as root) where the db
nodes' private addresses sit on that namespace's loopback device and small listeners stand in for etcd. Patroni also
checks that ``postgresql.bin_dir`` exists and holds ``postgres``: the inventory here uses debian-12, whose
PostgreSQL 15 is the one installed on this machine (/usr/lib/postgresql/15/bin), so that check runs for real too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from gardenctl.ops.bootstrap.render import render_all, stack_spec
from gardenctl.ops.bootstrap.secrets import generate
from tests.integration._bootstrap_support import hetzner_section, inventory

ROOT = Path(__file__).resolve().parents[2]
PATRONI = Path(sys.executable).with_name("patroni")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("render")
    inv = inventory(tmp, hetzner_section(k3s={"tls-san": ["k8s.example.org"]}, pools={
        "db": {"count": 3, "server-type": "cx33", "image": "debian-12"},
        "k3s-server": {"count": 3, "server-type": "cx23"},
        "k3s-agent": {"count": 2, "server-type": "cx23"}}))
    out = {}
    for label, secrets in (("real", generate()), ("redacted", generate().redacted())):
        d = tmp / label
        for f in render_all(inv, secrets):
            path = d / f.node / f.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f.content)
        out[label] = d
    return inv, out


def _files(d: Path, name: str) -> list[Path]:
    return sorted(d.glob(f"*/{name}"))


@pytest.mark.skipif(shutil.which("cloud-init") is None, reason="cloud-init is not installed (Debian package cloud-init)")
@pytest.mark.parametrize("label", ["real", "redacted"])
def test_user_data_passes_cloud_init_schema(rendered, label):
    _, out = rendered
    files = _files(out[label], "cloud-init.yaml")
    assert len(files) == 8
    for path in files:
        # cloud-init 22.4 (Debian 12): `cloud-init schema --config-file FILE`, exit 0 and "Valid cloud-config"
        res = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "Valid cloud-config" in res.stdout, (path, res.stdout, res.stderr)
        assert len(path.read_bytes()) <= 32 * 1024


@pytest.mark.skipif(shutil.which("cloud-init") is None, reason="cloud-init is not installed")
def test_cloud_init_schema_does_reject_a_broken_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("#cloud-config\npackages: postgresql\nwrite_files:\n- path: 3\n")
    res = subprocess.run(["cloud-init", "schema", "--config-file", str(bad)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "write_files.0.path" in res.stdout + res.stderr


def test_user_data_carries_the_rendered_configs(rendered):
    inv, out = rendered
    data = yaml.safe_load((out["real"] / "garden-db-2" / "cloud-init.yaml").read_text())
    files = {f["path"]: f for f in data["write_files"]}
    assert files["/etc/patroni/config.yml"]["content"] == (out["real"] / "garden-db-2" / "patroni.yml").read_text()
    assert files["/etc/haproxy/haproxy.cfg"]["content"] == (out["real"] / "garden-db-2" / "haproxy.cfg").read_text()
    assert files["/etc/default/etcd"]["content"] == (out["real"] / "garden-db-2" / "etcd.env").read_text()
    assert files["/etc/patroni/config.yml"]["owner"] == "postgres:postgres" and files["/etc/patroni/config.yml"]["permissions"] == "0600"
    assert set(data["packages"]) >= {"postgresql", "patroni", "etcd-server", "haproxy"}
    etcd = (out["real"] / "garden-db-2" / "etcd.env").read_text()
    assert 'ETCD_INITIAL_CLUSTER="garden-db-1=http://10.0.1.11:2380,garden-db-2=http://10.0.1.12:2380,garden-db-3=http://10.0.1.13:2380"' in etcd
    assert 'ETCD_LISTEN_PEER_URLS="http://10.0.1.12:2380"' in etcd
    patroni = yaml.safe_load((out["real"] / "garden-db-2" / "patroni.yml").read_text())
    assert patroni["restapi"]["listen"] == "10.0.1.12:8008" and patroni["restapi"]["authentication"]["username"] == "patroni"
    assert patroni["bootstrap"]["dcs"]["ttl"] == 20 and patroni["bootstrap"]["dcs"]["loop_wait"] == 2  # the lab's profile
    hap = (out["real"] / "garden-db-2" / "haproxy.cfg").read_text()
    assert "bind 10.0.1.12:5000" in hap and "bind 10.0.1.12:5001" in hap and "option httpchk GET /primary" in hap and "option httpchk GET /replica" in hap


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_cfg_passes_haproxy_check(rendered):
    _, out = rendered
    files = _files(out["real"], "haproxy.cfg")
    assert len(files) == 3
    for path in files:
        res = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "Configuration file is valid" in res.stdout + res.stderr, (path, res.stdout, res.stderr)


_NETNS_SCRIPT = textwrap.dedent(
    """
    import socket, subprocess, sys
    addresses, ports, patroni, files = sys.argv[1].split(","), [int(p) for p in sys.argv[2].split(",")], sys.argv[3], sys.argv[4:]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for a in addresses:
        subprocess.run(["ip", "addr", "add", a + "/32", "dev", "lo"], check=True)
    listeners = []
    for a in addresses:
        for p in ports:  # etcd stand-ins: Patroni only checks that the hosts accept connections
            s = socket.create_server((a, p)); listeners.append(s)
    rc = 0
    for f in files:
        r = subprocess.run([patroni, "--validate-config", f], capture_output=True, text=True)
        print(f"== {f} rc={r.returncode}"); print(r.stdout + r.stderr)
        rc |= r.returncode
    sys.exit(rc)
    """
)


def _validate_in_netns(addresses: list[str], files: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["unshare", "-n", "--", sys.executable, "-c", _NETNS_SCRIPT, ",".join(addresses), "2379", str(PATRONI), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _netns_possible() -> str | None:
    if os.geteuid() != 0:
        return "needs root for unshare -n (a private network namespace for the 10.x addresses)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare (util-linux) and ip (iproute2)"
    if not PATRONI.exists():
        return f"patroni is not installed in the venv ({PATRONI})"
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return "unshare -n is not permitted here"
    return None


@pytest.mark.skipif(_netns_possible() is not None, reason=str(_netns_possible()))
@pytest.mark.parametrize("label", ["real", "redacted"])
def test_patroni_yml_passes_patroni_validate_config(rendered, label):
    inv, out = rendered
    files = _files(out[label], "patroni.yml")
    assert len(files) == 3
    spec = stack_spec(inv, generate())
    assert Path(spec.bin_dir, "postgres").exists(), f"{spec.bin_dir}/postgres must exist for patroni's bin_dir check"
    res = _validate_in_netns([n.private_ip for n in inv.nodes_of("db")], files)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("rc=0") == 3


@pytest.mark.skipif(_netns_possible() is not None, reason=str(_netns_possible()))
def test_patroni_validator_is_not_a_rubber_stamp(rendered, tmp_path):
    """The same validator refuses a broken render: a loopback connect address and a bin_dir that does not exist."""
    inv, out = rendered
    data = yaml.safe_load((out["real"] / "garden-db-1" / "patroni.yml").read_text())
    data["restapi"]["connect_address"] = "127.0.0.1:8008"
    data["postgresql"]["bin_dir"] = "/usr/lib/postgresql/99/bin"
    bad = tmp_path / "patroni.yml"
    bad.write_text(yaml.safe_dump(data))
    res = _validate_in_netns([n.private_ip for n in inv.nodes_of("db")], [bad])
    assert res.returncode != 0
    assert "restapi.connect_address" in res.stdout and "bin_dir" in res.stdout


def test_bridge_manifests_point_at_haproxy_on_the_db_nodes(rendered):
    _, out = rendered
    docs = [d for d in yaml.safe_load_all((out["real"] / "cluster" / "db-bridge.yaml").read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds == ["Namespace", "Service", "Service", "EndpointSlice", "EndpointSlice"]
    slices = {d["metadata"]["name"]: d for d in docs if d["kind"] == "EndpointSlice"}
    rw = slices["db-rw-ipv4"]
    assert [e["addresses"][0] for e in rw["endpoints"]] == ["10.0.1.11", "10.0.1.12", "10.0.1.13"]
    assert rw["ports"][0]["port"] == 5000 and slices["db-ro-ipv4"]["ports"][0]["port"] == 5001
    assert all("selector" not in d["spec"] for d in docs if d["kind"] == "Service")


def test_k3s_install_files_are_redacted_and_complete(rendered):
    _, out = rendered
    text = (out["redacted"] / "garden-k3s-server-2" / "k3s-install.sh").read_text()
    assert "K3S_TOKEN=<redacted>" in text and "--server https://10.0.1.21:6443" in text and "--tls-san k8s.example.org" in text
    agent = (out["redacted"] / "garden-k3s-agent-1" / "k3s-install.sh").read_text()
    assert "K3S_URL=https://10.0.1.21:6443" in agent and "sh -s - agent --node-name garden-k3s-agent-1 --node-ip 10.0.1.101" in agent
