"""The real lab, started once per test session and reused; each test leaves it healthy.

Environment knobs (so several developers / CI jobs can share a machine):
- GARDENCTL_TEST_BASE_PORT (default 16400): the lab's port range base..base+42.
- GARDENCTL_TEST_LAB_DIR: lab directory (default /var/lib/gardenctl/test-lab-<port> as root, else a temp dir).
- GARDENCTL_TEST_KEEP_LAB=1: leave the lab running after the session (faster local iterations).
"""

from __future__ import annotations

import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from gardenctl.config import load_config, select_cluster, upsert_cluster
from gardenctl.errors import GardenError
from gardenctl.lab import Lab, LabOptions
from gardenctl.ops.member_state import own_state_problems
from gardenctl.wait import wait_until
from tests.conftest import run_cli

BASE_PORT = int(os.environ.get("GARDENCTL_TEST_BASE_PORT", "16400"))


def _lab_dir() -> Path:
    if os.environ.get("GARDENCTL_TEST_LAB_DIR"):
        return Path(os.environ["GARDENCTL_TEST_LAB_DIR"])
    if os.geteuid() == 0:
        return Path(f"/var/lib/gardenctl/test-lab-{BASE_PORT}")
    return Path(tempfile.gettempdir()) / f"gardenctl-test-lab-{os.getuid()}-{BASE_PORT}"


@dataclass
class LabHandle:
    lab: Lab
    config_path: Path
    state_dir: Path
    context: str = "lab"

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
        merged = {"GARDENCTL_STATE_DIR": str(self.state_dir)}
        merged.update(env or {})
        return run_cli(*args, config=self.config_path, env=merged, timeout=timeout)

    @property
    def cluster(self):
        return select_cluster(load_config(self.config_path), self.context)

    def patroni(self):
        from gardenctl.backends.http import HttpSettings
        from gardenctl.backends.patroni import PatroniClient

        c = self.cluster
        return PatroniClient(c.patroni.endpoints, HttpSettings(username=c.patroni.username, password=c.patroni.password.resolve("patroni")))

    def ensure_healthy(self, timeout: float = 90) -> None:
        """Restart anything stopped, resume a paused cluster, wait for 1 leader + 2 streaming replicas + HAProxy."""
        status = self.lab.status()
        for proc in status.processes:
            if not proc.running:
                self.lab.start(proc.name)
        client = self.patroni()
        try:
            def check():
                try:
                    cluster = client.get_cluster()
                except GardenError as exc:
                    return False, exc.message
                if cluster.paused:
                    client.set_paused(False)
                    return False, "paused: resuming"
                leaders = [m for m in cluster.members if m.is_leader and m.state == "running"]
                streaming = [m for m in cluster.members if m.is_streaming]
                tl = {m.timeline for m in cluster.members}
                seen = str([(m.name, m.role, m.state, m.timeline) for m in cluster.members])
                if not (len(leaders) == 1 and len(streaming) == 2 and len(tl) == 1):
                    return False, seen
                # a restarted node's old "streaming" stays in the DCS until its key expires: ask each node itself
                own = own_state_problems(client, cluster, require_streaming=True)
                return not own, "; ".join(own) or seen

            wait_until(check, timeout=timeout, interval=0.5, what="lab healthy")
            from gardenctl.backends.haproxy import HAProxyClient

            hp = HAProxyClient(stats_socket=self.cluster.haproxy.stats_socket)

            def routed():
                leader = client.get_cluster(with_config=False).leader
                state = hp.get_state()
                return leader is not None and state.rw_target == leader.name, f"rw -> {state.rw_target}"

            wait_until(routed, timeout=30, interval=0.3, what="HAProxy routing to the leader")
        finally:
            client.close()


@pytest.fixture(scope="session")
def lab_session(tmp_path_factory):
    lab_dir = _lab_dir()
    lab = Lab(lab_dir)
    lab.up(LabOptions(lab_dir=lab_dir, base_port=BASE_PORT), timeout_seconds=180)
    home = tmp_path_factory.mktemp("lab-home")
    config_path = home / "config.yaml"
    state_dir = home / "state"
    upsert_cluster(config_path, "lab", lab.context(lab.require_state()), make_current=True)
    handle = LabHandle(lab=lab, config_path=config_path, state_dir=state_dir)
    yield handle
    if os.environ.get("GARDENCTL_TEST_KEEP_LAB") != "1":
        lab.down(purge=True)


@pytest.fixture
def lab(lab_session):
    """The shared lab, healthy before the test and made healthy again after it."""
    lab_session.ensure_healthy()
    yield lab_session
    lab_session.ensure_healthy()


__all__ = ["LabHandle", "lab", "lab_session", "signal"]
