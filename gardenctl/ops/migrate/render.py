"""Render a phase of manifests/ with ``kubectl kustomize`` and name its objects.

The manifests directory is found, in order: the ``--manifests`` flag (or ``GARDENCTL_MANIFESTS_DIR``, resolved by
the CLI), ``gardenctl/data/manifests`` (an installed wheel), then ``manifests/`` next to the package (the source
tree / editable install). A phase N is the kustomization ``phases/phase-N``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gardenctl.backends.kube import ObjectRef
from gardenctl.errors import ConfigError, PreconditionFailed

KUBECTL_TIMEOUT_SECONDS = 60.0
PART_OF_LABEL = "app.kubernetes.io/part-of"
PART_OF_VALUE = "gardenos"
PHASE_LABEL = "gardenos/phase-added"

# Apply order: what others refer to first; workloads last. Prune runs in the reverse order.
KIND_ORDER = (
    "Namespace",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "EndpointSlice",
    "Deployment",
    "StatefulSet",
    "Job",
    "Ingress",
)


def kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def apply_order(refs: Any) -> list[ObjectRef]:
    return sorted(refs, key=lambda r: (kind_rank(r.kind), r.namespace or "", r.name))


def default_manifests_dirs() -> tuple[Path, ...]:
    package = Path(__file__).resolve().parents[2]  # .../gardenctl
    return (package / "data" / "manifests", package.parent / "manifests")


def find_manifests_dir(explicit: str | Path | None = None) -> Path:
    """The manifests directory (it must contain ``phases/``). Raises `ConfigError` naming what was tried."""
    if explicit:
        path = Path(explicit).expanduser()
        if not (path / "phases").is_dir():
            raise ConfigError(f"--manifests {path}: no phases/ directory there (expected phases/phase-N kustomizations)")
        return path
    for path in default_manifests_dirs():
        if (path / "phases").is_dir():
            return path
    tried = ", ".join(str(p) for p in default_manifests_dirs())
    raise ConfigError(f"no manifests directory found (tried {tried})", hint="pass --manifests DIR or set GARDENCTL_MANIFESTS_DIR")


def available_phases(manifests_dir: Path) -> tuple[int, ...]:
    found = []
    for child in (manifests_dir / "phases").iterdir() if (manifests_dir / "phases").is_dir() else ():
        m = re.fullmatch(r"phase-(\d+)", child.name)
        if m and child.is_dir():
            found.append(int(m.group(1)))
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class RenderedPhase:
    phase: int
    source: str
    objects: tuple[dict[str, Any], ...]

    def by_ref(self) -> dict[ObjectRef, dict[str, Any]]:
        return {ObjectRef.of(o): o for o in self.objects}

    @property
    def kinds(self) -> tuple[tuple[str, str], ...]:
        return tuple(dict.fromkeys((o["apiVersion"], o["kind"]) for o in self.objects))


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class Renderer:
    """Renders phases through ``kubectl kustomize`` (cached per phase). ``runner`` replaces `subprocess.run` in tests."""

    def __init__(self, manifests_dir: Path, *, kubectl: str = "kubectl", runner: Runner | None = None) -> None:
        self.manifests_dir = manifests_dir
        self.kubectl = kubectl
        self.runner = runner or subprocess.run
        self._cache: dict[int, RenderedPhase] = {}

    def phases(self) -> tuple[int, ...]:
        return available_phases(self.manifests_dir)

    def render(self, phase: int) -> RenderedPhase:
        """Render ``phases/phase-N``. Raises `ConfigError` for an unknown phase or a kustomization kubectl rejects,
        `PreconditionFailed` when kubectl is not installed."""
        if phase in self._cache:
            return self._cache[phase]
        import yaml

        path = self.manifests_dir / "phases" / f"phase-{phase}"
        if not path.is_dir():
            known = ", ".join(str(p) for p in self.phases()) or "none"
            raise ConfigError(f"there is no phase {phase} in {self.manifests_dir}/phases (known: {known})")
        exe = shutil.which(self.kubectl) if "/" not in self.kubectl else self.kubectl
        if not exe:
            raise PreconditionFailed(
                "kubectl is not installed (needed to render the phases with kustomize)",
                hint="install kubectl >= 1.27 (https://kubernetes.io/docs/tasks/tools/), which has kustomize built in",
            )
        try:
            proc = self.runner([exe, "kustomize", str(path)], capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_SECONDS)
        except FileNotFoundError as exc:
            raise PreconditionFailed(f"kubectl not found at {exe}", hint="install kubectl >= 1.27") from exc
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(f"kubectl kustomize {path} did not finish within {KUBECTL_TIMEOUT_SECONDS:.0f}s") from exc
        if proc.returncode != 0:
            first = next((line for line in (proc.stderr or "").splitlines() if line.strip()), "no error output")
            raise ConfigError(f"kubectl kustomize {path} failed: {first.strip()[:300]}")
        try:
            docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        except yaml.YAMLError as exc:
            raise ConfigError(f"kubectl kustomize {path} printed invalid YAML: {exc}") from exc
        objects = []
        for doc in docs:
            if not isinstance(doc, dict) or not doc.get("kind") or not (doc.get("metadata") or {}).get("name"):
                raise ConfigError(f"{path}: rendered a document without kind / metadata.name")
            objects.append(doc)
        rendered = RenderedPhase(phase=phase, source=str(path), objects=tuple(objects))
        self._cache[phase] = rendered
        return rendered


def is_gardenos_owned(obj: dict[str, Any]) -> bool:
    """True for a live object the phases put there: labelled part of GardenOS with the phase label, and not made by a
    controller (an ownerReference: ReplicaSets, Pods, EndpointSlices the endpoint controller copies labels onto)."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    return labels.get(PART_OF_LABEL) == PART_OF_VALUE and PHASE_LABEL in labels and not meta.get("ownerReferences")


# Never pruned: deleting a claim deletes its data; deleting the namespace deletes everything in it.
NEVER_PRUNED = {"PersistentVolumeClaim": "holds data: delete it by hand once it is no longer needed", "Namespace": "would delete everything in it"}
