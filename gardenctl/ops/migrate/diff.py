"""What a phase change does to the cluster, object by object: create, update (which fields), delete, keep.

Two sources of truth, used together:

- rendered vs rendered (`diff_rendered`): the phase the cluster is recorded at against the target phase, offline. It
  shows what the step changes in the manifests.
- live (`LiveDiff` in `gardenctl.ops.migrate.engine`): each target object against the cluster, with a server-side
  dry-run apply giving exactly what the server would store, and the GardenOS-labelled live objects the target no
  longer has (the prune set). It shows what the step changes on this cluster, including drift.

Objects are identified by (apiVersion, kind, namespace, name). Field paths name list items by their ``name`` when
they have one (``spec.template.spec.containers[fastapi].env[SERVE_REST_V1].value``), so a diff reads like the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from gardenctl.backends.kube import ObjectRef

CREATE, UPDATE, DELETE, UNCHANGED, KEEP = "create", "update", "delete", "unchanged", "keep"
ACTIONS = (CREATE, UPDATE, DELETE, KEEP, UNCHANGED)
MAX_FIELDS = 12

# What the server adds or bumps on its own: never a difference a phase makes.
_SERVER_META = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
_SERVER_ANNOTATIONS = ("deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration")


@dataclass(frozen=True, slots=True)
class Change:
    """One object's fate. ``fields``: the changed field paths of an update (at most `MAX_FIELDS`, then "...")."""

    __json_properties__ = ("object",)

    action: str
    ref: ObjectRef
    fields: tuple[str, ...] = ()
    note: str | None = None

    @property
    def object(self) -> str:
        return str(self.ref)


def _key(item: Any) -> str | None:
    if isinstance(item, dict):
        for k in ("name", "containerPort", "mountPath", "type", "key"):
            if k in item and isinstance(item[k], (str, int)):
                return str(item[k])
    return None


def field_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where ``old`` and ``new`` differ (added, removed or changed values)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append(path)
            else:
                out += field_changes(old[k], new[k], path)
        return out
    if isinstance(old, list) and isinstance(new, list):
        old_keys = [_key(i) for i in old]
        new_keys = [_key(i) for i in new]
        if all(old_keys) and all(new_keys) and len(set(old_keys)) == len(old_keys) and len(set(new_keys)) == len(new_keys):
            o = dict(zip(old_keys, old))
            n = dict(zip(new_keys, new))
            out = []
            for k in list(dict.fromkeys([*old_keys, *new_keys])):
                path = f"{prefix}[{k}]"
                if k not in o or k not in n:
                    out.append(path)
                else:
                    out += field_changes(o[k], n[k], path)
            if not out and old_keys != new_keys:
                out.append(f"{prefix} (order)")
            return out
        if len(old) == len(new):
            out = []
            for i, (a, b) in enumerate(zip(old, new)):
                out += field_changes(a, b, f"{prefix}[{i}]")
            return out
    return [prefix or "(whole object)"]


def _limited(paths: list[str]) -> tuple[str, ...]:
    if len(paths) > MAX_FIELDS:
        return tuple(paths[:MAX_FIELDS]) + (f"... {len(paths) - MAX_FIELDS} more",)
    return tuple(paths)


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without what the server owns (status, managedFields, resourceVersion, ...)."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for key in _SERVER_META:
        meta.pop(key, None)
    if isinstance(meta.get("annotations"), dict):
        ann = {k: v for k, v in meta["annotations"].items() if k not in _SERVER_ANNOTATIONS}
        if ann:
            meta["annotations"] = ann
        else:
            meta.pop("annotations")
    out["metadata"] = meta
    return out


def object_change(ref: ObjectRef, before: dict[str, Any] | None, after: dict[str, Any]) -> Change:
    if before is None:
        return Change(CREATE, ref)
    paths = field_changes(comparable(before), comparable(after))
    return Change(UPDATE, ref, _limited(paths)) if paths else Change(UNCHANGED, ref)


def diff_rendered(old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]], *, never_pruned: dict[str, str] | None = None) -> tuple[Change, ...]:
    """Rendered phase against rendered phase: objects only in ``new`` are created, only in ``old`` deleted (or kept,
    for kinds in ``never_pruned``), in both with a different body updated."""
    from gardenctl.ops.migrate.render import apply_order

    old_map = {ObjectRef.of(o): o for o in old}
    new_map = {ObjectRef.of(o): o for o in new}
    changes = [object_change(ref, old_map.get(ref), new_map[ref]) for ref in apply_order(new_map)]
    for ref in reversed(apply_order(r for r in old_map if r not in new_map)):
        reason = (never_pruned or {}).get(ref.kind)
        changes.append(Change(KEEP, ref, note=f"not pruned: {reason}") if reason else Change(DELETE, ref))
    return tuple(changes)


def count(changes: Iterable[Change]) -> dict[str, int]:
    totals = {a: 0 for a in ACTIONS}
    for c in changes:
        totals[c.action] = totals.get(c.action, 0) + 1
    return totals
