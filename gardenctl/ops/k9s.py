"""K9s integration: start k9s on the cluster's kubeconfig context, and the k9s plugins that run gardenctl from k9s.

The cluster's ``kubernetes:`` section of the gardenctl config names the kubeconfig and the context::

    clusters:
      prod:
        ...
        kubernetes:
          kubeconfig: ~/.kube/config   # optional, default ~/.kube/config
          context: prod                # optional, default: the kubeconfig's current-context
          namespace: gardenos          # optional, default gardenos (where k9s opens)

Plugins (k9s >= 0.32: ``$XDG_CONFIG_HOME/k9s/plugins.yaml``, top-level ``plugins:``) call
``gardenctl k9s exec --kube-context $CONTEXT ...``, which maps k9s' current kube context back to the gardenctl
cluster whose ``kubernetes.context`` (or name) matches, so the shortcuts act on the cluster k9s is looking at.

Nothing here prints or prompts; the CLI (`gardenctl.cli.k9s`) runs processes and writes files.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from gardenctl import yamltext
from gardenctl.config import ClusterConfig, Config, Section
from gardenctl.errors import ConfigError, PreconditionFailed

DEFAULT_KUBECONFIG = "~/.kube/config"
DEFAULT_NAMESPACE = "gardenos"
PLUGIN_PREFIX = "gardenctl-"
BRIDGE_SERVICES = ("db-rw", "db-ro")
K9S_INSTALL_HINT = (
    "install k9s (https://k9scli.io/topics/install/): a release binary from github.com/derailed/k9s/releases, "
    "`brew install derailed/k9s/k9s`, `snap install k9s` or `go install github.com/derailed/k9s@latest`; "
    "then re-run `gardenctl k9s`"
)
KUBERNETES_EXAMPLE = "kubernetes:\n  kubeconfig: ~/.kube/config\n  context: NAME"


# ------------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    """The ``kubernetes:`` section of one cluster, validated; ``kubeconfig`` is expanded (``~``)."""

    cluster: str
    kubeconfig: str
    context: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    configured: bool = True
    where: str = ""  # "file:line" of the section, for messages

    def _at(self, key: str) -> str:
        prefix = f"{self.where}: " if self.where else ""
        return f"{prefix}clusters.{self.cluster}.kubernetes.{key}"


def kubernetes_settings(cluster: ClusterConfig, *, required: bool = True) -> KubernetesSettings:
    """Parse and type-check ``clusters.<name>.kubernetes``. Keys other sections' owners add are left alone.

    Raises `ConfigError` (naming file, line and key) for a wrong type or an empty value, and, when ``required``, for a
    missing section.
    """
    raw = cluster.kubernetes
    path = f"clusters.{cluster.name}.kubernetes"
    if raw is None:
        if required:
            where = f"{cluster.source}:{cluster.line}" if cluster.line else (cluster.source or "the config file")
            raise ConfigError(
                f"{where}: clusters.{cluster.name}: no kubernetes section (which kubeconfig and context to use)",
                hint="add to the cluster in the config file:\n" + KUBERNETES_EXAMPLE,
            )
        return KubernetesSettings(cluster.name, str(Path(DEFAULT_KUBECONFIG).expanduser()), None, DEFAULT_NAMESPACE, False)
    sec = Section(raw, path, cluster.source, getattr(raw, "line", 0) or cluster.line)
    values: dict[str, str | None] = {}
    for key, default in (("kubeconfig", DEFAULT_KUBECONFIG), ("context", None), ("namespace", DEFAULT_NAMESPACE)):
        value = sec.get(key, str, default)
        if value is not None and not value.strip():
            raise sec.error("must not be empty", sec.key_line(key), key)
        values[key] = value
    return KubernetesSettings(
        cluster=cluster.name,
        kubeconfig=str(Path(str(values["kubeconfig"])).expanduser()),
        context=values["context"],
        namespace=str(values["namespace"]),
        where=f"{cluster.source}:{sec.line}" if sec.line else cluster.source,
    )


def resolve_context(settings: KubernetesSettings) -> str:
    """The kube context to use: the configured one, checked to exist in the kubeconfig, or its current-context.

    Raises `ConfigError` when the kubeconfig is missing, unreadable or not a kubeconfig, or lacks the context.
    """
    path = Path(settings.kubeconfig)
    where = settings._at("kubeconfig")
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{where}: kubeconfig {path} does not exist",
            hint="`gardenctl bootstrap apply` writes it; or point kubeconfig: at the file kubectl uses",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read kubeconfig {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: {path} is not valid YAML") from exc
    if not isinstance(data, dict) or not isinstance(data.get("contexts") or [], list):
        raise ConfigError(f"{where}: {path} is not a kubeconfig (no contexts list)")
    names = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict) and c.get("name")]
    context = settings.context or data.get("current-context")
    if not context:
        raise ConfigError(
            f"{settings._at('context')}: not set and {path} has no current-context",
            hint=f"set kubernetes.context to one of: {', '.join(names) or 'none'}",
        )
    if context not in names:
        raise ConfigError(
            f"{settings._at('context')}: {path} has no context {context!r} "
            f"(it has: {', '.join(names) or 'none'})",
            hint=f"kubectl config get-contexts --kubeconfig {path}",
        )
    return str(context)


def cluster_for_kube_context(config: Config, kube_context: str | None, fallback: str | None) -> str:
    """The gardenctl cluster a k9s plugin acts on: the one whose ``kubernetes.context`` is ``kube_context``; else one
    named like it (bootstrap names the kube context after the cluster). A kube context that matches no cluster is
    refused: after `:ctx` in k9s, falling back to another cluster would aim a switchover at the wrong database.
    Only when k9s passes no kube context: ``fallback`` (``--context`` / GARDENCTL_CONTEXT, which `gardenctl k9s` sets
    for k9s), else the current context, else the only cluster.

    Raises `ConfigError` when two clusters claim the kube context, or nothing matches.
    """
    if kube_context:
        claimed = [
            c.name
            for c in config.clusters.values()
            if c.kubernetes is not None and kubernetes_settings(c).context == kube_context
        ]
        if len(claimed) > 1:
            raise ConfigError(
                f"kube context {kube_context!r} is claimed by several gardenctl clusters: {', '.join(sorted(claimed))}",
                hint="give each cluster its own kubernetes.context",
            )
        if claimed:
            return claimed[0]
        if kube_context in config.clusters:
            return kube_context
        raise ConfigError(
            f"kube context {kube_context!r} belongs to no gardenctl cluster; not guessing which database to act on",
            hint="set kubernetes.context of the cluster it belongs to in the config:\n" + KUBERNETES_EXAMPLE,
        )
    if fallback:
        return fallback
    if config.current_context:
        return config.current_context
    if len(config.clusters) == 1:
        return next(iter(config.clusters))
    raise ConfigError(
        "k9s passed no kube context and there is no current gardenctl context",
        hint="run it through `gardenctl k9s`, or gardenctl config use-context NAME",
    )


def check_bridge_service(name: str | None, allowed: tuple[str, ...] = BRIDGE_SERVICES) -> None:
    """Refuse a database action started from a resource that is not a bridge service (a stray shortcut press)."""
    if name not in allowed:
        raise PreconditionFailed(
            f"this shortcut acts on the database; it runs from the bridge services ({', '.join(allowed)}), not from {name!r}",
            hint="in k9s, open :svc in the gardenos namespace and select db-rw",
        )


# ------------------------------------------------------------------------------------------------ launching


@dataclass(frozen=True, slots=True)
class K9sLaunch:
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    context: str = ""
    kubeconfig: str = ""


def find_k9s(search_path: str | None) -> str:
    """The k9s executable on ``search_path`` (a PATH string). Raises `PreconditionFailed` with install hints."""
    found = shutil.which("k9s", path=search_path)
    if not found:
        raise PreconditionFailed("k9s is not installed (no `k9s` on PATH)", hint=K9S_INSTALL_HINT)
    return found


def plan_launch(
    binary: str,
    settings: KubernetesSettings,
    *,
    readonly: bool = False,
    namespace: str | None = None,
    all_namespaces: bool = False,
) -> K9sLaunch:
    """The k9s command line for a cluster; resolves and checks the kube context first (see `resolve_context`).
    ``GARDENCTL_CONTEXT`` goes into k9s' environment so the plugins it starts act on the same gardenctl cluster."""
    context = resolve_context(settings)
    argv = [binary, "--kubeconfig", settings.kubeconfig, "--context", context]
    if all_namespaces:
        argv.append("--all-namespaces")
    else:
        argv += ["--namespace", namespace or settings.namespace]
    if readonly:
        argv.append("--readonly")
    return K9sLaunch(tuple(argv), {"GARDENCTL_CONTEXT": settings.cluster}, context, settings.kubeconfig)


