"""Every file gardenctl sends to a Hetzner node, rendered from the inventory (pure functions, no I/O).

db nodes get cloud-init user data that installs PostgreSQL, Patroni, etcd and HAProxy from the distribution's
packages and writes their configs, rendered through `gardenctl.stack` (the lab renders the very same way):

* ``/etc/default/etcd``: Debian's etcd-server reads ``ETCD_*`` variables from it; the initial cluster is the three db
  nodes' private addresses; the data dir is fresh (``/var/lib/etcd/gardenos``), so the single-member cluster the
  package starts on install cannot leak into ours;
* ``/etc/patroni/config.yml`` (and a systemd drop-in that pins Patroni to it): REST API with authentication,
  listening on the private address; timing as in the lab unless the inventory says otherwise;
* ``/etc/haproxy/haproxy.cfg``: read-write (``/primary``) and read-only (``/replica``) listeners on the private
  address, ports 5000/5001, stats on 7000.

Config files that the packages also ship are written with ``defer: true`` (after the packages are installed), and
``runcmd`` drops the package's default PostgreSQL cluster before Patroni bootstraps its own.
K3s nodes get a small user data (hostname, curl); K3s itself is installed over SSH (`gardenctl.ops.k3s`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import yaml

from gardenctl import yamltext
from gardenctl.bridge import render_db_bridge, to_yaml
from gardenctl.inventory import Inventory, NodeSpec
from gardenctl.ops.bootstrap.secrets import BootstrapSecrets
from gardenctl.ops.k3s import DEFAULT_PATHS, K3sInstall, K3sNode, install_plan
from gardenctl.stack import Credentials, StackNode, StackSpec, etcd_args, haproxy_config, patroni_config

PG_PORT, REST_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT = 5432, 8008, 2379, 2380
HAPROXY_RW_PORT, HAPROXY_RO_PORT, HAPROXY_STATS_PORT = 5000, 5001, 7000
ETCD_DATA_DIR = "/var/lib/etcd/gardenos"
PATRONI_CONFIG = "/etc/patroni/config.yml"
USER_DATA_LIMIT = 32 * 1024  # Hetzner refuses larger user data
BRIDGE_NAMESPACE = "gardenos"


@dataclass(frozen=True, slots=True)
class RenderedFile:
    node: str  # node name, or "cluster" for cluster-wide files
    name: str  # file name in `bootstrap render DIR/<node>/`
    content: str
    target: str | None = None  # where it goes on the node (None: sent another way)
    kind: str = "text"  # cloud-init | patroni | haproxy | etcd-env | k3s | manifests


@dataclass(frozen=True, slots=True)
class RenderedRow:
    node: str
    file: str
    target: str | None
    kind: str
    bytes: int


@dataclass(frozen=True, slots=True)
class RenderResult:
    """What `bootstrap render DIR` wrote."""

    __kind__ = "BootstrapRender"
    cluster: str
    directory: str
    files: tuple[RenderedRow, ...]


def stack_spec(inventory: Inventory, secrets: BootstrapSecrets) -> StackSpec:
    """The Patroni stack of the db nodes as a StackSpec: private addresses, Hetzner ports, the lab's timing profile."""
    pg = inventory.stack.postgres_version
    nodes = tuple(
        StackNode(
            name=n.name,
            host=n.private_ip,
            pg_port=PG_PORT,
            rest_port=REST_PORT,
            etcd_client_port=ETCD_CLIENT_PORT,
            etcd_peer_port=ETCD_PEER_PORT,
            data_dir=f"/var/lib/postgresql/{pg}/main",
            config_dir="/var/lib/postgresql",
        )
        for n in inventory.nodes_of("db")
    )
    return StackSpec(
        scope=inventory.stack.scope,
        nodes=nodes,
        credentials=Credentials(
            superuser_password=secrets.superuser_password,
            replication_password=secrets.replication_password,
            rewind_password=secrets.rewind_password,
            rest_password=secrets.rest_password,
        ),
        timing=inventory.stack.timing,
        bin_dir=f"/usr/lib/postgresql/{pg}/bin",
        synchronous_mode=inventory.stack.synchronous_mode,
        client_networks=(inventory.subnet, "127.0.0.1/32"),
        replication_networks=(inventory.subnet, "127.0.0.1/32"),
        listen_all=False,
        haproxy_bind="127.0.0.1",  # replaced per node by its private address
        haproxy_rw_port=HAPROXY_RW_PORT,
        haproxy_ro_port=HAPROXY_RO_PORT,
        haproxy_stats_port=HAPROXY_STATS_PORT,
        haproxy_stats_socket="/run/haproxy/admin.sock",
        etcd_cluster_token=secrets.etcd_cluster_token,
    )


