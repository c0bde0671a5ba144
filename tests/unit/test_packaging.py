"""An installed gardenctl (a wheel, not the checkout) carries its drill playbooks, phase playbooks and manifests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_wheel_ships_playbooks_and_manifests_and_an_installed_gardenctl_finds_them(tmp_path):
    # Build from a clean copy: a build/ directory left in the checkout must not decide what the wheel holds.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = list(wheels.glob("gardenctl-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    for name in sorted(p.name for p in (ROOT / "playbooks" / "drills").glob("*.yaml")):
        assert f"gardenctl/data/playbooks/drills/{name}" in names
    for n in range(1, 6):
        assert f"gardenctl/data/playbooks/phases/phase-{n}.yaml" in names
        assert f"gardenctl/data/manifests/phases/phase-{n}/kustomization.yaml" in names
    assert not any("__pycache__" in n for n in names)

    # Run the unpacked wheel from outside the checkout: the source tree's directories are not there to fall back on.
    site = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GARDENCTL_")}
    env.update({"PYTHONPATH": str(site), "NO_COLOR": "1", "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_STATE_HOME": str(tmp_path / "st")})
    code = (
        "import json, gardenctl\n"
        "from gardenctl.ops.drill.playbook import builtin_playbook_dirs\n"
        "from gardenctl.ops.migrate.playbook import find_playbook_dir\n"
        "from gardenctl.ops.migrate.render import find_manifests_dir\n"
        "print(json.dumps([gardenctl.__file__, [str(p) for p in builtin_playbook_dirs()], str(find_playbook_dir()), str(find_manifests_dir())]))\n"
    )
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert probe.returncode == 0, probe.stderr
    module, drills, phases, manifests = json.loads(probe.stdout)
    data = site / "gardenctl" / "data"
    assert module == str(site / "gardenctl" / "__init__.py")
    assert drills == [str(data / "playbooks" / "drills")]
    assert (phases, manifests) == (str(data / "playbooks" / "phases"), str(data / "manifests"))
    listing = subprocess.run([sys.executable, "-m", "gardenctl", "drill", "list", "-o", "json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert listing.returncode == 0, listing.stderr
    shipped = {p["name"] for p in json.loads(listing.stdout)["playbooks"]}
    assert {"switchover", "kill-leader", "etcd-quorum-loss", "haproxy-restart"} <= shipped
