"""The CLI as a new user meets it: help on everything, one-line errors with documented exit codes, no tracebacks."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import typer

from gardenctl.cli.main import full_app
from gardenctl.errors import ExitCode
from tests.conftest import run_cli


def _walk(command, path: tuple[str, ...] = ()):
    yield path, command
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))


ALL_COMMANDS = list(_walk(typer.main.get_command(full_app())))


def test_the_cli_has_the_core_commands():
    names = {" ".join(p) for p, _ in ALL_COMMANDS}
    for expected in ("lab up", "lab down", "lab status", "lab logs", "config view", "config get-contexts", "config use-context"):
        assert expected in names


@pytest.mark.parametrize("path,command", ALL_COMMANDS[1:], ids=[" ".join(p) for p, _ in ALL_COMMANDS[1:]])
def test_every_command_and_option_has_help(path, command):
    assert (command.help or command.short_help or "").strip(), f"`gardenctl {' '.join(path)}` has no help text"
    for param in command.params:
        if param.param_type_name == "option" and not getattr(param, "hidden", False):
            assert (param.help or "").strip(), f"`gardenctl {' '.join(path)}` option {param.opts} has no help text"
        if param.param_type_name == "argument":
            # typer keeps argument help on the parameter object
            assert (getattr(param, "help", None) or "").strip(), f"`gardenctl {' '.join(path)}` argument {param.name} has no help text"


def _assert_one_line_error(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result
    assert "Traceback" not in result.stderr, result
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("Error: "), result
    assert fragment in lines[0], result


def test_no_config_file_says_how_to_start(tmp_path):
    result = run_cli("config", "get-contexts", env={"XDG_CONFIG_HOME": str(tmp_path)})
    _assert_one_line_error(result, ExitCode.CONFIG, f"no config file at {tmp_path}/gardenctl/config.yaml")
    assert "gardenctl lab up" in result.stderr


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("clusters:\n  a: [\n")
    result = run_cli("config", "get-contexts", config=path)
    _assert_one_line_error(result, ExitCode.CONFIG, f"{path}:3: malformed YAML")


def test_unknown_context_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("clusters:\n  a:\n    patroni: {endpoints: [http://127.0.0.1:1]}\n    etcd: {endpoints: [http://127.0.0.1:2]}\n    haproxy: {stats-socket: /nope}\n")
    result = run_cli("--context", "prod", "config", "current-context", config=path)
    _assert_one_line_error(result, ExitCode.CONFIG, "unknown context 'prod'")
    result = run_cli("config", "current-context", config=path, env={"GARDENCTL_CONTEXT": "prod"})
    _assert_one_line_error(result, ExitCode.CONFIG, "unknown context 'prod'")
    result = run_cli("config", "current-context", config=path)
    assert result.exit_code == 0 and result.stdout.strip() == "a"


@pytest.mark.parametrize(
    "args, message, path",
    [
        (("lab", "up", "--base-port", "notanumber"), "Invalid value for '--base-port'", "gardenctl lab up"),
        (("status", "--bogus"), "No such option: --bogus", "gardenctl status"),
        (("swichover",), "No such command 'swichover'. Did you mean 'switchover'?", "gardenctl"),
        (("lab", "logs"), "Missing argument", "gardenctl lab logs"),
        (("status", "-o", "xml"), "Invalid value for '--output' / '-o': 'xml' is not one of 'table', 'json', 'yaml'.", "gardenctl status"),
        (("status", "--watch", "0"), "Invalid value for '--watch' / '-w': must be at least 0.5", "gardenctl status"),
        (("drill", "run", "switchover", "--rate", "x"), "Invalid value for '--rate': not a number", "gardenctl drill run"),
        (("history", "-n", "1.5"), "Invalid value for '--limit' / '-n': not a whole number", "gardenctl history"),
    ],
)
def test_usage_error_is_one_line_with_a_hint_and_exit_code_2(args, message, path):
    result = run_cli(*args)
    assert result.exit_code == ExitCode.USAGE, result
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2, result
    assert lines[0].startswith("Error: ") and message in lines[0], result
    assert lines[1] == f"hint: {path} -h shows the usage", result


@pytest.mark.parametrize("args", [(), ("lab",), ("config",), ("drill",)], ids=["root", "lab", "config", "drill"])
def test_a_group_without_a_subcommand_prints_its_help_not_an_empty_error(args):
    result = run_cli(*args)
    assert result.exit_code == ExitCode.USAGE, result
    assert result.stderr.startswith(f"Usage: gardenctl {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND [ARGS]..."), result
    assert "Error" not in result.stderr and "Commands:" in result.stderr


def test_flags_show_no_type_in_help():
    # `--yes <bool>` would read as if the flag took a value (`--yes true` is an error)
    out = run_cli("switchover", "--help").stdout
    assert "<bool>" not in out
    assert re.search(r"^  -y, --yes +Do not ask for confirmation\.", out, re.M), out


def test_version():
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("gardenctl ")


def test_lab_up_with_missing_binaries_says_what_to_install(tmp_path):
    # A PATH with only python: no etcd, no haproxy.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(sys.executable, bindir / "python3")
    result = run_cli("lab", "up", "--dir", str(tmp_path / "lab"), env={"PATH": str(bindir), "XDG_CONFIG_HOME": str(tmp_path)})
    _assert_one_line_error(result, ExitCode.REFUSED, "etcd and haproxy not found on PATH")  # all of it at once
    assert "apt-get install etcd-server haproxy" in result.stderr
    assert not (tmp_path / "lab" / "lab.json").exists()


def test_lab_up_with_wrong_pg_bindir(tmp_path):
    if not (shutil.which("etcd") and shutil.which("haproxy")):
        pytest.skip("etcd/haproxy not installed (scripts/setup installs them)")
    result = run_cli("lab", "up", "--dir", str(tmp_path / "lab"), "--pg-bindir", str(tmp_path), env={"XDG_CONFIG_HOME": str(tmp_path)})
    _assert_one_line_error(result, ExitCode.REFUSED, f"no PostgreSQL server binaries (initdb, postgres, pg_ctl) in {tmp_path}")


def test_lab_up_with_a_port_in_use_fails_before_starting_anything(tmp_path):
    if not (shutil.which("etcd") and shutil.which("haproxy")):
        pytest.skip("etcd/haproxy not installed (scripts/setup installs them)")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))  # a port the kernel says is free; the lab's base is 41 below it
        base = sock.getsockname()[1] - 41
        assert 1024 <= base <= 65400
        sock.listen(1)
        # a directory the postgres user (as root) can reach, which does not exist: nothing may create it
        lab_dir = Path(tempfile.gettempdir()) / f"gardenctl-port-test-{os.getpid()}" / "lab"
        result = run_cli("lab", "up", "--dir", str(lab_dir), "--base-port", str(base), env={"XDG_CONFIG_HOME": str(tmp_path)})
    _assert_one_line_error(result, ExitCode.REFUSED, f"port already in use: {base + 41} (HAProxy read-only)")
    assert "--base-port" in result.stderr
    assert "started" not in result.stderr
    assert not lab_dir.parent.exists()


def test_lab_down_without_a_lab_is_a_no_op(tmp_path):
    result = run_cli("lab", "down", "--dir", str(tmp_path / "nolab"))
    assert result.exit_code == 0, result
    assert "nothing to do" in result.stderr


def test_lab_status_without_a_lab(tmp_path):
    result = run_cli("lab", "status", "--dir", str(tmp_path / "nolab"))
    assert result.exit_code == 1
    assert "No lab in" in result.stdout


def test_lab_down_purge_refuses_a_directory_that_is_not_a_lab(tmp_path):
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "data.txt").write_text("keep me")
    result = run_cli("lab", "down", "--purge", "--dir", str(victim))
    _assert_one_line_error(result, ExitCode.REFUSED, "does not look like a lab directory")
    assert (victim / "data.txt").read_text() == "keep me"


def test_gardenctl_never_imports_the_etcd3_package():
    code = (
        "import sys, gardenctl.cli.main, gardenctl.backends.etcd, gardenctl.lab\n"
        "bad = [m for m in sys.modules if m == 'etcd3' or m.startswith(('etcd3.', 'grpc'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


HELP_SCRIPT = """
import contextlib, io, json, sys
from gardenctl.cli.main import main
cut = {}
for path in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main([*path, "--help"])
    lines = [ln for ln in buf.getvalue().splitlines() if "\\u2026" in ln]
    if lines:
        cut[" ".join(path)] = lines
print(json.dumps(cut))
"""


@pytest.mark.parametrize("columns", ["80", "100", None], ids=["terminal-80", "terminal-100", "piped"])
def test_help_never_cuts_off_an_option_or_a_default(columns):
    # rich's option tables truncate with an ellipsis when the terminal is narrow; gardenctl must wrap instead.
    import json

    paths = [list(p) for p, _ in ALL_COMMANDS[1:]]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    if columns:
        env["COLUMNS"] = columns
    proc = subprocess.run([sys.executable, "-c", HELP_SCRIPT, json.dumps(paths)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {}