def etcd_env(spec: StackSpec, node: StackNode) -> str:
    """``/etc/default/etcd`` for Debian's etcd-server: the same settings as the lab's flags, as ETCD_* variables."""
    args = etcd_args(spec, node, ETCD_DATA_DIR, listen_host=node.host)
    lines = ["# Rendered by gardenctl: etcd member of the Patroni DCS on the private network.", "# Debian's etcd.service reads this file; etcd maps each ETCD_* variable to its --flag."]
    for i in range(0, len(args), 2):
        flag, value = args[i], args[i + 1]
        lines.append(f"ETCD_{flag.lstrip('-').replace('-', '_').upper()}=\"{value}\"")
    return "\n".join(lines) + "\n"


def patroni_yaml(spec: StackSpec, node: StackNode) -> str:
    return "# Rendered by gardenctl.\n" + yamltext.dump(patroni_config(spec, node))


def haproxy_cfg(spec: StackSpec, node: StackNode) -> str:
    return haproxy_config(dataclasses.replace(spec, haproxy_bind=node.host)) + "\n"


PATRONI_DROPIN = f"""[Service]
# gardenctl: run Patroni with the config it rendered, whatever the package's default path is.
ExecStart=
ExecStart=/usr/bin/patroni {PATRONI_CONFIG}
Restart=on-failure
"""


class _BlockDumper(yamltext.PlainDumper):
    """Multi-line strings as ``|`` blocks, so the files inside user data read like the files themselves."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_BlockDumper.add_representer(str, _str)


def _cloud_config(data: dict[str, Any]) -> str:
    return "#cloud-config\n" + yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, width=1000)


def db_user_data(inventory: Inventory, node: NodeSpec, spec: StackSpec) -> str:
    snode = spec.node(node.name)
    pg = inventory.stack.postgres_version
    data: dict[str, Any] = {
        "hostname": node.name,
        "package_update": True,
        "packages": ["postgresql", "patroni", "etcd-server", "etcd-client", "haproxy", "python3-psycopg2"],
        "write_files": [
            {"path": "/etc/default/etcd", "content": etcd_env(spec, snode), "permissions": "0644", "defer": True},
            {"path": PATRONI_CONFIG, "content": patroni_yaml(spec, snode), "owner": "postgres:postgres", "permissions": "0600", "defer": True},
            {"path": "/etc/systemd/system/patroni.service.d/gardenctl.conf", "content": PATRONI_DROPIN, "permissions": "0644"},
            {"path": "/etc/haproxy/haproxy.cfg", "content": haproxy_cfg(spec, snode), "permissions": "0644", "defer": True},
        ],
        "runcmd": [
            # The package created and started a default cluster; Patroni bootstraps its own in the same place.
            f"if [ -d /etc/postgresql/{pg}/main ]; then pg_dropcluster --stop {pg} main; fi",
            "systemctl daemon-reload",
            "systemctl enable etcd && systemctl restart etcd",
            "systemctl enable patroni && systemctl restart patroni",
            "systemctl enable haproxy && systemctl restart haproxy",
        ],
    }
    return _cloud_config(data)


def k3s_user_data(node: NodeSpec) -> str:
    return _cloud_config({"hostname": node.name, "package_update": True, "packages": ["curl"]})


def user_data(inventory: Inventory, node: NodeSpec, spec: StackSpec) -> str:
    text = db_user_data(inventory, node, spec) if node.role == "db" else k3s_user_data(node)
    if len(text.encode()) > USER_DATA_LIMIT:
        raise ValueError(f"user data of {node.name} is {len(text.encode())} bytes; Hetzner accepts at most {USER_DATA_LIMIT}")
    return text


def k3s_nodes(inventory: Inventory, public_ips: dict[str, str] | None = None) -> list[K3sNode]:
    public_ips = public_ips or {}
    return [
        K3sNode(name=n.name, role=n.role, private_ip=n.private_ip, public_ip=public_ips.get(n.name))
        for n in inventory.nodes
        if n.role in ("k3s-server", "k3s-agent")
    ]


def api_address(inventory: Inventory, public_ips: dict[str, str] | None = None) -> str | None:
    """Where clients reach the Kubernetes API: the configured address, else the first server's public IPv4."""
    if inventory.k3s.api_address:
        return inventory.k3s.api_address
    first = inventory.nodes_of("k3s-server")[0].name
    return (public_ips or {}).get(first)