# ------------------------------------------------------------------------------------------------ plugins


def plugins(command: str = "gardenctl") -> dict[str, dict[str, Any]]:
    """The gardenctl plugins, keyed by plugin name (each name starts with ``gardenctl-``).

    Every plugin runs ``gardenctl k9s exec --kube-context $CONTEXT --pause -- <command>`` in the foreground
    (``background: false``) so its output stays on screen until Enter. The switchover asks k9s for confirmation and is
    ``dangerous`` (hidden when k9s runs read-only), and gardenctl shows its plan and asks again before acting.
    """

    def run(*args: str, bridge: bool = False) -> list[str]:
        head = ["k9s", "exec", "--kube-context", "$CONTEXT", "--pause"]
        if bridge:
            head += ["--bridge-service", "$NAME"]
        return [*head, "--", *args]

    db_views = ["services", "endpointslices"]
    return {
        f"{PLUGIN_PREFIX}status": {
            "shortCut": "Shift-G",
            "description": "DB status (gardenctl)",
            "scopes": [*db_views, "pods", "deployments"],
            "command": command,
            "background": False,
            "confirm": False,
            "args": run("status"),
        },
        f"{PLUGIN_PREFIX}check": {
            "shortCut": "Shift-H",
            "description": "DB health check (gardenctl)",
            "scopes": [*db_views, "pods", "deployments"],
            "command": command,
            "background": False,
            "confirm": False,
            "args": run("check"),
        },
        f"{PLUGIN_PREFIX}drills": {
            "shortCut": "Shift-J",
            "description": "Failover drills (gardenctl)",
            "scopes": db_views,
            "command": command,
            "background": False,
            "confirm": False,
            "args": run("drill", "list"),
        },
        f"{PLUGIN_PREFIX}switchover": {
            "shortCut": "Shift-X",
            "description": "DB switchover (gardenctl)",
            "scopes": db_views,
            "command": command,
            "background": False,
            "confirm": True,
            "dangerous": True,
            "args": run("switchover", bridge=True),
        },
    }


