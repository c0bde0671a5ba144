"""Ships the repository's top-level playbooks/ and manifests/ inside the wheel, as gardenctl/data/playbooks and
gardenctl/data/manifests, where an installed gardenctl looks for them (a checkout or an editable install uses the
top-level directories themselves). Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("playbooks", "manifests")


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's directories
        target = Path(self.build_lib) / "gardenctl" / "data"
        for name in SHIPPED:
            source = ROOT / name
            if not source.is_dir():  # building from an sdist that lacks them would ship a gardenctl without scenarios
                raise SystemExit(f"cannot ship {name}/: {source} is missing")
            dest = target / name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPy})
