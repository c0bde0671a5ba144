"""After the servers run: K3s over SSH, the kubeconfig (F12), and the database bridge manifests.

Steps, each idempotent: wait until every K3s node answers SSH; find each node's private interface by its address
(F11); take the K3s token from the first server if K3s already runs there (so flags render identically), else from
gardenctl's state; run the installer on nodes whose recorded install fingerprint differs; fetch
``/etc/rancher/k3s/k3s.yaml`` from the first server, check the API address against the serving certificate and merge
it into the user's kubeconfig; apply the bridge manifests with ``k3s kubectl apply`` on the first server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gardenctl.errors import GardenError, PreconditionFailed
from gardenctl.inventory import Inventory
from gardenctl.ops import k3s as k3sops
from gardenctl.ops import kubeconfig as kc
from gardenctl.ops.bootstrap.apply import ApplyEvent, Progress
from gardenctl.ops.bootstrap.render import api_address, bridge_yaml, k3s_installs
from gardenctl.ops.bootstrap.secrets import BootstrapSecrets
from gardenctl.wait import REAL_CLOCK, Clock, wait_until


@dataclass(frozen=True, slots=True)
class ClusterResult:
    installs: tuple[k3sops.NodeInstallResult, ...]
    interfaces: dict[str, str]
    kubeconfig: kc.KubeconfigResult | None
    bridge_applied: bool
    token_source: str  # state | first-server


def _quiet(_e: ApplyEvent) -> None:
    return None


def install_cluster(
    inventory: Inventory,
    secrets: BootstrapSecrets,
    public_ips: dict[str, str],
    connect: Callable[[str], k3sops.Remote],
    *,
    kubeconfig_path: Path,
    save_token: Callable[[str], None],
    progress: Progress = _quiet,
    install_script: str | None = None,
    kubectl: str = "k3s kubectl",
    paths: k3sops.K3sPaths = k3sops.DEFAULT_PATHS,
    fetch_sans: Callable[[str, int, bytes], tuple[str, ...]] = kc.serving_sans,
    api_port: int = k3sops.API_PORT,
    ssh_timeout_seconds: float = 600.0,
    clock: Clock = REAL_CLOCK,
) -> ClusterResult:
    """Install K3s on every K3s node, merge the kubeconfig, apply the bridge. See the module docstring."""
    nodes = [n for n in inventory.nodes if n.role in ("k3s-server", "k3s-agent")]
    first = inventory.nodes_of("k3s-server")[0]
    remotes: dict[str, k3sops.Remote] = {}
    probes: dict[str, k3sops.NodeProbe] = {}

    # 1. one probe per node, repeated until SSH answers (the servers may still be booting): the private interface
    #    by address (F11), the recorded install fingerprint, and on the first server the running cluster's token
    for i, node in enumerate(nodes):
        progress(ApplyEvent("k3s", node.name, "start", i + 1, len(nodes), "waiting for SSH"))
        remote = connect(node.name)

        def probe(remote: Any = remote, node: Any = node) -> tuple[Any, str]:
            try:
                return k3sops.probe_node(remote, node.name, node.private_ip, paths, with_token=node.name == first.name), "ok"
            except GardenError as exc:
                if isinstance(exc, PreconditionFailed):
                    raise  # SSH works; the node itself is wrong (F11): waiting will not help
                return None, exc.message

        probes[node.name] = wait_until(probe, timeout=ssh_timeout_seconds, interval=5.0, what=f"SSH on {node.name}", clock=clock)
        remotes[node.name] = remote
    interfaces = {name: p.interface for name, p in probes.items()}

    # 2. token: a running first server wins, so a re-run (or a lost state dir) renders the same flags
    running = probes[first.name].token
    token_source = "state"
    token = secrets.k3s_token
    if running and running != token:
        token, token_source = running, "first-server"
        save_token(running)
    if not token:
        raise PreconditionFailed("no K3s token in the state and none on the first server")

    # 3. install: first server, further servers one at a time (embedded etcd joins one by one), then agents
    installs = k3s_installs(inventory, token, interfaces, public_ips)
    script = install_script or inventory.k3s.install_script
    results = []
    for i, install in enumerate(installs):
        progress(ApplyEvent("k3s", install.node, "start", i + 1, len(installs), f"install {install.role}"))
        results.append(k3sops.install_node(remotes[install.node], install, script, paths, recorded=probes[install.node].fingerprint))
        progress(ApplyEvent("k3s", install.node, "done", i + 1, len(installs), results[-1].action))

    # 4. kubeconfig (F12)
    address = api_address(inventory, public_ips)
    kube = None
    if address:
        progress(ApplyEvent("kubeconfig", str(kubeconfig_path), "start", 1, 1))
        text = remotes[first.name].get(paths.kubeconfig).decode()
        ca = kc.ca_of(kc.rewrite(text, name=inventory.cluster, server=kc.server_url(address, api_port)))
        sans = fetch_sans(address, api_port, ca)
        kube = kc.merge_into(kubeconfig_path, text, name=inventory.cluster, api_address=address, sans=sans, port=api_port)
        progress(ApplyEvent("kubeconfig", str(kubeconfig_path), "done", 1, 1))

    # 5. the database bridge
    progress(ApplyEvent("bridge", "db-rw/db-ro", "start", 1, 1))
    remotes[first.name].run(f"{kubectl} apply -f -", input=bridge_yaml(inventory), timeout_seconds=120)
    progress(ApplyEvent("bridge", "db-rw/db-ro", "done", 1, 1))
    return ClusterResult(installs=tuple(results), interfaces=interfaces, kubeconfig=kube, bridge_applied=True, token_source=token_source)
