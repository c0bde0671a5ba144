"""Render the database bridge: how pods in K3s reach PostgreSQL, which runs outside the cluster on the db nodes.

PostgreSQL (Patroni) and HAProxy run on the db nodes, not in Kubernetes. Every db node runs HAProxy with a read-write
listener (forwarding to the current Patroni primary) and a read-only listener (forwarding to the replicas). The bridge
makes those listeners look like ordinary in-cluster Services:

- one **selector-less Service** per role (``db-rw``, ``db-ro``) with a stable port (5432), so workloads connect to
  ``db-rw:5432`` / ``db-ro:5432`` and never to a node address;
- one **discovery.k8s.io/v1 EndpointSlice** per Service and address family, listing every db node's private address
  and the HAProxy port. Any node works: HAProxy on every node routes to the primary, so losing a node only removes
  one endpoint.

A selector-less Service has no controller that fills its endpoints: the EndpointSlices written here are the whole
truth. kube-proxy matches a Service port to the EndpointSlice port *by name*, so the Service port ``postgres`` (5432)
forwards to the slice port ``postgres`` (the HAProxy port); the Service's ``targetPort`` is only documentation.

`render_db_bridge` is a pure function (no I/O); `gardenctl bootstrap` calls it with the inventory, and
``python -m gardenctl.bridge`` prints the same objects as YAML (see manifests/base/db-bridge/README.md).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from gardenctl.errors import ConfigError

MANAGED_BY = "gardenctl"
PART_OF = "gardenos"
SERVICE_PORT_NAME = "postgres"
DEFAULT_SERVICE_PORT = 5432

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class BridgeNames:
    """Names of the two bridge Services (and the prefix of their EndpointSlices)."""

    rw: str = "db-rw"
    ro: str = "db-ro"


@dataclass(frozen=True, slots=True)
class DbNode:
    name: str
    private_ip: str


def _check_name(value: str, what: str, pattern: re.Pattern[str] = _DNS1035, max_len: int = 63) -> None:
    if not isinstance(value, str) or not value or len(value) > max_len or not pattern.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a valid Kubernetes name",
            hint="use lowercase letters, digits and '-', starting with a letter, at most 63 characters",
        )


def _check_port(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ConfigError(f"{what} {value!r} is not a TCP port (1-65535)")
    return value


def _parse_nodes(nodes: Iterable[Any]) -> list[DbNode]:
    parsed: list[DbNode] = []
    for item in nodes:
        if isinstance(item, DbNode):
            node = item
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            node = DbNode(str(item[0]), str(item[1]))
        else:
            raise ConfigError(f"db node {item!r}: expected (name, private ip)")
        try:
            address = ipaddress.ip_address(node.private_ip)
        except ValueError as exc:
            raise ConfigError(f"db node {node.name!r}: {node.private_ip!r} is not an IP address") from exc
        # The API server rejects these in EndpointSlices; better to say so here, with the node's name.
        if address.is_loopback or address.is_link_local or address.is_multicast or address.is_unspecified:
            raise ConfigError(
                f"db node {node.name!r}: {node.private_ip} cannot be an endpoint (loopback, link-local, multicast "
                "and unspecified addresses are refused by Kubernetes)",
                hint="use the node's private network address (on Hetzner: the address in the private network)",
            )
        if not node.name:
            raise ConfigError(f"db node with address {node.private_ip}: the name is empty")
        parsed.append(DbNode(node.name, str(address)))
    if not parsed:
        raise ConfigError("the database bridge needs at least one db node")
    names = [n.name for n in parsed]
    addresses = [n.private_ip for n in parsed]
    for label, values in (("name", names), ("address", addresses)):
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ConfigError(f"db nodes: duplicate {label} {', '.join(dupes)}")
    return parsed


def _labels(extra: dict[str, str] | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "db-bridge",
        "app.kubernetes.io/component": "database",
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if extra:
        labels.update(extra)
    return labels


def render_db_bridge(
    namespace: str,
    nodes: Sequence[tuple[str, str] | DbNode],
    rw_port: int = 5000,
    ro_port: int = 5001,
    names: BridgeNames = BridgeNames(),
    *,
    service_port: int = DEFAULT_SERVICE_PORT,
) -> list[dict[str, Any]]:
    """The bridge manifests: for each role (read-write, read-only) a selector-less Service and its EndpointSlice(s).

    ``nodes`` are the db nodes as ``(name, private ip)``; ``rw_port`` / ``ro_port`` are HAProxy's listeners on every
    node. Objects come back in a stable order (Services first), one EndpointSlice per address family present.

    Raises `ConfigError` for an invalid namespace or name, a port out of range, equal rw and ro ports, no nodes,
    duplicate node names or addresses, and addresses Kubernetes refuses as endpoints (loopback, link-local).
    """
    _check_name(namespace, "namespace", _DNS1123_LABEL)
    _check_name(names.rw, "read-write service name")
    _check_name(names.ro, "read-only service name")
    if names.rw == names.ro:
        raise ConfigError(f"the read-write and read-only services need different names (both are {names.rw!r})")
    rw_port = _check_port(rw_port, "read-write port")
    ro_port = _check_port(ro_port, "read-only port")
    service_port = _check_port(service_port, "service port")
    if rw_port == ro_port:
        raise ConfigError(f"read-write and read-only HAProxy ports must differ (both are {rw_port})")
    db_nodes = _parse_nodes(nodes)

    services: list[dict[str, Any]] = []
    slices: list[dict[str, Any]] = []
    for role, name, port in (("read-write", names.rw, rw_port), ("read-only", names.ro, ro_port)):
        services.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": _labels({"gardenos/db-role": role}),
                    "annotations": {
                        "gardenos/bridge": f"HAProxy {role} listener on the db nodes (port {port}); endpoints in "
                        f"EndpointSlice {name}-*, rendered by gardenctl",
                    },
                },
                "spec": {
                    "type": "ClusterIP",
                    "ports": [{"name": SERVICE_PORT_NAME, "port": service_port, "protocol": "TCP", "targetPort": port}],
                },
            }
        )
        families = (("IPv4", 4), ("IPv6", 6))
        for address_type, version in families:
            members = [n for n in db_nodes if ipaddress.ip_address(n.private_ip).version == version]
            if not members:
                continue
            endpoints = []
            for node in members:
                endpoint: dict[str, Any] = {"addresses": [node.private_ip], "conditions": {"ready": True}}
                if _DNS1123_LABEL.match(node.name) and len(node.name) <= 63:
                    endpoint["hostname"] = node.name
                endpoints.append(endpoint)
            slices.append(
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": f"{name}-{address_type.lower()}",
                        "namespace": namespace,
                        "labels": _labels(
                            {
                                "gardenos/db-role": role,
                                "kubernetes.io/service-name": name,
                                "endpointslice.kubernetes.io/managed-by": f"{MANAGED_BY}.gardenos",
                            }
                        ),
                    },
                    "addressType": address_type,
                    "ports": [{"name": SERVICE_PORT_NAME, "port": port, "protocol": "TCP"}],
                    "endpoints": endpoints,
                }
            )
    return services + slices


def to_yaml(objects: Sequence[dict[str, Any]], header: str | None = None) -> str:
    """A multi-document YAML stream (keys in the order given), with an optional comment header."""
    from gardenctl import yamltext

    body = "---\n".join(yamltext.dump(obj) for obj in objects)
    if header:
        lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
        return lines + "---\n" + body
    return body


def _node_arg(value: str) -> tuple[str, str]:
    name, sep, ip = value.partition("=")
    if not sep or not name or not ip:
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAME=PRIVATE_IP")
    return name, ip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gardenctl.bridge",
        description="Print the database bridge manifests (selector-less Services + EndpointSlices) as YAML.",
    )
    parser.add_argument("--namespace", default="gardenos", help="namespace of the bridge services (default gardenos)")
    parser.add_argument("--node", action="append", type=_node_arg, required=True, metavar="NAME=PRIVATE_IP", help="a db node; repeat for each")
    parser.add_argument("--rw-port", type=int, default=5000, help="HAProxy read-write port on the db nodes (default 5000)")
    parser.add_argument("--ro-port", type=int, default=5001, help="HAProxy read-only port on the db nodes (default 5001)")
    parser.add_argument("--rw-name", default="db-rw", help="read-write service name (default db-rw)")
    parser.add_argument("--ro-name", default="db-ro", help="read-only service name (default db-ro)")
    args = parser.parse_args(argv)
    try:
        objects = render_db_bridge(args.namespace, args.node, args.rw_port, args.ro_port, BridgeNames(args.rw_name, args.ro_name))
    except ConfigError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return int(exc.exit_code)
    command = "python -m gardenctl.bridge " + " ".join(
        [f"--namespace {args.namespace}"]
        + [f"--node {n}={ip}" for n, ip in args.node]
        + [f"--rw-port {args.rw_port}", f"--ro-port {args.ro_port}"]
    )
    sys.stdout.write(to_yaml(objects, header=f"Generated by gardenctl - do not edit. Regenerate with:\n  {command}"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
