"""Merging and field ownership, a small approximation of what kube-apiserver does.

* Field sets: an object is flattened into a set of paths. A path is a tuple of elements, each
  ``("f", field_name)`` for a map field or ``("k", '{"name":"app"}')`` for an item of a keyed list
  (a "list map" in structured-merge-diff terms: containers by name, env by name, ports by
  containerPort/port + protocol, ...). Leaves are scalars, atomic lists and empty maps; a keyed list
  item is also a path of its own. The encoding to ``managedFields[].fieldsV1`` is the real one
  (``f:spec`` / ``k:{"name":"app"}`` / ``.``).
* Lists that are not keyed (finalizers, args, command, tolerations, ingress rules, ...) are atomic:
  they are replaced as a whole, as the real schema declares them.
* ``strategic-merge-patch+json`` is treated as JSON merge patch (RFC 7386) EXCEPT that keyed lists
  (the ones above) are merged item by item by their key, which is what a strategic merge patch does
  for those fields. ``$patch: delete`` on a keyed-list item removes it; other ``$`` directives
  (``$setElementOrder``, ``$retainKeys``, ``$deleteFromPrimitiveList``) are dropped, not interpreted.
"""

from __future__ import annotations

import copy
import json
from typing import Any

Path = tuple[tuple[str, str], ...]

_KEYED_LISTS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "ownerReferences": ("uid",),
    "conditions": ("type",),
    "resourceClaims": ("name",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}
_KEY_DEFAULTS = {"protocol": "TCP"}
_CONTAINER_LISTS = {"containers", "initContainers", "ephemeralContainers"}


def list_keys(names: tuple[str, ...]) -> tuple[str, ...] | None:
    """Key fields of the list reached through the map fields `names`, None when the list is atomic."""
    if not names:
        return None
    last = names[-1]
    if last == "ports":
        if len(names) >= 2 and names[-2] in _CONTAINER_LISTS:
            return ("containerPort", "protocol")
        if names == ("spec", "ports"):  # Service
            return ("port", "protocol")
        return None  # EndpointSlice ports and friends are atomic
    return _KEYED_LISTS.get(last)


