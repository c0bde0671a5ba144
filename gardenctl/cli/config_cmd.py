"""`gardenctl config view | get-contexts | use-context NAME`."""

from __future__ import annotations

from typing import Annotated

import typer

from gardenctl.cli.common import ConfigOpt, ContextOpt, Output, OutputOpt, emit, make_env
from gardenctl.errors import ConfigError
from gardenctl.model import ConfigView, ContextList, ContextRow

config_app = typer.Typer(help="Show and switch cluster contexts in the config file.", no_args_is_help=True)


@config_app.command("view")
def view(ctx: typer.Context, config: ConfigOpt = None, output: OutputOpt = Output.yaml) -> None:
    """Print the config file with secrets redacted (passwords are referenced by env/file, never shown)."""
    from gardenctl.config import redacted

    env = make_env(ctx, config)
    cfg = env.config()
    if not cfg.exists:
        raise ConfigError(f"no config file at {cfg.path}", hint="run `gardenctl lab up`, or write one (README: Configuration)")
    emit(env, ConfigView(path=str(cfg.path), config=redacted(cfg.raw)), output)


@config_app.command("get-contexts")
def get_contexts(ctx: typer.Context, config: ConfigOpt = None, output: OutputOpt = Output.table) -> None:
    """List the cluster contexts; the current one is marked with *."""
    env = make_env(ctx, config)
    cfg = env.config()
    if not cfg.exists:
        raise ConfigError(f"no config file at {cfg.path}", hint="run `gardenctl lab up`, or write one (README: Configuration)")
    rows = tuple(
        ContextRow(
            name=name,
            current=name == cfg.current_context,
            scope=cluster.scope,
            patroni_endpoints=len(cluster.patroni.endpoints),
            etcd_endpoints=len(cluster.etcd.endpoints),
            lab=cluster.lab_dir is not None,
        )
        for name, cluster in cfg.clusters.items()
    )
    emit(env, ContextList(path=str(cfg.path), current_context=cfg.current_context, contexts=rows), output)


@config_app.command("use-context")
def use_context(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Context (cluster) name, as listed by get-contexts.")],
    config: ConfigOpt = None,
) -> None:
    """Make NAME the current context."""
    from gardenctl.config import set_current_context

    env = make_env(ctx, config)
    cfg = env.config()
    if not cfg.exists:
        raise ConfigError(f"no config file at {cfg.path}", hint="run `gardenctl lab up`, or write one (README: Configuration)")
    set_current_context(cfg, name)
    env.err.print(f"Switched to context {name!r}.", highlight=False)


@config_app.command("current-context")
def current_context(ctx: typer.Context, config: ConfigOpt = None, context: ContextOpt = None) -> None:
    """Print the context commands will use (after --context / GARDENCTL_CONTEXT)."""
    env = make_env(ctx, config, context)
    typer.echo(env.cluster().name)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
