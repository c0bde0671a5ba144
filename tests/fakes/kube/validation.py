"""Decoding checks (400), defaulting, and validation (422), per kind: the subset of kube-apiserver's
rules that manifests actually trip over."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING

from . import errors
from .selectors import labels_match, selector_from_label_selector_object

if TYPE_CHECKING:
    from .apiserver import FakeApiServer
    from .resources import ResourceType

_POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "Job")


# ---------------------------------------------------------------------------- 400: decoding


def _string_map(obj: dict | None, where: str) -> None:
    if obj is None:
        return
    if not isinstance(obj, dict):
        raise errors.bad_request(f"json: cannot unmarshal {type(obj).__name__} into Go struct field {where} "
                                 f"of type map[string]string")
    for key, value in obj.items():
        if not isinstance(value, str):
            go_type = {bool: "bool", int: "number", float: "number"}.get(type(value), type(value).__name__)
            raise errors.bad_request(f"json: cannot unmarshal {go_type} into Go struct field {where} of type "
                                     f"string (key {key!r})")


def _base64_map(obj: dict | None, where: str) -> None:
    _string_map(obj, where)
    for key, value in (obj or {}).items():
        try:
            base64.b64decode(value.encode(), validate=True)
        except (binascii.Error, ValueError):
            raise errors.bad_request(f"illegal base64 data in {where} (key {key!r})")


def check_types(rt: ResourceType, obj: dict) -> None:
    meta = obj["metadata"]
    if not isinstance(meta.get("name"), str):
        raise errors.bad_request("json: cannot unmarshal into Go struct field ObjectMeta.metadata.name of type string")
    _string_map(meta.get("labels"), "ObjectMeta.metadata.labels")
    _string_map(meta.get("annotations"), "ObjectMeta.metadata.annotations")
    if rt.kind == "ConfigMap":
        _string_map(obj.get("data"), "ConfigMap.data")
        _base64_map(obj.get("binaryData"), "ConfigMap.binaryData")
    elif rt.kind == "Secret":
        _base64_map(obj.get("data"), "Secret.data")
        _string_map(obj.get("stringData"), "Secret.stringData")


# ---------------------------------------------------------------------------- defaulting


def _image_pull_policy(image: str) -> str:
    last = (image or "").rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def default_pod_spec(spec: dict, *, restart_policy: str | None = "Always") -> None:
    if restart_policy:
        spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(container, dict):
            continue
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", _image_pull_policy(container.get("image", "")))
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def default(server: FakeApiServer, rt: ResourceType, obj: dict, old: dict | None) -> None:
    meta = obj["metadata"]
    kind = rt.kind
    if kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif kind == "Secret":
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(value.encode()).decode()
        obj.setdefault("type", "Opaque")
    elif kind == "Service":
        _default_service(server, obj, old)
    elif kind == "Deployment":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
    elif kind == "StatefulSet":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
        default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
    elif kind == "Job":
        _default_job(obj, old)
    elif kind == "Pod":
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        if not obj.get("status") and old is None:
            from .workloads import pod_status
            spec.setdefault("nodeName", server._pick_node())
            obj["status"] = pod_status(server, obj, "ready")


def _default_service(server: FakeApiServer, obj: dict, old: dict | None) -> None:
    spec = obj.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    spec.setdefault("type", "ClusterIP")
    kind = spec["type"]
    if kind != "ExternalName":
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec.get("clusterIP") or next(server._cluster_ips)
        if not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("sessionAffinity", "None")
    old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports") or []
                 if isinstance(p, dict)}
    for port in spec.get("ports") or []:
        if not isinstance(port, dict):
            continue
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if kind in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
            previous = old_ports.get((port.get("port"), port["protocol"]), {})
            port["nodePort"] = previous.get("nodePort") or next(server._node_ports)
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def _default_job(obj: dict, old: dict | None) -> None:
    meta = obj["metadata"]
    spec = obj.setdefault("spec", {})
    old_spec = (old or {}).get("spec") or {}
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    if not spec.get("manualSelector"):
        uid = meta["uid"]
        generated = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": meta["name"],
                     "controller-uid": uid, "job-name": meta["name"]}
        template.setdefault("metadata", {}).setdefault("labels", {}).update(generated)
        if not spec.get("selector"):
            spec["selector"] = old_spec.get("selector") or {
                "matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    default_pod_spec(template.setdefault("spec", {}), restart_policy=None)


# ---------------------------------------------------------------------------- 422: validation


def _name_causes(rt: ResourceType, name: str) -> list:
    if rt.kind == "Namespace":
        pattern, what, limit = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "a lowercase RFC 1123 label", 63
        hint = ("must consist of lower case alphanumeric characters or '-', and must start and end with an "
                "alphanumeric character")
    elif rt.kind == "Service":
        pattern, what, limit = r"^[a-z]([-a-z0-9]*[a-z0-9])?$", "a DNS-1035 label", 63
        hint = ("must consist of lower case alphanumeric characters or '-', start with an alphabetic character, "
                "and end with an alphanumeric character")
    else:
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
        what, limit = "a lowercase RFC 1123 subdomain", 253
        hint = ("must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character")
    if not re.match(pattern, name) or len(name) > limit:
        return [("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {what} {hint}')]
    return []


def _label_causes(labels: dict | None, where: str) -> list:
    causes = []
    name_re = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
    prefix_re = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (not prefix_re.match(prefix) or len(prefix) > 253)) or not name_re.match(name) \
                or len(name) > 63:
            causes.append((where, "FieldValueInvalid", f'Invalid value: "{key}": name part must consist of '
                           "alphanumeric characters, '-', '_' or '.'"))
        if value and (not name_re.match(value) or len(value) > 63):
            causes.append((f"{where}", "FieldValueInvalid", f'Invalid value: "{value}": a valid label must be an '
                           "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
                           "and end with an alphanumeric character"))
    return causes


def _containers_causes(pod_spec: dict, where: str) -> list:
    causes = []
    containers = pod_spec.get("containers")
    if not containers:
        return [(f"{where}.containers", "FieldValueRequired", "Required value")]
    seen = set()
    for i, container in enumerate(containers):
        if not isinstance(container, dict):
            causes.append((f"{where}.containers[{i}]", "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        if not container.get("name"):
            causes.append((f"{where}.containers[{i}].name", "FieldValueRequired", "Required value"))
        elif container["name"] in seen:
            causes.append((f"{where}.containers[{i}].name", "FieldValueDuplicate",
                           f'Duplicate value: "{container["name"]}"'))
        seen.add(container.get("name"))
        if not container.get("image"):
            causes.append((f"{where}.containers[{i}].image", "FieldValueRequired", "Required value"))
    return causes


def _immutable(old_value, new_value, where: str) -> list:
    if old_value != new_value:
        return [(where, "FieldValueInvalid", f"Invalid value: {json.dumps(new_value, sort_keys=True)}: "
                                              "field is immutable")]
    return []


def _workload_causes(kind: str, spec: dict, old_spec: dict | None) -> list:
    causes = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(("spec.selector", "FieldValueRequired", "Required value"))
    elif not labels_match(selector_from_label_selector_object(selector), template_labels):
        causes.append(("spec.template.metadata.labels", "FieldValueInvalid",
                       f"Invalid value: {json.dumps(template_labels, sort_keys=True)}: "
                       "`selector` does not match template `labels`"))
    if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
        causes.append(("spec.replicas", "FieldValueInvalid",
                       f"Invalid value: {spec['replicas']}: must be greater than or equal to 0"))
    causes += _containers_causes(template.get("spec") or {}, "spec.template.spec")
    if kind == "Deployment":
        policy = (template.get("spec") or {}).get("restartPolicy")
        if policy != "Always":
            causes.append(("spec.template.spec.restartPolicy", "FieldValueNotSupported",
                           f'Unsupported value: "{policy}": supported values: "Always"'))
    if old_spec is not None:
        causes += _immutable(old_spec.get("selector"), selector, "spec.selector")
        if kind == "StatefulSet":
            mutable = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                       "minReadySeconds")
            if {k: v for k, v in spec.items() if k not in mutable} != \
                    {k: v for k, v in old_spec.items() if k not in mutable}:
                causes.append(("spec", "FieldValueForbidden",
                               "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                               "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                               "'minReadySeconds' are forbidden"))
    return causes


def validate(rt: ResourceType, obj: dict, old: dict | None) -> None:
    meta = obj["metadata"]
    kind = rt.kind
    causes = _name_causes(rt, meta["name"]) + _label_causes(meta.get("labels"), "metadata.labels")
    spec = obj.get("spec") or {}
    old_spec = (old or {}).get("spec") if old is not None else None
    if kind in ("ConfigMap", "Secret") and old is not None and old.get("immutable"):
        for f in ("data", "binaryData", "stringData"):
            if old.get(f) != obj.get(f):
                causes.append((f, "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"))
        if not obj.get("immutable"):
            causes.append(("immutable", "FieldValueForbidden",
                           "Forbidden: field is immutable when `immutable` is set"))
    if kind == "Secret" and old is not None:
        causes += _immutable(old.get("type"), obj.get("type"), "type")
    if kind in ("Deployment", "StatefulSet"):
        causes += _workload_causes(kind, spec, old_spec)
    elif kind == "Job":
        template = spec.get("template") or {}
        policy = (template.get("spec") or {}).get("restartPolicy")
        if policy not in ("Never", "OnFailure"):
            causes.append(("spec.template.spec.restartPolicy",
                           "FieldValueRequired" if policy is None else "FieldValueNotSupported",
                           f'{"Required value" if policy is None else f"Unsupported value: {json.dumps(policy)}"}: '
                           'valid values: "OnFailure", "Never"'))
        causes += _containers_causes(template.get("spec") or {}, "spec.template.spec")
        if old_spec is not None:
            causes += _immutable(old_spec.get("template"), template, "spec.template")
            causes += _immutable(old_spec.get("selector"), spec.get("selector"), "spec.selector")
            causes += _immutable(old_spec.get("completions"), spec.get("completions"), "spec.completions")
    elif kind == "Pod":
        causes += _containers_causes(spec, "spec")
    elif kind == "Service":
        service_type = spec.get("type")
        if service_type not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            causes.append(("spec.type", "FieldValueNotSupported", f'Unsupported value: "{service_type}": supported '
                           'values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'))
        headless = spec.get("clusterIP") == "None"
        if service_type != "ExternalName" and not headless and not spec.get("ports"):
            causes.append(("spec.ports", "FieldValueRequired", "Required value"))
        for i, port in enumerate(spec.get("ports") or []):
            number = port.get("port") if isinstance(port, dict) else None
            if not isinstance(number, int) or not 1 <= number <= 65535:
                causes.append((f"spec.ports[{i}].port", "FieldValueInvalid",
                               f"Invalid value: {json.dumps(number)}: must be between 1 and 65535, inclusive"))
        if service_type == "ExternalName" and not spec.get("externalName"):
            causes.append(("spec.externalName", "FieldValueRequired", "Required value"))
        if old_spec is not None and old_spec.get("clusterIP") and service_type != "ExternalName":
            causes += _immutable(old_spec.get("clusterIP"), spec.get("clusterIP"), "spec.clusterIP")
    elif kind == "Ingress":
        if not spec.get("rules") and not spec.get("defaultBackend"):
            causes.append(("spec", "FieldValueInvalid", "Invalid value: either `defaultBackend` or `rules` must "
                           "be specified"))
        for i, rule in enumerate(spec.get("rules") or []):
            for j, path in enumerate(((rule or {}).get("http") or {}).get("paths") or []):
                where = f"spec.rules[{i}].http.paths[{j}]"
                if path.get("pathType") not in ("Exact", "Prefix", "ImplementationSpecific"):
                    causes.append((f"{where}.pathType", "FieldValueRequired" if not path.get("pathType")
                                   else "FieldValueNotSupported", "Required value: pathType must be specified"
                                   if not path.get("pathType") else f'Unsupported value: "{path["pathType"]}"'))
                if not path.get("backend"):
                    causes.append((f"{where}.backend", "FieldValueRequired", "Required value"))
    elif kind == "EndpointSlice":
        if obj.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
            causes.append(("addressType", "FieldValueRequired" if not obj.get("addressType")
                           else "FieldValueNotSupported", "Required value" if not obj.get("addressType")
                           else f'Unsupported value: "{obj["addressType"]}"'))
        if old is not None:
            causes += _immutable(old.get("addressType"), obj.get("addressType"), "addressType")
    if causes:
        raise errors.invalid(rt, meta["name"], causes)
