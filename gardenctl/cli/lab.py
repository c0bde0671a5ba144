"""`gardenctl lab up | down | status | logs`: the real local cluster."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from gardenctl.cli.common import ConfigOpt, Output, OutputOpt, emit, make_env

lab_app = typer.Typer(
    help=(
        "A real local HA cluster on loopback: 3 etcd members, 3 Patroni nodes with PostgreSQL, HAProxy with "
        "read-write and read-only listeners. `lab up` also writes a 'lab' context and makes it current."
    ),
    no_args_is_help=True,
)

DirOpt = Annotated[
    Optional[Path],
    typer.Option("--dir", help="Lab directory. Env GARDENCTL_LAB_DIR; default /var/lib/gardenctl/lab as root, else ~/.local/state/gardenctl/lab.", show_default=False, file_okay=False),
]


def _lab(env, lab_dir: Path | None):  # noqa: ANN001, ANN202
    from gardenctl.lab import Lab, default_lab_dir

    return Lab(lab_dir or default_lab_dir(), progress=env.progress)


def _context_lab_elsewhere(env, lab, lab_dir: Path | None) -> str | None:  # noqa: ANN001
    """When no --dir was given and there is no lab in the default directory: the lab directory of the current context
    if that holds a lab, for a hint (the lab commands do not follow the context, so `lab up` never starts or stops a
    lab the user did not name)."""
    import os
    import shlex

    from gardenctl.errors import GardenError
    from gardenctl.lab import Lab

    if lab_dir is not None or os.environ.get("GARDENCTL_LAB_DIR"):
        return None
    try:
        other = env.cluster().lab_dir
    except GardenError:
        return None
    if not other:
        return None
    path = Path(other).expanduser()
    try:
        if path.resolve() == lab.dir.resolve() or Lab(path).load_state() is None:
            return None
    except (OSError, GardenError):
        return None
    return f"the current context's lab is in {path}: add --dir {shlex.quote(str(path))}"


def _not_someone_elses(env, lab, lab_dir: Path | None) -> None:  # noqa: ANN001
    """As root every user's default lab is the same directory (/var/lib/gardenctl/lab, which the postgres user can
    reach). A default lab that no context in this user's config points at may be another user's: refuse to stop,
    purge or reconfigure it unless it is named with --dir."""
    import os

    from gardenctl.config import lab_contexts
    from gardenctl.errors import GardenError, PreconditionFailed

    if lab_dir is not None or os.environ.get("GARDENCTL_LAB_DIR") or os.geteuid() != 0 or lab.load_state() is None:
        return
    try:
        path, mine = lab_contexts(env.config_path, lab.dir)
    except GardenError:
        return  # a config gardenctl cannot read is reported by the commands that need it
    if not mine:
        raise PreconditionFailed(
            f"the lab in {lab.dir} is not in your config ({path} has no context "
            "pointing at it): it may be another user's",
            hint=f"to act on it anyway name it: --dir {lab.dir}; for a lab of your own use another --dir (or GARDENCTL_LAB_DIR)",
        )


@lab_app.command("up")
def up(
    ctx: typer.Context,
    lab_dir: DirOpt = None,
    base_port: Annotated[Optional[int], typer.Option("--base-port", min=1024, max=65400, help="First port of the lab's range (it uses base..base+42). Default: 15400, or what an existing lab in --dir was made with.", show_default=False)] = None,
    sync: Annotated[Optional[bool], typer.Option("--sync/--no-sync", help="Start with Patroni synchronous_mode on (no acknowledged write lost on failover). Default: off, or what an existing lab in --dir was made with.", show_default=False)] = None,
    pg_bindir: Annotated[Optional[str], typer.Option("--pg-bindir", help="PostgreSQL server binaries (default: pg_config --bindir, then /usr/lib/postgresql/*/bin).", show_default=False)] = None,
    run_as: Annotated[Optional[str], typer.Option("--run-as", help="Unprivileged user for Patroni/PostgreSQL when running as root (default: postgres).", show_default=False)] = None,
    context_name: Annotated[str, typer.Option("--context-name", help="Name of the context written to the config file.")] = "lab",
    timeout: Annotated[float, typer.Option("--timeout", min=10, help="Seconds to wait for the cluster to become ready.")] = 120.0,
    config: ConfigOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Start the lab and wait until it is really ready: etcd healthy, 1 leader + 2 streaming replicas, HAProxy routing
    read-write to the leader and read-only to a replica. Running it again on a running lab starts nothing; it makes the lab's context current again."""
    from gardenctl.config import load_config, upsert_cluster
    from gardenctl.lab import DEFAULT_BASE_PORT, LabOptions

    env = make_env(ctx, config)
    lab = _lab(env, lab_dir)
    env.config()  # a malformed config file is reported before anything starts
    _not_someone_elses(env, lab, lab_dir)
    existing = lab.load_state()  # flags not given keep what an existing lab was made with
    if base_port is None:
        base_port = existing.base_port if existing is not None else DEFAULT_BASE_PORT
    if sync is None:
        sync = existing.synchronous_mode if existing is not None else False
    result = lab.up(LabOptions(lab_dir=lab.dir, base_port=base_port, synchronous_mode=sync, pg_bindir=pg_bindir, run_as=run_as), timeout_seconds=timeout)
    path = load_config(env.config_path).path
    upsert_cluster(path, context_name, result.context, make_current=True)
    env.progress(f"context {context_name!r} written to {path} and made current")
    emit(env, result, output)


