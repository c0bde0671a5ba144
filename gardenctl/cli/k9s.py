"""`gardenctl k9s` (start k9s on the cluster's context), `gardenctl k9s plugins [--write]`, `gardenctl k9s exec`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gardenctl.cli.common import ConfigOpt, ContextOpt, make_env

k9s_app = typer.Typer(
    help=(
        "K9s, the terminal UI for Kubernetes, on this cluster's K3s, with shortcuts that run gardenctl.\n\n"
        "`gardenctl k9s` starts k9s on the kubeconfig and context of the cluster's `kubernetes:` "
        "config section (kubeconfig: path, default ~/.kube/config; context: name, default the kubeconfig's "
        "current-context; namespace: where k9s opens, default gardenos). "
        "`gardenctl k9s plugins --write` installs k9s shortcuts for database status (Shift-G), check "
        "(Shift-H), drill list (Shift-J) and switchover (Shift-X, confirmed, hidden in read-only k9s)."
    ),
    invoke_without_command=True,
)


@k9s_app.callback(invoke_without_command=True)
def launch(
    ctx: typer.Context,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    readonly: Annotated[bool, typer.Option("--readonly", help="Start k9s read-only (no edits, deletes or dangerous plugins such as the switchover).")] = False,
    namespace: Annotated[
        Optional[str], typer.Option("--namespace", "-n", help="Namespace k9s opens in (default: kubernetes.namespace, else gardenos).", show_default=False)
    ] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Open k9s on all namespaces.")] = False,
) -> None:
    """Start k9s on the cluster's kubeconfig context. Exit code: k9s' own; 7 if k9s is not installed; 4 for config errors."""
    if ctx.invoked_subcommand is not None:
        return
    from gardenctl.ops.k9s import find_k9s, kubernetes_settings, plan_launch, resolve_context

    env = make_env(ctx, config, context)
    settings = kubernetes_settings(env.cluster())
    resolve_context(settings)  # a config problem is reported before a missing k9s
    binary = find_k9s(os.environ.get("PATH"))
    launch_plan = plan_launch(binary, settings, readonly=readonly, namespace=namespace, all_namespaces=all_namespaces)
    env.progress(f"k9s on {launch_plan.context} ({launch_plan.kubeconfig}) for gardenctl context {settings.cluster}")
    child_env = dict(os.environ)
    child_env.update(launch_plan.env)
    if env.config_path is not None:
        child_env["GARDENCTL_CONFIG"] = str(env.config_path)
    code = subprocess.call(list(launch_plan.argv), env=child_env)
    raise typer.Exit(code)


@k9s_app.command("plugins")
def plugins_cmd(
    ctx: typer.Context,
    write: Annotated[bool, typer.Option("--write", help="Install into the k9s plugins file, keeping every other plugin in it (a backup is kept).")] = False,
    path: Annotated[
        Optional[Path],
        typer.Option(
            "--path",
            help="Plugins file to write (default: $K9S_CONFIG_DIR/plugins.yaml, else $XDG_CONFIG_HOME/k9s/plugins.yaml, i.e. ~/.config/k9s/plugins.yaml).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    command: Annotated[str, typer.Option("--command", help="How k9s should call gardenctl (a name on k9s' PATH or an absolute path).")] = "gardenctl",
) -> None:
    """Print the k9s plugins (k9s >= 0.32 format), or install them with --write.

    Without --write the YAML goes to stdout (redirect it or merge it yourself). With --write, gardenctl's entries
    (named gardenctl-*) are added or updated in the file and everything else is kept; running it again changes nothing.
    """
    from gardenctl.ops.k9s import default_plugins_path, dump_plugins, merge_plugins, plugins, plugins_document

    env = make_env(ctx)
    if path is not None and not write:
        raise typer.BadParameter("--path only applies with --write", param_hint="--path")
    if not write:
        sys.stdout.write(dump_plugins(plugins_document(command)))
        return
    target = (path or default_plugins_path(os.environ, Path.home(), sys.platform)).expanduser()
    try:
        existing = target.read_text()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        from gardenctl.errors import PreconditionFailed

        raise PreconditionFailed(f"cannot read {target}: {exc.strerror}") from exc
    result = merge_plugins(existing, plugins(command), source=str(target))
    for conflict in result.shortcut_conflicts:
        env.err.print(f"[yellow]warning:[/yellow] shortcut clash: {conflict} (k9s uses one of them)", highlight=False)
    if not result.changed:
        env.err.print(f"{target}: the gardenctl plugins are already up to date ({len(result.kept)} other plugins kept).", highlight=False)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if existing is not None:
        backup = target.with_name(target.name + ".bak")
        backup.write_text(existing)
        env.err.print(f"backup of the previous file: {backup}", highlight=False)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(result.text)
    os.replace(tmp, target)
    parts = [f"{label} {', '.join(names)}" for label, names in (("added", result.added), ("updated", result.updated), ("removed", result.removed)) if names]
    env.err.print(f"wrote {target}: {'; '.join(parts)}; kept {len(result.kept)} other plugins.", highlight=False)


@k9s_app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_cmd(
    ctx: typer.Context,
    args: Annotated[Optional[list[str]], typer.Argument(help="The gardenctl command to run, after --, e.g. -- status.", show_default=False)] = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    kube_context: Annotated[
        Optional[str], typer.Option("--kube-context", help="k9s' current kube context ($CONTEXT): selects the gardenctl cluster whose kubernetes.context (or name) matches.", show_default=False)
    ] = None,
    bridge_service: Annotated[
        Optional[str], typer.Option("--bridge-service", help="The selected resource ($NAME); refuse unless it is a bridge service (db-rw, db-ro).", show_default=False)
    ] = None,
    pause: Annotated[bool, typer.Option("--pause", help="Wait for Enter afterwards (when on a terminal), so the output stays visible in k9s.")] = False,
) -> None:
    """Run a gardenctl command for the cluster k9s is showing (what the k9s plugins call)."""
    from gardenctl.ops.k9s import check_bridge_service, cluster_for_kube_context

    env = make_env(ctx, config, context)
    argv = list(args or [])
    if not argv:
        raise typer.BadParameter("give the gardenctl command after --, e.g. `gardenctl k9s exec -- status`", param_hint="ARGS")
    if bridge_service is not None:
        check_bridge_service(bridge_service)
    name = cluster_for_kube_context(env.config(), kube_context, env.context)
    cmd = [sys.executable, "-m", "gardenctl"]
    if env.config_path is not None:
        cmd += ["--config", str(env.config_path)]
    cmd += ["--context", name, *argv]
    env.progress(f"gardenctl --context {name} {' '.join(argv)}")
    code = subprocess.call(cmd)
    if pause and sys.stdin.isatty():
        env.err.print(f"\n[exit {code}] press Enter to return to k9s ", end="", highlight=False)
        try:
            sys.stdin.readline()
        except (OSError, KeyboardInterrupt):
            pass
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.add_typer(k9s_app, name="k9s")