def plugins_document(command: str = "gardenctl") -> dict[str, Any]:
    return {"plugins": plugins(command)}


def dump_plugins(document: Mapping[str, Any]) -> str:
    return yamltext.dump(dict(document), allow_unicode=True)


def default_plugins_path(env: Mapping[str, str], home: Path, platform: str) -> Path:
    """Where k9s (>= 0.32) reads plugins: ``$K9S_CONFIG_DIR/plugins.yaml``, else the XDG config dir
    (``$XDG_CONFIG_HOME``, default ``~/.config``; on macOS ``~/Library/Application Support``) ``/k9s/plugins.yaml``."""
    if env.get("K9S_CONFIG_DIR"):
        return Path(env["K9S_CONFIG_DIR"]) / "plugins.yaml"
    if env.get("XDG_CONFIG_HOME"):
        base = Path(env["XDG_CONFIG_HOME"])
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = home / ".config"
    return base / "k9s" / "plugins.yaml"


@dataclass(frozen=True, slots=True)
class PluginsMerge:
    text: str
    changed: bool
    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]
    kept: tuple[str, ...]
    shortcut_conflicts: tuple[str, ...] = ()


def merge_plugins(existing_text: str | None, ours: Mapping[str, dict[str, Any]], *, source: str = "plugins.yaml") -> PluginsMerge:
    """The plugins file with gardenctl's entries set and everything else kept as it was (order too).

    Entries named ``gardenctl-*`` that gardenctl no longer makes are removed; the user's own plugins are never touched.
    Running it on its own output changes nothing (``changed`` False). Comments in an existing file do not survive a
    rewrite (YAML round trip); the CLI keeps a backup.

    Raises `PreconditionFailed` when the existing file is not a plugins file (not YAML, or ``plugins`` not a mapping):
    gardenctl will not rewrite what it cannot read.
    """
    data: dict[str, Any] = {}
    if existing_text is not None and existing_text.strip():
        try:
            loaded = yaml.safe_load(existing_text)
        except yaml.YAMLError as exc:
            raise PreconditionFailed(f"{source} is not valid YAML; gardenctl will not rewrite it", hint="fix or move the file, then re-run") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise PreconditionFailed(f"{source} is not a k9s plugins file (expected a mapping with `plugins:`)")
        if "plugin" in loaded and "plugins" not in loaded:
            raise PreconditionFailed(
                f"{source} uses the old top-level `plugin:` key (k9s < 0.32)",
                hint="rename it to `plugins:` (k9s >= 0.32 reads only that), then re-run",
            )
        data = loaded
    current = data.get("plugins")
    if current is None:
        current = {}
    if not isinstance(current, dict):
        raise PreconditionFailed(f"{source}: `plugins` is not a mapping; gardenctl will not rewrite it")

    merged: dict[str, Any] = {}
    added, updated, removed, kept = [], [], [], []
    for name, body in current.items():
        if str(name).startswith(PLUGIN_PREFIX):
            if name in ours:
                merged[name] = dict(ours[name])
                if body != ours[name]:
                    updated.append(name)
            else:
                removed.append(name)
        else:
            merged[name] = body
            kept.append(name)
    for name, body in ours.items():
        if name not in merged:
            merged[name] = dict(body)
            added.append(name)

    conflicts = []
    for name in kept:
        body = merged[name]
        if not isinstance(body, dict):
            continue
        for our_name, our_body in ours.items():
            if str(body.get("shortCut", "")).lower() == our_body["shortCut"].lower():
                scopes = set(body.get("scopes") or [])
                if "all" in scopes or scopes & set(our_body["scopes"]):
                    conflicts.append(f"{name} and {our_name} both use {our_body['shortCut']}")

    new = dict(data)
    new["plugins"] = merged
    changed = new != (data if existing_text is not None and existing_text.strip() else None)
    return PluginsMerge(
        text=dump_plugins(new),
        changed=changed,
        added=tuple(added),
        updated=tuple(updated),
        removed=tuple(removed),
        kept=tuple(kept),
        shortcut_conflicts=tuple(conflicts),
    )
