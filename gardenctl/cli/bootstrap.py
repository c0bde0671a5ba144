"""`gardenctl bootstrap plan | apply | destroy | render`: a GardenOS cluster on Hetzner Cloud from the context's
``hetzner`` section. The logic is in `gardenctl.ops.bootstrap`; this module parses flags, shows plans and progress,
asks, and records in the operation journal."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer

from gardenctl.cli.common import ConfigOpt, ContextOpt, DryRunOpt, Env, Output, OutputOpt, YesOpt, confirm, emit, make_env, who

if TYPE_CHECKING:  # pragma: no cover
    from gardenctl.inventory import Inventory

INVENTORY_HELP = (
    "The cluster is described by the `hetzner` section of the context (docs/bootstrap.md): "
    "location, private network, SSH keys, allowed networks, pools db (3), k3s-server (1 or 3), k3s-agent (N). "
    "The API token comes from HCLOUD_TOKEN (or hetzner.token-file / token-command), never from the file itself."
)

bootstrap_app = typer.Typer(
    help=(
        "Stand up a GardenOS cluster on Hetzner Cloud: servers, private network, firewall, placement groups, the "
        "Patroni stack on the db nodes (cloud-init), K3s over SSH, the kubeconfig and the database bridge.\n\n"
        + INVENTORY_HELP
        + "\n\nStart with `gardenctl bootstrap render DIR` (offline: every file per node) and `gardenctl bootstrap plan`."
    ),
    no_args_is_help=True,
)

ParallelOpt = Annotated[int, typer.Option("--parallel", min=1, max=10, help="Servers created at the same time.")]


def _inventory(env: Env) -> "Inventory":
    from gardenctl.inventory import parse_inventory

    return parse_inventory(env.cluster())


def _cloud(env: Env, inventory: "Inventory") -> Any:
    from gardenctl.backends.hetzner import HetznerCloud

    token = inventory.token.resolve()
    return HetznerCloud(token, endpoint=inventory.endpoint, notify=lambda m: env.err.print(f"  {m}", highlight=False))


def _secrets(env: Env, inventory: "Inventory") -> Any:
    from gardenctl.ops.bootstrap.secrets import load_or_create, secrets_path

    value, created = load_or_create(env.state_dir, inventory.cluster)
    if created:
        env.progress(f"generated secrets for {inventory.cluster} in {secrets_path(env.state_dir, inventory.cluster)} (mode 0600)")
    return value


def _validated_plan(env: Env, cloud: Any, inventory: "Inventory") -> Any:
    from gardenctl.inventory import check_catalog
    from gardenctl.ops.bootstrap import plan

    env.progress(f"reading Hetzner project: server types, resources labelled {inventory.selector} ...")
    check_catalog(inventory, cloud.list_server_types())
    return plan(cloud, inventory)


class _Bars:
    """ApplyEvents -> one rich progress bar per phase on stderr; plain lines when stderr is not a terminal."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.live = env.err.is_terminal and not os.environ.get("NO_COLOR_PROGRESS")
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "_Bars":
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=self.env.err)
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, event: Any) -> None:
        if self.progress is None:
            if event.state == "start":
                self.env.progress(f"  {event.phase}: {event.resource}" + (f" ({event.message})" if event.message else ""))
            return
        task = self.tasks.get(event.phase)
        if task is None:
            task = self.progress.add_task(event.phase, total=max(event.total, 1))
            self.tasks[event.phase] = task
        if event.state == "start":
            self.progress.update(task, description=f"{event.phase}: {event.resource}")
        elif event.state == "done":
            self.progress.advance(task)


def _journal(env: Env, entry: Any, started: float, outcome: str, message: str, changed: bool, details: dict[str, Any]) -> None:
    from gardenctl import journal
    from gardenctl.errors import GardenError

    full = dataclasses.replace(entry, outcome=outcome, message=message, changed=changed, duration_seconds=time.monotonic() - started, details=details)
    try:
        path = journal.record(env.state_dir, full)
    except GardenError as err:
        env.err.print(f"warning: {err.message}", highlight=False)
        return
    env.progress(f"recorded in the operation journal {path} ({outcome})")


def _default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0]).expanduser()
    return Path.home() / ".kube" / "config"


