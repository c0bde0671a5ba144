"""K3s on the Hetzner servers: the exact install command line and environment per node, and running it over SSH.

First server: ``server --cluster-init``; further servers: ``server --server https://<first private ip>:6443``;
agents: ``agent`` with ``K3S_URL`` and ``K3S_TOKEN``. On Hetzner's private network every node always gets
``--node-ip`` and ``--advertise-address`` (servers) = its private address, and ``--flannel-iface`` = the interface
that holds that address, found *by address* in ``ip -j addr`` (field case F11: the name is ``ens10`` on some server
generations and ``enp7s0`` on others; guessing by route once picked ``lo``). ``--tls-san`` lists every address
clients use. The token comes from gardenctl's state (generated with `secrets`), or is read back from the first
server, so a re-run renders identical flags; a node whose recorded install fingerprint matches is left alone.

The token never appears on a command line: it goes into an environment file written with mode 0600 and sourced by
the install command. SSH is the system client (`gardenctl.backends.ssh`), see that module for why.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shlex
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

from gardenctl.errors import OperationFailed, PreconditionFailed

API_PORT = 6443
REMOTE_DIR = "/var/lib/gardenctl"
ENV_FILE = f"{REMOTE_DIR}/k3s-install.env"  # default for K3sInstall.command; apply uses K3sPaths.env_file(node)
SERVER_TOKEN_FILE = "/var/lib/rancher/k3s/server/token"
KUBECONFIG_PATH = "/etc/rancher/k3s/k3s.yaml"
REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True)
class K3sPaths:
    """Where things live on a node (the defaults are K3s's own; tests point them into a scratch directory)."""

    remote_dir: str = REMOTE_DIR
    server_token: str = SERVER_TOKEN_FILE
    kubeconfig: str = KUBECONFIG_PATH

    def env_file(self, node: str) -> str:
        return f"{self.remote_dir}/k3s-install-{node}.env"

    def fingerprint_file(self, node: str) -> str:
        return f"{self.remote_dir}/k3s-install-{node}.sha256"


DEFAULT_PATHS = K3sPaths()


class Remote(Protocol):
    """What K3s installation needs from an SSH connection (`gardenctl.backends.ssh.SshClient` provides it)."""

    def run(self, command: Any, *, env: Any = None, input: Any = None, sudo: Any = None, check: bool = True, timeout_seconds: Any = None) -> Any: ...

    def put(self, remote_path: str, data: bytes | str, *, mode: int = 0o644, sudo: Any = None) -> None: ...

    def get(self, remote_path: str, *, sudo: Any = None) -> bytes: ...


@dataclass(frozen=True, slots=True)
class K3sNode:
    name: str
    role: str  # k3s-server | k3s-agent
    private_ip: str
    public_ip: str | None = None


@dataclass(frozen=True, slots=True)
class K3sInstall:
    """One node's installer invocation: ``<fetch script> | sh -s - <args>`` with ``env`` sourced from a 0600 file."""

    node: str
    role: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def first_server(self) -> bool:
        return "--cluster-init" in self.args

    def env_file(self) -> str:
        return "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(self.env.items()))

    def redacted_env(self) -> dict[str, str]:
        return {k: (REDACTED if "TOKEN" in k else v) for k, v in sorted(self.env.items())}

    def command(self, install_script: str, env_file: str = ENV_FILE) -> str:
        """The remote shell command; it names the env file, never the token."""
        if install_script.startswith(("https://", "http://")):
            fetch = f"curl -sfL {shlex.quote(install_script)} | sh -s - "
        else:
            fetch = f"sh {shlex.quote(install_script)} "
        return f"set -a && . {shlex.quote(env_file)} && set +a && {fetch}{shlex.join(self.args)}"

    def fingerprint(self, install_script: str) -> str:
        data = json.dumps({"args": self.args, "env": self.env, "script": install_script}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()


# ------------------------------------------------------------------------------------------------ F11


def find_interface(ip_addr_json: str | list[Any], address: str) -> str:
    """The interface holding ``address``, from ``ip -j addr`` output. Refuses ``lo`` and ambiguous answers."""
    try:
        data = json.loads(ip_addr_json) if isinstance(ip_addr_json, str) else ip_addr_json
    except ValueError as exc:
        raise OperationFailed(f"cannot parse `ip -j addr` output: {exc}") from exc
    try:
        wanted = ipaddress.ip_address(address)
    except ValueError as exc:
        raise PreconditionFailed(f"{address!r} is not an IP address") from exc
    matches: list[str] = []
    for link in data if isinstance(data, list) else []:
        if not isinstance(link, dict):
            continue
        for info in link.get("addr_info") or []:
            local = info.get("local") if isinstance(info, dict) else None
            try:
                if local and ipaddress.ip_address(local) == wanted:
                    name = str(link.get("ifname") or "?")
                    if name not in matches:
                        matches.append(name)
            except ValueError:
                continue
    if not matches:
        raise PreconditionFailed(
            f"no interface holds the private address {address}",
            hint="is the server attached to the private network? Hetzner attaches it before the first boot; check `ip addr` on the node",
        )
    if len(matches) > 1:
        raise PreconditionFailed(
            f"the private address {address} is on more than one interface ({', '.join(matches)}); refusing to guess",
            hint="remove the duplicate address on the node, then re-run",
        )
    if matches[0] == "lo" or wanted.is_loopback:
        raise PreconditionFailed(
            f"the private address {address} is on the loopback interface {matches[0]}; flannel cannot run over it",
            hint="the node's private network interface is missing or misconfigured (expected ens10 or enp7s0)",
        )
    return matches[0]


# ------------------------------------------------------------------------------------------------ flags


def tls_sans(servers: Iterable[K3sNode], api_address: str | None, extra: Iterable[str]) -> tuple[str, ...]:
    """Every name a client may use for the API: configured names, the API address, each server's public and private
    address. Sorted and de-duplicated, so every server renders the same list."""
    names: list[str] = [*extra]
    if api_address:
        names.append(api_address)
    for s in servers:
        names.append(s.private_ip)
        if s.public_ip:
            names.append(s.public_ip)
    return tuple(sorted(set(names), key=lambda n: (not _is_ip(n), n)))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def install_plan(
    nodes: list[K3sNode],
    *,
    token: str,
    interfaces: dict[str, str],
    api_address: str | None,
    extra_sans: Iterable[str] = (),
    cluster_cidr: str = "10.42.0.0/16",
    service_cidr: str = "10.43.0.0/16",
    version: str | None = None,
    channel: str | None = None,
) -> list[K3sInstall]:
    """The installer invocation of every node, servers first (the first one with ``--cluster-init``).

    ``interfaces`` maps node name -> private interface (from `find_interface`); a missing entry renders the
    placeholder ``<iface-by-address>`` (only `bootstrap render` does that, before servers exist).
    """
    servers = [n for n in nodes if n.role == "k3s-server"]
    agents = [n for n in nodes if n.role == "k3s-agent"]
    if not servers:
        raise PreconditionFailed("K3s needs at least one server node")
    first = servers[0]
    url = f"https://{first.private_ip}:{API_PORT}"
    sans = tls_sans(servers, api_address, extra_sans)
    base_env = {"K3S_TOKEN": token}
    if version:
        base_env["INSTALL_K3S_VERSION"] = version
    elif channel:
        base_env["INSTALL_K3S_CHANNEL"] = channel
    out: list[K3sInstall] = []
    for i, node in enumerate(servers):
        args = ["server"]
        args += ["--cluster-init"] if i == 0 else ["--server", url]
        args += _node_flags(node, interfaces, server=True)
        for san in sans:
            args += ["--tls-san", san]
        args += ["--cluster-cidr", cluster_cidr, "--service-cidr", service_cidr]
        out.append(K3sInstall(node=node.name, role=node.role, args=tuple(args), env=dict(base_env)))
    for node in agents:
        args = ["agent", *_node_flags(node, interfaces, server=False)]
        out.append(K3sInstall(node=node.name, role=node.role, args=tuple(args), env={**base_env, "K3S_URL": url}))
    return out


def _node_flags(node: K3sNode, interfaces: dict[str, str], *, server: bool) -> list[str]:
    iface = interfaces.get(node.name, "<iface-by-address>")
    flags = ["--node-name", node.name, "--node-ip", node.private_ip]
    if server:
        flags += ["--advertise-address", node.private_ip]
    flags += ["--flannel-iface", iface]
    if node.public_ip:
        flags += ["--node-external-ip", node.public_ip]
    return flags


# ------------------------------------------------------------------------------------------------ over SSH


@dataclass(frozen=True, slots=True)
class NodeInstallResult:
    node: str
    action: str  # installed | unchanged
    command: str


@dataclass(frozen=True, slots=True)
class NodeProbe:
    """What one SSH round trip tells about a node: its private interface, the fingerprint of the install it has,
    and (on a server that runs K3s) the cluster token."""

    interface: str
    fingerprint: str | None
    token: str | None


_SEP = "===gardenctl-probe==="


def probe_node(remote: Remote, node: str, private_ip: str, paths: K3sPaths = DEFAULT_PATHS, *, with_token: bool = False) -> NodeProbe:
    """One round trip: ``ip -j addr``, the recorded install fingerprint, and the token file (servers only)."""
    token_part = f"cat {shlex.quote(paths.server_token)} 2>/dev/null" if with_token else "true"
    script = (
        f"ip -j addr show; printf '\\n{_SEP}\\n'; cat {shlex.quote(paths.fingerprint_file(node))} 2>/dev/null; "
        f"printf '\\n{_SEP}\\n'; {token_part}; true"
    )
    out = remote.run(script).stdout
    text = out.decode() if isinstance(out, bytes) else out
    parts = text.split(_SEP)
    if len(parts) != 3:
        raise OperationFailed(f"{node}: unexpected answer to the node probe (is `ip` from iproute2 installed?)")
    return NodeProbe(
        interface=find_interface(parts[0].strip(), private_ip),
        fingerprint=parts[1].strip() or None,
        token=parts[2].strip() or None,
    )


def discover_interface(remote: Remote, private_ip: str) -> str:
    out = remote.run(["ip", "-j", "addr", "show"]).stdout
    return find_interface(out.decode() if isinstance(out, bytes) else out, private_ip)


def read_token(remote: Remote, paths: K3sPaths = DEFAULT_PATHS) -> str | None:
    """The cluster token of a running first server, or None when K3s is not installed there yet."""
    result = remote.run(["cat", paths.server_token], check=False)
    if getattr(result, "exit_status", 1) != 0:
        return None
    token = (result.stdout.decode() if isinstance(result.stdout, bytes) else result.stdout).strip()
    return token or None


def install_node(remote: Remote, install: K3sInstall, install_script: str, paths: K3sPaths = DEFAULT_PATHS, *, recorded: str | None = None) -> NodeInstallResult:
    """Run the installer on one node unless ``recorded`` (the node's fingerprint, from `probe_node`) matches.

    One SSH round trip: the env file (0600, from stdin), the installer, then the new fingerprint."""
    env_file = paths.env_file(install.node)
    command = install.command(install_script, env_file)
    fingerprint = install.fingerprint(install_script)
    if recorded == fingerprint:
        return NodeInstallResult(install.node, "unchanged", command)
    q = shlex.quote
    script = (
        f"mkdir -p -m 700 {q(paths.remote_dir)} && (umask 077 && cat > {q(env_file)}.tmp && mv -f {q(env_file)}.tmp {q(env_file)}) && "
        f"{command} && (umask 077 && printf '%s\\n' {fingerprint} > {q(paths.fingerprint_file(install.node))})"
    )
    remote.run(script, input=install.env_file(), timeout_seconds=900)
    return NodeInstallResult(install.node, "installed", command)
