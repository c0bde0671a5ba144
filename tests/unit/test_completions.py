"""completions/: the committed bash, zsh and fish scripts match the CLI (regenerated here), are deterministic, parse in
their shells, and complete what a user types."""

from __future__ import annotations

import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS = ROOT / "completions"
REGENERATE = ".venv/bin/python scripts/gen-completions"
GEN = runpy.run_path(str(ROOT / "scripts" / "gen-completions"))
SCRIPTS = ("gardenctl.bash", "gardenctl.zsh", "gardenctl.fish")


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return GEN["render_all"]()


@pytest.mark.parametrize("name", SCRIPTS)
def test_committed_completions_are_up_to_date(generated, name):
    committed = (COMPLETIONS / name).read_text() if (COMPLETIONS / name).exists() else ""
    assert committed == generated[name], (
        f"completions/{name} is stale: the CLI changed since it was generated. Run `{REGENERATE}` and commit completions/."
    )


def test_generation_is_deterministic_and_has_no_local_paths(generated):
    again = GEN["render_all"]()
    assert again == generated
    for name, text in generated.items():
        for local in (str(ROOT), sys.prefix, str(Path.home()), "/tmp/"):
            assert local not in text, f"{name} contains the local path {local}"


def test_every_command_is_in_every_script(generated):
    nodes = GEN["cli_nodes"]()
    paths = [n.path for n in nodes if n.path]
    assert {"status", "check", "k9s", "k9s plugins", "k9s exec", "config use-context"} <= set(paths)
    for node in nodes:
        for command, _ in node.commands:
            for name, text in generated.items():
                assert command in text, f"{name} lacks {command}"


def test_check_mode_reports_stale_files(tmp_path, capsys):
    for name in SCRIPTS:
        shutil.copy(COMPLETIONS / name, tmp_path / name)
    assert GEN["main"](["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "gardenctl.fish").write_text("# old\n")
    assert GEN["main"](["--check", "--out", str(tmp_path)]) == 1
    assert "stale: gardenctl.fish; run: .venv/bin/python scripts/gen-completions" in capsys.readouterr().err
    assert (tmp_path / "gardenctl.fish").read_text() == "# old\n", "--check never writes"


# --------------------------------------------------------------------------------------------- behaviour


BASH_DRIVER = r"""
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMPREPLY=()
_gardenctl
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_complete(*words: str) -> list[str]:
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_DRIVER, "driver", str(COMPLETIONS / "gardenctl.bash"), "gardenctl", *words],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def test_bash_script_parses():
    assert subprocess.run(["bash", "-n", str(COMPLETIONS / "gardenctl.bash")], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("k9",), ["k9s"]),
        (("k9s", "p"), ["plugins"]),
        (("--context", "prod", "k9s", ""), ["plugins", "exec"]),
        (("-c", "cfg.yaml", "lab", "u"), ["up"]),
        (("status", "-o", ""), ["table", "json", "yaml"]),
        (("config", "view", "--out"), ["--output"]),
        (("k9s", "plugins", "--wr"), ["--write"]),
    ],
)
def test_bash_completes(words, expected):
    assert bash_complete(*words) == expected


def test_bash_completes_files_for_path_options(tmp_path):
    (tmp_path / "cluster.yaml").write_text("")
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_DRIVER, "driver", str(COMPLETIONS / "gardenctl.bash"), "gardenctl", "--config", "clu"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    assert proc.stdout.split() == ["cluster.yaml"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (apt-get install zsh)")
def test_zsh_script_parses_and_knows_the_commands():
    script = COMPLETIONS / "gardenctl.zsh"
    assert subprocess.run(["zsh", "-n", str(script)], capture_output=True).returncode == 0
    proc = subprocess.run(
        ["zsh", "-f", "-c", f"autoload -U compinit && compinit -u -D && source {script} && _gardenctl_commands k9s && _gardenctl_option_values status -o"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("plugins:Print the k9s plugins") and lines[1].startswith("exec:")
    assert lines[2] == "table json yaml"


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed (apt-get install fish)")
def test_fish_script_parses_and_completes():
    script = COMPLETIONS / "gardenctl.fish"
    assert subprocess.run(["fish", "-n", str(script)], capture_output=True).returncode == 0
    proc = subprocess.run(
        ["fish", "--no-config", "-c", f"source {script}; complete -C'gardenctl --context x k9s '; echo ---; complete -C'gardenctl status -o '"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.split("---\n")
    assert [line.split("\t")[0] for line in first.splitlines()] == ["exec", "plugins"]
    assert [line.split("\t")[0] for line in second.splitlines()] == ["json", "table", "yaml"]
