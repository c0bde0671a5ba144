"""The fast path for `check` / `status` must accept exactly what the Typer commands accept, or hand over to them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from gardenctl.cli import fast
from gardenctl.cli.main import full_app

ROOT = Path(__file__).resolve().parents[2]


def _typer_options(command_name: str) -> dict[str, object]:
    group = typer.main.get_command(full_app())
    command = group.commands[command_name]
    options = {}
    for param in command.params:
        if param.param_type_name != "option":
            continue
        for name in (*param.opts, *param.secondary_opts):
            options[name] = param
    return options


def _kind_of(param) -> str:  # noqa: ANN001
    """The kind of value a Typer option takes, from its annotation (typer 0.29 keeps it in ``type_descriptor``)."""
    import enum
    from pathlib import Path

    if param.is_flag:
        return "flag"
    if param.multiple:
        return "list"
    annotation = param.type_descriptor.annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "choice"
    return {float: "float", int: "int", Path: "path", str: "str"}[annotation]


def _choices(param) -> set[str]:  # noqa: ANN001
    return {member.value.lower() for member in param.type_descriptor.annotation}


@pytest.mark.parametrize("command_name", ["check", "status"])
def test_fast_parser_knows_the_same_options_as_typer(command_name):
    typer_opts = _typer_options(command_name)
    specs, _ = fast.COMMANDS[command_name]
    fast_names = {name for opt in specs for name in opt.names}
    left_to_full_cli = fast.FULL_CLI_ONLY[command_name]
    assert fast_names | left_to_full_cli == set(typer_opts) | {"--help", "-h"}, "fast path and Typer command differ"
    for opt in specs:
        param = typer_opts[opt.names[0]]
        assert set(opt.names) == set(param.opts), opt.names
        assert opt.kind == _kind_of(param), (opt.names, _kind_of(param))
        if opt.kind == "choice":
            assert set(opt.choices) == _choices(param)
        if opt.minimum is not None:
            assert opt.minimum == param.min


def test_root_options_match_the_typer_callback():
    group = typer.main.get_command(full_app())
    typer_root = {name for p in group.params if p.param_type_name == "option" for name in p.opts}
    fast_root = {name for opt in fast.ROOT_OPTS for name in opt.names}
    # --version, --help and the completion installers always go to the full CLI (plan() returns None for them).
    assert fast_root <= typer_root
    assert typer_root - fast_root <= {"--version", "--help", "-h", "--install-completion", "--show-completion"}


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["check"], {}),
        (["check", "-o", "json", "--perfdata", "--only", "etcd_*", "--only=patroni_lag", "--timeout=1.5"], {"output": "json", "perfdata": True, "only": ["etcd_*", "patroni_lag"], "timeout": 1.5}),
        (["--context", "prod", "check", "--quiet"], {"quiet": True}),
        (["-c", "/tmp/x.yaml", "status", "-o", "YAML"], {"output": "yaml"}),
        (["status", "--context=lab"], {"context": "lab"}),
    ],
)
def test_plain_arguments_take_the_fast_path(argv, expected):
    planned = fast.plan(argv)
    assert planned is not None
    _, env, values = planned
    for key, value in expected.items():
        assert values[key] == value
    if "--context" in argv:
        assert env.context == "prod"
    if "-c" in argv:
        assert str(env.config_path) == "/tmp/x.yaml"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["--version"],
        ["check", "--help"],
        ["check", "--list-rules"],
        ["check", "-o", "xml"],  # bad value: the full CLI gives the usage error
        ["check", "-o=json"],  # click reads this as the value "=json"
        ["check", "--timeout", "0"],
        ["check", "--timeout", "nan"],
        ["check", "--perfdata=yes"],
        ["check", "extra"],
        ["check", "--bogus"],
        ["status", "--watch", "2"],
        ["status", "--count", "1"],
        ["status", "-o"],
        ["lab", "status"],
        ["switchover", "--yes"],
    ],
)
def test_anything_else_goes_to_the_full_cli(argv):
    assert fast.plan(argv) is None


def test_check_and_status_fast_path_never_imports_typer_pydantic_or_heavy_clients(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "clusters:\n  a:\n    patroni: {endpoints: [http://127.0.0.1:9]}\n    etcd: {endpoints: [http://127.0.0.1:9]}\n"
        "    haproxy: {stats-socket: /nonexistent}\n    request-timeout-seconds: 0.5\n"
    )
    code = (
        "import sys\n"
        "from gardenctl.cli.entry import main\n"
        f"rc = main(['-c', {str(config)!r}, 'check', '-o', 'json'])\n"
        f"rc2 = main(['-c', {str(config)!r}, 'status', '-o', 'json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'pydantic', 'click', 'kubernetes', 'hcloud', 'psycopg'))\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
        "sys.exit(0 if rc == 3 and rc2 == 3 else 1)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stderr, proc.stderr