def item_key(item: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(item, dict):
        return None
    key = {}
    for k in keys:
        value = item.get(k, _KEY_DEFAULTS.get(k))
        if value is None:
            return None
        key[k] = value
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def _keyed(items: Any, names: tuple[str, ...]) -> tuple[str, ...] | None:
    keys = list_keys(names)
    if keys is None or not isinstance(items, list):
        return None
    if all(item_key(item, keys) is not None for item in items):
        return keys
    return None


def field_paths(obj: Any, names: tuple[str, ...] = (), prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    if isinstance(obj, dict):
        if not obj and prefix:
            paths.add(prefix)
        for key, value in obj.items():
            paths |= field_paths(value, names + (key,), prefix + (("f", key),))
    elif isinstance(obj, list):
        keys = _keyed(obj, names)
        if keys is None:
            paths.add(prefix)
        else:
            for item in obj:
                item_path = prefix + (("k", item_key(item, keys)),)
                paths.add(item_path)
                paths |= field_paths(item, names, item_path)
    else:
        paths.add(prefix)
    return paths


def _find_item(items: list, key: str, names: tuple[str, ...]) -> int | None:
    keys = tuple(json.loads(key))
    for index, item in enumerate(items):
        if item_key(item, keys) == key:
            return index
    return None


_MISSING = object()


def get_at(obj: Any, path: Path) -> Any:
    """Value at `path`, or _MISSING."""
    names: tuple[str, ...] = ()
    current = obj
    for kind, value in path:
        if kind == "f":
            if not isinstance(current, dict) or value not in current:
                return _MISSING
            current = current[value]
            names += (value,)
        else:
            if not isinstance(current, list):
                return _MISSING
            index = _find_item(current, value, names)
            if index is None:
                return _MISSING
            current = current[index]
    return current


def has(obj: Any, path: Path) -> bool:
    return get_at(obj, path) is not _MISSING


def delete_at(obj: dict, path: Path) -> None:
    """Delete the field/item at `path`; maps and lists emptied by the deletion are removed too
    (top-level fields such as `spec` are kept)."""
    chain: list[tuple[Any, Any]] = []  # (container, key-or-index)
    names: tuple[str, ...] = ()
    current: Any = obj
    for kind, value in path:
        if kind == "f":
            if not isinstance(current, dict) or value not in current:
                return
            chain.append((current, value))
            current = current[value]
            names += (value,)
        else:
            if not isinstance(current, list):
                return
            index = _find_item(current, value, names)
            if index is None:
                return
            chain.append((current, index))
            current = current[index]
    while chain:
        container, key = chain.pop()
        del container[key]
        if container or len(chain) <= 1:
            break


def is_item(path: Path) -> bool:
    return bool(path) and path[-1][0] == "k"


def render_path(path: Path) -> str:
    """`.spec.template.spec.containers[name="app"].image`, as the real conflict messages show it."""
    out = ""
    for kind, value in path:
        if kind == "f":
            out += "." + value
        else:
            key = json.loads(value)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]"
    return out


def to_fields_v1(paths: set[Path]) -> dict:
    root: dict = {}
    for path in sorted(paths, key=lambda p: (len(p), p)):
        node = root
        for kind, value in path:
            node = node.setdefault(f"{kind}:{value}", {})
        if is_item(path):
            node.setdefault(".", {})
    return root


# --------------------------------------------------------------------------- merging


def apply_merge(live: Any, applied: Any, names: tuple[str, ...] = ()) -> Any:
    """Merge an applied configuration into the live object (maps recurse, keyed lists merge by key,
    everything else is replaced). A null in the applied configuration removes the field."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for key, value in applied.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = apply_merge(out[key], value, names + (key,))
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(live, list) and isinstance(applied, list):
        keys = _keyed(applied, names)
        if keys is not None and _keyed(live, names) is not None:
            out = [copy.deepcopy(item) for item in live]
            for item in applied:
                index = _find_item(out, item_key(item, keys), names)
                if index is None:
                    out.append(copy.deepcopy(item))
                else:
                    out[index] = apply_merge(out[index], item, names)
            return out
    return copy.deepcopy(applied)


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = json_merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any, names: tuple[str, ...] = ()) -> Any:
    """JSON merge patch, plus keyed lists merged by key (see the module docstring)."""
    if isinstance(patch, dict):
        out = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                out.pop(key, None)
            else:
                out[key] = strategic_merge_patch(out.get(key), value, names + (key,))
        return out
    if isinstance(patch, list):
        keys = list_keys(names)
        if keys is not None and isinstance(target, list) and _keyed(target, names) is not None:
            items = [p for p in patch if isinstance(p, dict)]
            if len(items) == len(patch) and all(item_key(p, keys) is not None for p in items):
                out = [copy.deepcopy(item) for item in target]
                for item in items:
                    index = _find_item(out, item_key(item, keys), names)
                    if item.get("$patch") == "delete":
                        if index is not None:
                            del out[index]
                    elif index is None:
                        out.append(strategic_merge_patch({}, item, names))
                    else:
                        out[index] = strategic_merge_patch(out[index], item, names)
                return out
        return [strategic_merge_patch(None, p, names) if isinstance(p, dict) else copy.deepcopy(p) for p in patch]
    return copy.deepcopy(patch)


class JsonPatchError(ValueError):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    current = doc
    for part in parts[:-1]:
        if isinstance(current, list):
            try:
                current = current[int(part)]
            except (ValueError, IndexError) as exc:
                raise JsonPatchError(f"path element {part!r} not found") from exc
        elif isinstance(current, dict) and part in current:
            current = current[part]
        else:
            raise JsonPatchError(f"path element {part!r} not found")
    return current, parts[-1]


def json_patch(doc: Any, ops: list) -> Any:
    """RFC 6902 (add, remove, replace, move, copy, test)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise JsonPatchError(f"invalid operation {op!r}")
        name = op["op"]
        parts = _pointer(op["path"])
        if name == "test":
            current = doc
            for part in parts:
                current = current[int(part)] if isinstance(current, list) else current.get(part, _MISSING)
            if current != op.get("value"):
                raise JsonPatchError(f"testing value {op['path']} failed")
            continue
        if name in ("move", "copy"):
            src_parent, src_key = _parent(doc, _pointer(op["from"]))
            value = src_parent[int(src_key)] if isinstance(src_parent, list) else src_parent[src_key]
            value = copy.deepcopy(value)
            if name == "move":
                if isinstance(src_parent, list):
                    del src_parent[int(src_key)]
                else:
                    del src_parent[src_key]
            op = {"op": "add", "path": op["path"], "value": value}
            name = "add"
        if not parts:
            if name in ("add", "replace"):
                doc = copy.deepcopy(op.get("value"))
                continue
            raise JsonPatchError("cannot remove the root")
        parent, key = _parent(doc, parts)
        if isinstance(parent, list):
            if name == "add":
                index = len(parent) if key == "-" else int(key)
                parent.insert(index, copy.deepcopy(op.get("value")))
            elif name == "remove":
                del parent[int(key)]
            elif name == "replace":
                parent[int(key)] = copy.deepcopy(op.get("value"))
            else:
                raise JsonPatchError(f"unknown op {name!r}")
        elif isinstance(parent, dict):
            if name == "add":
                parent[key] = copy.deepcopy(op.get("value"))
            elif name in ("remove", "replace"):
                if key not in parent:
                    raise JsonPatchError(f"unable to {name} nonexistent key: {key}")
                if name == "remove":
                    del parent[key]
                else:
                    parent[key] = copy.deepcopy(op.get("value"))
            else:
                raise JsonPatchError(f"unknown op {name!r}")
        else:
            raise JsonPatchError(f"cannot address {op['path']}")
    return doc
