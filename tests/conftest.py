"""Shared fixtures. The lab fixtures live in tests/lab/conftest.py; fakes in tests/fakes/."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:  # shown by pytest on failure
        return f"CliResult(exit_code={self.exit_code}, stdout={self.stdout[-2000:]!r}, stderr={self.stderr[-2000:]!r})"


def run_cli(*args: str, config: Path | None = None, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 180) -> CliResult:
    """Run `gardenctl` as a user would: a new process, no TTY on stdin, stdout and stderr apart."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GARDENCTL_")}
    full_env["NO_COLOR"] = "1"
    full_env["COLUMNS"] = "160"
    full_env["TERM"] = "dumb"
    if env:
        full_env.update(env)
    cmd = [sys.executable, "-m", "gardenctl"]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, input=input if input is not None else "", timeout=timeout, cwd=ROOT)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """XDG dirs pointed at tmp_path, so a test never touches the real user's config or state."""
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "HOME": str(tmp_path / "home"),
    }
    (tmp_path / "home").mkdir()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