# ------------------------------------------------------------------------------------------------ plan


@bootstrap_app.command("plan")
def plan_cmd(ctx: typer.Context, config: ConfigOpt = None, context: ContextOpt = None, output: OutputOpt = Output.table) -> None:
    """Show what `apply` would create, change or keep, like a terraform plan.

    Validates the inventory (counts, CIDRs, server types available in their location per the API's
    locations[].deprecation and availability), then reads every resource labelled gardenos/cluster=<name>.
    Sends only GET requests: nothing changes. Exit 0 whether or not there is something to do."""
    env = make_env(ctx, config, context)
    inventory = _inventory(env)
    cloud = _cloud(env, inventory)
    emit(env, _validated_plan(env, cloud, inventory), output)


# ------------------------------------------------------------------------------------------------ apply


@bootstrap_app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    infra_only: Annotated[bool, typer.Option("--infra-only", help="Create the Hetzner resources only; skip K3s, kubeconfig and the bridge.")] = False,
    kubeconfig: Annotated[
        Optional[Path],
        typer.Option("--kubeconfig", help="Kubeconfig to merge the cluster's context into (0600). Default: first of $KUBECONFIG, else ~/.kube/config.", dir_okay=False, show_default=False),
    ] = None,
    parallel: ParallelOpt = 5,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create what the plan says, in dependency order, then install K3s over SSH.

    Order: SSH keys, network + subnet, firewall (SSH and 6443 from allowed-networks, ICMP; Hetzner firewalls filter
    only the public interface, so private-network traffic between nodes is not filtered), spread placement groups,
    then the servers in parallel (created powered off, attached to the private network with their inventory
    address, powered on; db nodes install PostgreSQL, Patroni, etcd and HAProxy through cloud-init). Then K3s over
    SSH (first server --cluster-init, others --server, agents K3S_URL/K3S_TOKEN), the kubeconfig merged into yours,
    and the database bridge (Services + EndpointSlices to HAProxy on the db nodes).

    Idempotent: on a complete cluster it sends no create request; after an interruption it creates only what is
    missing. API errors follow Hetzner's error codes (rate limit: waits for RateLimit-Reset; locked/conflict:
    retried; no capacity: stops and suggests another type or location).

    Exit codes: 0 applied and verified; 4 configuration; 5 API or SSH unreachable; 6 the API answered an error;
    7 refused (preflight, not confirmed); 8 did not converge; 9 timed out; 10 aborted."""
    from gardenctl import journal

    env = make_env(ctx, config, context)
    inventory = _inventory(env)
    cloud = _cloud(env, inventory)
    entry = journal.new_entry("bootstrap apply", who=who(), context=inventory.cluster, command_line=" ".join(["gardenctl", *sys.argv[1:]]))
    started = time.monotonic()
    plan = None
    executing = False
    try:
        plan = _validated_plan(env, cloud, inventory)
        if output == Output.table or dry_run:
            emit(env, plan, output)
        if dry_run:
            env.progress("dry run: nothing was changed")
            return
        if plan.up_to_date:
            question = f"The Hetzner resources of {inventory.cluster} are up to date." + ("" if infra_only else " Check and install K3s over SSH?")
            if infra_only:
                env.progress(question + " Nothing to do.")
        else:
            question = f"Apply this plan to the Hetzner project ({plan.counts['create']} to create, {plan.counts['change']} to change)?"
        if not (plan.up_to_date and infra_only):
            confirm(env, question, yes=yes)
        executing = True
        result = _apply(env, cloud, inventory, plan, infra_only=infra_only, kubeconfig=kubeconfig or _default_kubeconfig(), parallel=parallel)
        emit(env, result, output)
    except BaseException as exc:
        if not dry_run:  # refusals (catalogue, not confirmed) are recorded too
            from gardenctl.errors import GardenError

            message = exc.message if isinstance(exc, GardenError) else str(exc) or type(exc).__name__
            _journal(env, entry, started, journal.outcome_for_error(exc), message, executing, {"plan": plan.counts if plan else None})
        raise
    else:
        if not dry_run and executing:
            _journal(env, entry, started, journal.SUCCEEDED, f"created {len(result.created)}, changed {len(result.changed)}", bool(result.created or result.changed or result.k3s), {"created": list(result.created), "changed": list(result.changed)})


def _apply(env: Env, cloud: Any, inventory: "Inventory", plan: Any, *, infra_only: bool, kubeconfig: Path, parallel: int) -> Any:
    from gardenctl.ops.bootstrap import apply_infrastructure

    secrets = _secrets(env, inventory)
    with _Bars(env) as bars:
        result = apply_infrastructure(cloud, inventory, secrets, plan, progress=bars, parallel=parallel)
    if infra_only:
        return result
    from gardenctl.ops.bootstrap.cluster import install_cluster
    from gardenctl.ops.bootstrap.secrets import save

    public_ips = {n.name: n.public_ipv4 for n in result.nodes if n.public_ipv4}
    with _Bars(env) as bars:
        cluster = install_cluster(
            inventory,
            secrets,
            public_ips,
            _connector(env, inventory, public_ips),
            kubeconfig_path=kubeconfig,
            save_token=lambda token: save(env.state_dir, inventory.cluster, secrets.with_k3s_token(token)),
            progress=bars,
        )
    return dataclasses.replace(result, k3s=cluster.installs, kubeconfig=cluster.kubeconfig, bridge_applied=cluster.bridge_applied)


def _connector(env: Env, inventory: "Inventory", public_ips: dict[str, str]) -> Callable[[str], Any]:
    """SSH to each node's public address. Host keys: trust on first use into a per-cluster known_hosts file in the
    state dir (the servers were created moments ago by this run), strict afterwards."""
    from gardenctl.backends.ssh import SshClient, SshTarget
    from gardenctl.errors import ConfigError

    if not inventory.ssh_private_key:
        raise ConfigError(
            f"{inventory.source}: hetzner.ssh-private-key is not set: gardenctl needs it to install K3s over SSH",
            hint="set it to the private key of one of hetzner.ssh-keys, or run with --infra-only",
        )
    import tempfile

    known_hosts = env.state_dir / "bootstrap" / inventory.cluster / "known_hosts"
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    known_hosts.touch(mode=0o600, exist_ok=True)
    # One SSH connection per node for the whole run (each node gets a handful of commands); the masters exit by
    # themselves 30 s after the last use. The socket directory is short-lived and private (0700).
    mux_dir = tempfile.mkdtemp(prefix="gardenctl-ssh-")
    mux = ("ControlMaster=auto", f"ControlPath={mux_dir}/%C", "ControlPersist=30")

    def connect(node: str) -> Any:
        return SshClient(
            SshTarget(
                host=public_ips[node],
                user=inventory.ssh_user,
                identity_file=inventory.ssh_private_key,
                known_hosts_file=str(known_hosts),
                strict_host_key_checking="accept-new",
                sudo=inventory.ssh_user != "root",
                name=node,
                connect_timeout_seconds=10,
                extra_options=mux,
            ),
            timeout_seconds=120,
        )

    return connect


# ------------------------------------------------------------------------------------------------ destroy


@bootstrap_app.command("destroy")
def destroy_cmd(
    ctx: typer.Context,
    yes: YesOpt = False,
    cluster_name: Annotated[
        Optional[str],
        typer.Option("--cluster-name", help="With --yes: the cluster's name, typed out, as the confirmation (must match the context's cluster).", show_default=False),
    ] = None,
    dry_run: DryRunOpt = False,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Delete every Hetzner resource labelled gardenos/cluster=<name>, and nothing else.

    Order: servers (in parallel), firewall, placement groups, network, SSH keys uploaded by gardenctl (keys that
    were already in the project are left). Asks you to type the cluster name; without a terminal it needs
    --yes --cluster-name NAME. `hetzner.protected: true` in the inventory refuses. Verifies that nothing labelled
    remains. The generated secrets in the state dir are kept (delete them by hand if the cluster is gone for good).

    Exit codes: 0 deleted and verified; 4 configuration; 6 API error; 7 refused (protected, name mismatch, no TTY);
    8 something remained; 10 aborted."""
    from gardenctl import journal
    from gardenctl.errors import Aborted, OperationFailed, PreconditionFailed
    from gardenctl.ops.bootstrap import destroy, plan_destroy

    env = make_env(ctx, config, context)
    inventory = _inventory(env)
    cloud = _cloud(env, inventory)
    entry = journal.new_entry("bootstrap destroy", who=who(), context=inventory.cluster, command_line=" ".join(["gardenctl", *sys.argv[1:]]))
    started = time.monotonic()
    executing = False
    try:
        dplan = plan_destroy(cloud, inventory)
        emit(env, dplan, output if output != Output.table else Output.table)
        if dry_run:
            env.progress("dry run: nothing was deleted")
            return
        if dplan.protected:
            raise PreconditionFailed(
                f"cluster {inventory.cluster} is protected (hetzner.protected: true); nothing was deleted",
                hint="set protected: false in the config file first if you really mean to destroy it",
            )
        if dplan.empty:
            env.progress(f"nothing labelled {inventory.selector} exists; nothing to delete")
            return
        if yes:
            if cluster_name != inventory.cluster:
                raise PreconditionFailed(
                    "--yes needs --cluster-name with the cluster's name" if cluster_name is None else f"--cluster-name {cluster_name!r} does not match the cluster {inventory.cluster!r}",
                    hint=f"gardenctl bootstrap destroy --yes --cluster-name {inventory.cluster}",
                )
        else:
            if not sys.stdin.isatty():
                raise PreconditionFailed(
                    "not confirmed: standard input is not a terminal, so gardenctl cannot ask for the cluster name",
                    hint=f"re-run with --yes --cluster-name {inventory.cluster} once you have read the list",
                )
            typed = typer.prompt(f"This deletes {len(dplan.names)} resources. Type the cluster name ({inventory.cluster}) to confirm", err=True, default="", show_default=False)
            if typed.strip() != inventory.cluster:
                raise Aborted("aborted: the name did not match; nothing was deleted")
        executing = True
        with _Bars(env) as bars:
            result = destroy(cloud, dplan, progress=bars)
        left = plan_destroy(cloud, inventory)
        if not left.empty:
            raise OperationFailed(f"destroy did not finish: still there: {', '.join(left.names)}", hint="re-run `gardenctl bootstrap destroy`")
        known_hosts = env.state_dir / "bootstrap" / inventory.cluster / "known_hosts"
        known_hosts.unlink(missing_ok=True)  # rebuilt servers get new host keys (and maybe the same addresses)
        emit(env, result, output)
    except BaseException as exc:
        if executing or isinstance(exc, (PreconditionFailed, Aborted)):
            from gardenctl.errors import GardenError

            message = exc.message if isinstance(exc, GardenError) else str(exc) or type(exc).__name__
            _journal(env, entry, started, journal.outcome_for_error(exc), message, executing, {})
        raise
    else:
        if executing:
            _journal(env, entry, started, journal.SUCCEEDED, f"deleted {len(result.deleted)} resources", True, {"deleted": list(result.deleted)})


