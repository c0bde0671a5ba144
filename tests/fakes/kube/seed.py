"""What a fresh single-server K3s cluster (plus two agents) looks like, and the objects the real
controllers add to every namespace."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .apiserver import FakeApiServer

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

FAKE_CA = """-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrM3Mtc2Vy
dmVyLWNhQDE3MDAwMDAwMDAwHhcNMjQwMTAxMDAwMDAwWhcNMzQwMTAxMDAwMDAw
WjAjMSEwHwYDVQQDDBhrM3Mtc2VydmVyLWNhQDE3MDAwMDAwMDAwWTATBgcqhkjO
-----END CERTIFICATE-----
"""

# name, internal IP, ready, control plane
NODES = (
    ("garden-cp-1", "10.0.0.2", True, True),
    ("garden-worker-1", "10.0.0.3", True, False),
    ("garden-worker-2", "10.0.0.4", False, False),
)


def namespace_defaults(server: FakeApiServer, namespace: str) -> None:
    """The ServiceAccount and root-CA ConfigMap that controllers put into every new namespace."""
    server._store_internal({"apiVersion": "v1", "kind": "ServiceAccount",
                            "metadata": {"name": "default", "namespace": namespace}})
    server._store_internal({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "kube-root-ca.crt", "namespace": namespace,
                                         "annotations": {"kubernetes.io/description": (
                                             "Contains a CA bundle that can be used to verify the kube-apiserver "
                                             "when using internal endpoints such as the internal service IP or "
                                             "kubernetes.default.svc. No other usage is guaranteed across "
                                             "distributions of Kubernetes clusters.")}},
                            "data": {"ca.crt": FAKE_CA}})


def seed_namespaces(server: FakeApiServer) -> None:
    for name in SYSTEM_NAMESPACES:
        server.add_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                           "status": {"phase": "Active"}})


def node(name: str, ip: str, ready: bool, control_plane: bool, version: str, index: int) -> dict:
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": "k3s",
              "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
              "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "k3s"}
    if control_plane:
        labels.update({"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/etcd": "true",
                       "node-role.kubernetes.io/master": "true"})
    stamp = "2024-12-12T10:00:00Z"
    if ready:
        conditions = [
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "message": "kubelet has sufficient memory available"},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
             "message": "kubelet has no disk pressure"},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
             "message": "kubelet has sufficient PID available"},
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status"},
        ]
    else:
        conditions = [{"type": t, "status": "Unknown", "reason": "NodeStatusUnknown",
                       "message": "Kubelet stopped posting node status."}
                      for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")]
    for cond in conditions:
        cond["lastHeartbeatTime"] = stamp
        cond["lastTransitionTime"] = stamp
    spec = {"podCIDR": f"10.42.{index}.0/24", "podCIDRs": [f"10.42.{index}.0/24"], "providerID": f"k3s://{name}"}
    if not ready:
        spec["taints"] = [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": stamp},
                          {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": stamp}]
    resources = {"cpu": "4", "ephemeral-storage": "78425224Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                 "memory": "8131012Ki", "pods": "110"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"k3s.io/internal-ip": ip, "k3s.io/hostname": name,
                                     "node.alpha.kubernetes.io/ttl": "0",
                                     "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": spec,
        "status": {
            "capacity": resources, "allocatable": dict(resources, **{"ephemeral-storage": "76293788146"}),
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": f"{index:032x}", "systemUUID": f"{index:08x}-0000-0000-0000-000000000000",
                         "bootID": f"{index:08x}-1111-1111-1111-111111111111", "kernelVersion": "6.1.0-28-amd64",
                         "osImage": "Debian GNU/Linux 12 (bookworm)", "containerRuntimeVersion":
                         "containerd://1.7.23-k3s2", "kubeletVersion": version, "kubeProxyVersion": version,
                         "operatingSystem": "linux", "architecture": "amd64"},
        },
    }


def _deployment(name: str, labels: dict, image: str, port: int | None = None) -> dict:
    container = {"name": name, "image": image}
    if port:
        container["ports"] = [{"containerPort": port, "name": "http", "protocol": "TCP"}]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "kube-system", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [container], "priorityClassName": "system-cluster-critical"}}}}


def seed_cluster(server: FakeApiServer) -> None:
    from .resources import by_kind
    rt = by_kind("Deployment")
    for index, (name, ip, ready, control_plane) in enumerate(NODES):
        server.add_object(node(name, ip, ready, control_plane, server.kubernetes_version, index))
    server.add_object({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "kubernetes", "namespace": "default",
                                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                       "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443,
                                                                     "protocol": "TCP", "targetPort": 6443}]},
                       "status": {"loadBalancer": {}}})
    server.add_object({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": "kubernetes", "namespace": "default",
                                    "labels": {"kubernetes.io/service-name": "kubernetes",
                                               "endpointslice.kubernetes.io/managed-by":
                                                   "endpointslice-controller.k8s.io"}},
                       "addressType": "IPv4",
                       "endpoints": [{"addresses": ["10.0.0.2"], "conditions": {"ready": True}}],
                       "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]})
    server.add_object({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "kube-dns", "namespace": "kube-system",
                                    "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
                       "spec": {"clusterIP": "10.43.0.10", "selector": {"k8s-app": "kube-dns"},
                                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                                          {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]},
                       "status": {"loadBalancer": {}}})
    # system Deployments, converged (with their Pods) from the start
    for obj in (_deployment("coredns", {"k8s-app": "kube-dns"}, "rancher/mirrored-coredns-coredns:1.11.3", 8080),
                _deployment("local-path-provisioner", {"app": "local-path-provisioner"},
                            "rancher/local-path-provisioner:v0.0.30"),
                _deployment("metrics-server", {"k8s-app": "metrics-server"},
                            "rancher/mirrored-metrics-server:v0.7.2", 10250)):
        key = ("deployments", "kube-system", obj["metadata"]["name"])
        server._ready_after[key] = 0
        server._commit(rt, "kube-system", obj["metadata"]["name"], None, obj, manager="k3s", operation="Update",
                       dry_run=False)
        del server._ready_after[key]