@lab_app.command("down")
def down(
    ctx: typer.Context,
    lab_dir: DirOpt = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the lab directory (data, logs, secrets) and the config contexts that point at it.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Stop exactly the processes the lab started (by PID): HAProxy, Patroni/PostgreSQL, then etcd one at a time."""
    env = make_env(ctx, config)
    lab = _lab(env, lab_dir)
    _not_someone_elses(env, lab, lab_dir)
    if lab.load_state() is None and not lab.dir.exists():
        env.progress(f"no lab in {lab.dir}; nothing to do")
        if hint := _context_lab_elsewhere(env, lab, lab_dir):
            env.err.print(f"hint: {hint}", highlight=False, markup=False, soft_wrap=True)
        if purge:
            _forget_contexts(env, lab.dir)
        return
    stopped = lab.down(purge=purge)
    env.progress(
        (f"lab stopped ({len(stopped)} running process(es) stopped)" if stopped else "lab was not running")
        + (", data removed" if purge else "")
    )
    if purge:
        _forget_contexts(env, lab.dir)


def _forget_contexts(env, lab_dir: Path) -> None:  # noqa: ANN001
    """The purged lab's contexts point at nothing: remove them, so `status` says "no current context" instead of
    failing on a password file that no longer exists. A config file gardenctl cannot read is left alone."""
    from gardenctl.config import remove_lab_contexts
    from gardenctl.errors import GardenError

    try:
        path, gone = remove_lab_contexts(env.config_path, lab_dir)
    except GardenError as exc:
        env.err.print(f"warning: contexts of the purged lab not removed: {exc.message}", highlight=False, markup=False, soft_wrap=True)
        return
    for name in gone:
        env.progress(f"context {name!r} removed from {path} (its lab is gone; `gardenctl lab up` writes it again)")


@lab_app.command("status")
def status(ctx: typer.Context, lab_dir: DirOpt = None, output: OutputOpt = Output.table) -> None:
    """Show the lab's processes (PIDs, running or not, log files). Exit 0 when all run, 1 otherwise."""
    env = make_env(ctx)
    lab = _lab(env, lab_dir)
    result = lab.status()
    emit(env, result, output)
    if not result.exists and (hint := _context_lab_elsewhere(env, lab, lab_dir)):
        env.err.print(f"hint: {hint}", highlight=False, markup=False, soft_wrap=True)
    if not result.running:
        raise typer.Exit(1)


@lab_app.command("logs")
def logs(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Process: etcd0..etcd2, node0..node2 (Patroni + PostgreSQL) or haproxy.")],
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, help="How many lines from the end.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C to stop).")] = False,
    lab_dir: DirOpt = None,
) -> None:
    """Print the log of one lab process."""
    from gardenctl.errors import GardenError

    env = make_env(ctx)
    lab = _lab(env, lab_dir)
    try:
        path = lab.log_path(name)
    except GardenError as exc:
        if lab.load_state() is None and (hint := _context_lab_elsewhere(env, lab, lab_dir)):
            exc.hint = hint
        raise
    try:
        with open(path, "rb") as fh:
            data = fh.read().decode(errors="replace").splitlines()
            for line in data[-lines:]:
                typer.echo(line)
            while follow:
                chunk = fh.read()
                if chunk:
                    typer.echo(chunk.decode(errors="replace"), nl=False)
                else:
                    time.sleep(0.3)
    except FileNotFoundError:
        env.progress(f"{path} does not exist yet")


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