# ------------------------------------------------------------------------------------------------ render


@bootstrap_app.command("render")
def render_cmd(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Directory to write into (DIR/<node>/...); created if missing.", file_okay=False)],
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Write every file gardenctl would send, per node, for review: offline, no API call.

    DIR/<node>/cloud-init.yaml (user data), and for db nodes patroni.yml, haproxy.cfg, etcd.env (/etc/default/etcd);
    for K3s nodes k3s-install.sh (the install command line and its environment, token redacted);
    DIR/cluster/db-bridge.yaml (the database bridge manifests). Secrets are redacted everywhere; the real ones are
    in the state dir (mode 0600). Public addresses (and the interface names, found by address) are known only
    once servers exist: until then the K3s lines show placeholders."""
    from gardenctl.ops.bootstrap.render import RenderedRow, RenderResult, render_all

    env = make_env(ctx, config, context)
    inventory = _inventory(env)
    secrets = _secrets(env, inventory)
    files = render_all(inventory, secrets.redacted())
    written = []
    for f in files:
        path = directory / f.node / f.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content)
        written.append(RenderedRow(node=f.node, file=f"{f.node}/{f.name}", target=f.target, kind=f.kind, bytes=len(f.content.encode())))
    emit(env, RenderResult(cluster=inventory.cluster, directory=str(directory), files=tuple(written)), output)


def register(app: typer.Typer) -> None:
    app.add_typer(bootstrap_app, name="bootstrap")
