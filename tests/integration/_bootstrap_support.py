"""Helpers shared by the bootstrap tests: a zero-delay clock, inventories written as real config files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from gardenctl.config import load_config, select_cluster
from gardenctl.inventory import Inventory, parse_inventory
from gardenctl.wait import Clock
from tests.fakes.hetzner import make_test_public_key


class FakeClock(Clock):
    """Monotonic time that only moves when something sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []
        self.base_wall = time.time()

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(seconds, 0.0)

    def wall(self) -> float:
        return self.base_wall + (self.t - 1000.0)


def hetzner_section(**overrides: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "location": "fsn1",
        "network": {"ip-range": "10.0.0.0/16", "subnet": "10.0.1.0/24"},
        "ssh-keys": [make_test_public_key("op@example")],
        "allowed-networks": ["203.0.113.7/32"],
        "pools": {
            "db": {"count": 3, "server-type": "cx33", "image": "debian-12"},
            "k3s-server": {"count": 1, "server-type": "cx23", "image": "debian-12"},
            "k3s-agent": {"count": 2, "server-type": "cx23", "image": "debian-12"},
        },
    }
    for key, value in overrides.items():
        if value is None:
            section.pop(key, None)
        else:
            section[key] = value
    return section


def write_config(tmp_path: Path, hetzner: dict[str, Any] | None = None, name: str = "garden") -> Path:
    cluster = {
        # loopback port 1: nothing listens, so a stray status call can never reach a private 10.x address
        "patroni": {"endpoints": ["http://127.0.0.1:1"]},
        "etcd": {"endpoints": ["http://127.0.0.1:1"]},
        "haproxy": {"stats-url": "http://127.0.0.1:1/stats;csv"},
        "hetzner": hetzner if hetzner is not None else hetzner_section(),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"current-context": name, "clusters": {name: cluster}}, sort_keys=False))
    return path


def inventory(tmp_path: Path, hetzner: dict[str, Any] | None = None, name: str = "garden") -> Inventory:
    return parse_inventory(select_cluster(load_config(write_config(tmp_path, hetzner, name))))