def k3s_installs(inventory: Inventory, token: str, interfaces: dict[str, str], public_ips: dict[str, str] | None = None) -> list[K3sInstall]:
    return install_plan(
        k3s_nodes(inventory, public_ips),
        token=token,
        interfaces=interfaces,
        api_address=api_address(inventory, public_ips),
        extra_sans=inventory.k3s.tls_san,
        cluster_cidr=inventory.k3s.cluster_cidr,
        service_cidr=inventory.k3s.service_cidr,
        version=inventory.k3s.version,
        channel=inventory.k3s.channel,
    )


def bridge_manifests(inventory: Inventory) -> list[dict[str, Any]]:
    return render_db_bridge(
        BRIDGE_NAMESPACE,
        [(n.name, n.private_ip) for n in inventory.nodes_of("db")],
        rw_port=HAPROXY_RW_PORT,
        ro_port=HAPROXY_RO_PORT,
    )


def bridge_yaml(inventory: Inventory) -> str:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BRIDGE_NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "gardenctl"}}}
    return to_yaml([namespace, *bridge_manifests(inventory)], header="Rendered by gardenctl bootstrap: the database bridge.")


def render_all(
    inventory: Inventory,
    secrets: BootstrapSecrets,
    *,
    interfaces: dict[str, str] | None = None,
    public_ips: dict[str, str] | None = None,
    install_script: str | None = None,
) -> list[RenderedFile]:
    """Every file, per node. Pass ``secrets.redacted()`` for anything a person will read."""
    spec = stack_spec(inventory, secrets)
    files: list[RenderedFile] = []
    for node in inventory.nodes:
        files.append(RenderedFile(node.name, "cloud-init.yaml", user_data(inventory, node, spec), None, "cloud-init"))
        if node.role == "db":
            snode = spec.node(node.name)
            files.append(RenderedFile(node.name, "patroni.yml", patroni_yaml(spec, snode), PATRONI_CONFIG, "patroni"))
            files.append(RenderedFile(node.name, "haproxy.cfg", haproxy_cfg(spec, snode), "/etc/haproxy/haproxy.cfg", "haproxy"))
            files.append(RenderedFile(node.name, "etcd.env", etcd_env(spec, snode), "/etc/default/etcd", "etcd-env"))
    token = secrets.k3s_token or "<redacted>"
    script = install_script or inventory.k3s.install_script
    for install in k3s_installs(inventory, token, interfaces or {}, public_ips):
        env_lines = "".join(f"{k}={v}\n" for k, v in install.redacted_env().items())
        text = (
            f"# K3s installation on {install.node} ({install.role}), run over SSH by gardenctl bootstrap apply.\n"
            f"# 1. environment file {DEFAULT_PATHS.env_file(install.node)} (mode 0600):\n"
            + "".join(f"#    {line}\n" for line in env_lines.splitlines())
            + "# 2. command:\n"
            + install.command(script, DEFAULT_PATHS.env_file(install.node))
            + "\n"
        )
        files.append(RenderedFile(install.node, "k3s-install.sh", text, None, "k3s"))
    files.append(RenderedFile("cluster", "db-bridge.yaml", bridge_yaml(inventory), None, "manifests"))
    return files

