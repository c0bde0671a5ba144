"""K3s over SSH against a real sshd on loopback (tests/fakes/sshd.py), with recording shims on the remote side.

The K3s installer cannot run here, so the remote PATH (sshd's ``SetEnv PATH``) starts with shims: ``curl`` prints a
stand-in installer that records its arguments and its K3S_*/INSTALL_K3S_* environment; ``ip`` prints ``ip -j addr``
of a Hetzner node (ens10 / enp7s0); ``k3s`` records ``kubectl apply`` and its input. Everything else is real: the
system ssh client, the env file written with mode 0600, the fingerprint that makes a re-run a no-op, the kubeconfig
fetched with ``cat`` and merged into a real file.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from gardenctl.backends.ssh import SshClient
from gardenctl.ops.bootstrap.cluster import install_cluster
from gardenctl.ops.bootstrap.secrets import generate
from gardenctl.ops.k3s import K3sPaths
from tests.fakes import sshd as sshd_fake
from tests.integration._bootstrap_support import FakeClock, hetzner_section, inventory
from tests.unit.test_k3s import ETH0, LO, _link
from tests.unit.test_kubeconfig import SRV_SANS, k3s_yaml, pki  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(sshd_fake.available() is not None, reason=str(sshd_fake.available()))

# One SSH connection per node, reused (as the bootstrap CLI does): this machine's ssh handshake takes ~1 s.
_MUX_DIR = __import__("tempfile").mkdtemp(prefix="gcmux")
MUX = ("ControlMaster=auto", f"ControlPath={_MUX_DIR}/%C", "ControlPersist=5")
PUBLIC = {"garden-k3s-server-1": "49.13.0.21", "garden-k3s-agent-1": "49.13.0.101", "garden-k3s-agent-2": "49.13.0.102"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    srv = sshd_fake.start_sshd(d / "sshd")
    yield srv
    srv.stop()


@pytest.fixture
def remote_side(server, tmp_path):
    """Shims and scratch paths on the 'node' (this machine, through sshd)."""
    rec = tmp_path / "remote"
    rec.mkdir()
    installer = rec / "installer.sh"
    installer.write_text(
        "#!/bin/sh\n"
        f"log={rec}/installs.log\n"
        'printf "ARGS %s\\n" "$*" >> "$log"\n'
        'env | grep -E "^(K3S_|INSTALL_K3S_)" | sort | sed "s/^/ENV /" >> "$log"\n'
        'echo "---" >> "$log"\n'
    )
    bin_dir = server.dir / "bin"
    shims = {
        "curl": f'#!/bin/sh\nprintf "%s\\n" "$*" >> {rec}/curl.log\ncat {installer}\n',
        "ip": "#!/bin/sh\ncat <<'EOF'\n"
        + json.dumps([LO, ETH0, _link(3, "ens10", ("10.0.1.21", 32)), _link(4, "enp7s0", ("10.0.1.101", 32), ("10.0.1.102", 32))])
        + "\nEOF\n",
        "k3s": f'#!/bin/sh\nprintf "%s\\n" "$*" >> {rec}/k3s.log\ncat > {rec}/applied.yaml\n',
    }
    for name, text in shims.items():
        (bin_dir / name).write_text(text)
        os.chmod(bin_dir / name, 0o755)
    yield rec
    for name in shims:
        (bin_dir / name).unlink(missing_ok=True)


def _run(server, rec, pki, tmp_path, *, secrets=None, saved=None, token_file=None):  # noqa: F811
    inv = inventory(tmp_path, hetzner_section(k3s={"api-address": "127.0.0.1", "version": "v1.31.4+k3s1"}))
    (rec / "k3s.yaml").write_text(k3s_yaml(pki["ca"]))
    paths = K3sPaths(remote_dir=str(rec / "state"), server_token=str(token_file or rec / "no-token"), kubeconfig=str(rec / "k3s.yaml"))
    secrets = secrets or generate()
    saved = saved if saved is not None else []
    kubeconfig = tmp_path / "home" / ".kube" / "config"
    result = install_cluster(
        inv,
        secrets,
        PUBLIC,
        lambda node: SshClient(server.target(name=node, extra_options=MUX)),
        kubeconfig_path=kubeconfig,
        save_token=saved.append,
        paths=paths,
        fetch_sans=lambda host, port, ca: SRV_SANS,
        clock=FakeClock(),
    )
    return inv, result, kubeconfig, secrets


def _installs(rec: Path) -> list[dict]:
    out = []
    for block in (rec / "installs.log").read_text().split("---\n"):
        if not block.strip():
            continue
        lines = block.strip().splitlines()
        out.append({"args": lines[0][5:], "env": dict(line[4:].split("=", 1) for line in lines[1:])})
    return out


def test_install_sends_exact_lines_and_environment(server, remote_side, pki, tmp_path):  # noqa: F811
    rec = remote_side
    inv, result, kubeconfig, secrets = _run(server, rec, pki, tmp_path)
    assert result.interfaces == {"garden-k3s-server-1": "ens10", "garden-k3s-agent-1": "enp7s0", "garden-k3s-agent-2": "enp7s0"}
    assert [r.action for r in result.installs] == ["installed"] * 3
    calls = _installs(rec)
    assert [c["args"].split()[0] for c in calls] == ["server", "agent", "agent"]
    assert calls[0]["args"] == (
        "server --cluster-init --node-name garden-k3s-server-1 --node-ip 10.0.1.21 --advertise-address 10.0.1.21 "
        "--flannel-iface ens10 --node-external-ip 49.13.0.21 --tls-san 10.0.1.21 --tls-san 127.0.0.1 --tls-san 49.13.0.21 "
        "--cluster-cidr 10.42.0.0/16 --service-cidr 10.43.0.0/16"
    )
    assert calls[0]["env"] == {"INSTALL_K3S_VERSION": "v1.31.4+k3s1", "K3S_TOKEN": secrets.k3s_token}
    assert calls[1]["args"] == "agent --node-name garden-k3s-agent-1 --node-ip 10.0.1.101 --flannel-iface enp7s0 --node-external-ip 49.13.0.101"
    assert calls[1]["env"] == {"INSTALL_K3S_VERSION": "v1.31.4+k3s1", "K3S_TOKEN": secrets.k3s_token, "K3S_URL": "https://10.0.1.21:6443"}
    assert (rec / "curl.log").read_text().splitlines() == ["-sfL https://get.k3s.io"] * 3
    # the token went through a 0600 file, never a command line
    env_file = rec / "state" / "k3s-install-garden-k3s-agent-2.env"
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    assert all(secrets.k3s_token not in r.command for r in result.installs)
    assert secrets.k3s_token not in (server.log.read_text() if server.log.exists() else "")
    # kubeconfig merged (F12), bridge applied through k3s kubectl
    cfg = yaml.safe_load(kubeconfig.read_text())
    assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443" and cfg["contexts"][0]["name"] == "garden"
    assert stat.S_IMODE(os.stat(kubeconfig).st_mode) == 0o600
    assert (rec / "k3s.log").read_text().strip() == "kubectl apply -f -"
    kinds = [d["kind"] for d in yaml.safe_load_all((rec / "applied.yaml").read_text()) if d]
    assert kinds == ["Namespace", "Service", "Service", "EndpointSlice", "EndpointSlice"]
    assert result.token_source == "state"


def test_rerun_changes_nothing(server, remote_side, pki, tmp_path):  # noqa: F811
    rec = remote_side
    _, _, _, secrets = _run(server, rec, pki, tmp_path)
    before = (rec / "installs.log").read_text()
    _, again, _, _ = _run(server, rec, pki, tmp_path, secrets=secrets)
    assert [r.action for r in again.installs] == ["unchanged"] * 3
    assert (rec / "installs.log").read_text() == before  # the installer was not run again


def test_token_is_read_back_from_a_running_first_server(server, remote_side, pki, tmp_path):  # noqa: F811
    rec = remote_side
    token_file = rec / "server-token"
    token_file.write_text("K10running::server:abc\n")
    saved: list[str] = []
    _, result, _, _ = _run(server, rec, pki, tmp_path, saved=saved, token_file=token_file)
    assert result.token_source == "first-server" and saved == ["K10running::server:abc"]
    assert {c["env"]["K3S_TOKEN"] for c in _installs(rec)} == {"K10running::server:abc"}


def test_missing_san_stops_before_touching_the_kubeconfig(server, remote_side, pki, tmp_path):  # noqa: F811
    from gardenctl.errors import PreconditionFailed

    rec = remote_side
    inv = inventory(tmp_path, hetzner_section(k3s={"api-address": "203.0.113.10"}))
    (rec / "k3s.yaml").write_text(k3s_yaml(pki["ca"]))
    paths = K3sPaths(remote_dir=str(rec / "state"), server_token=str(rec / "none"), kubeconfig=str(rec / "k3s.yaml"))
    kubeconfig = tmp_path / "config"
    with pytest.raises(PreconditionFailed) as err:
        install_cluster(inv, generate(), PUBLIC, lambda node: SshClient(server.target(name=node)), kubeconfig_path=kubeconfig,
                        save_token=lambda t: None, paths=paths, fetch_sans=lambda h, p, ca: SRV_SANS, clock=FakeClock())
    assert "--tls-san 203.0.113.10" in err.value.hint
    assert not kubeconfig.exists()
    assert base64.b64encode(pki["ca"])  # the CA came from the fetched file
