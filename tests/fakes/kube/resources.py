"""The resource types the fake API server serves, and the discovery documents built from them."""

from __future__ import annotations

from dataclasses import dataclass

WRITE_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update")


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    verbs: tuple[str, ...] = WRITE_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # `status` is a server-owned subresource: writes to the main resource never change it.
    has_status: bool = False
    # metadata.generation is set to 1 on create and bumped on every spec change.
    tracks_generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`deployments.apps` / `configmaps`: how the real API names the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`Deployment.apps` / `ConfigMap`: how the real API names the kind in Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def allows(self, verb: str) -> bool:
        return verb in self.verbs

    def discovery_entry(self) -> dict:
        entry = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        return entry


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    # core/v1
    ResourceType("", "v1", "Namespace", "namespaces", "namespace", False,
                 verbs=("create", "delete", "get", "list", "patch", "update"), short_names=("ns",),
                 has_status=True),
    ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, short_names=("cm",)),
    ResourceType("", "v1", "Secret", "secrets", "secret", True),
    ResourceType("", "v1", "Service", "services", "service", True, short_names=("svc",),
                 categories=("all",), has_status=True),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, short_names=("sa",)),
    ResourceType("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", True,
                 short_names=("pvc",), has_status=True),
    ResourceType("", "v1", "Node", "nodes", "node", False, verbs=("get", "list"), short_names=("no",),
                 has_status=True),
    ResourceType("", "v1", "Pod", "pods", "pod", True,
                 verbs=("create", "delete", "deletecollection", "get", "list"), short_names=("po",),
                 categories=("all",), has_status=True),
    # apps/v1
    ResourceType("apps", "v1", "Deployment", "deployments", "deployment", True, short_names=("deploy",),
                 categories=("all",), has_status=True, tracks_generation=True),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, short_names=("sts",),
                 categories=("all",), has_status=True, tracks_generation=True),
    # batch/v1
    ResourceType("batch", "v1", "Job", "jobs", "job", True, categories=("all",), has_status=True,
                 tracks_generation=True),
    # discovery.k8s.io/v1
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True,
                 tracks_generation=True),
    # networking.k8s.io/v1
    ResourceType("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", True, short_names=("ing",),
                 has_status=True, tracks_generation=True),
)

GROUPS: dict[str, list[str]] = {}
for _rt in RESOURCE_TYPES:
    if _rt.group:
        GROUPS.setdefault(_rt.group, [])
        if _rt.version not in GROUPS[_rt.group]:
            GROUPS[_rt.group].append(_rt.version)


def by_path(group: str, version: str, plural: str) -> ResourceType | None:
    for rt in RESOURCE_TYPES:
        if rt.group == group and rt.version == version and rt.plural == plural:
            return rt
    return None


def by_kind(kind: str, api_version: str | None = None) -> ResourceType | None:
    for rt in RESOURCE_TYPES:
        if rt.kind == kind and (api_version is None or rt.api_version == api_version):
            return rt
    return None


def resolve(name: str) -> ResourceType:
    """Resolve a kind, plural, singular, short name or `plural.group` (case-insensitive)."""
    wanted = name.strip().lower()
    for rt in RESOURCE_TYPES:
        names = {rt.kind.lower(), rt.plural, rt.singular, rt.qualified, *rt.short_names,
                 f"{rt.singular}.{rt.group}" if rt.group else rt.singular}
        if wanted in names:
            return rt
    raise KeyError(f"unknown resource type {name!r}")


def api_versions(server_address: str) -> dict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group(group: str) -> dict:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in GROUPS[group]]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions,
            "preferredVersion": dict(versions[0])}


def api_group_list() -> dict:
    groups = []
    for group in GROUPS:
        doc = api_group(group)
        del doc["kind"], doc["apiVersion"]
        groups.append(doc)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group: str, version: str) -> dict | None:
    entries = [rt.discovery_entry() for rt in RESOURCE_TYPES if rt.group == group and rt.version == version]
    if not entries:
        return None
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}
