#!/usr/bin/env python3
"""Count the Hetzner API requests of `bootstrap apply` against the fake API and write docs/benchmarks/bootstrap-requests.md.

Scenarios (inventory: 3 db, 1 K3s server, 2 agents; infrastructure only - K3s runs over SSH, not the API):

- first apply on an empty project;
- second apply on the complete cluster (goal: zero create calls, zero actions);
- interrupted apply: the 3rd server create fails, then a resumed apply creates only what is missing;
- destroy.

Requests go through the real hcloud library to the fake (tests/fakes/hetzner); action polls are counted too (each
action stays "running" for 2 observations, as the fake's default). Measured, never asserted. Usage::

    python benchmarks/bench_bootstrap_requests.py
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gardenctl.backends.hetzner import HetznerCloud  # noqa: E402
from gardenctl.errors import GardenError  # noqa: E402
from gardenctl.ops.bootstrap import apply_infrastructure, destroy, plan, plan_destroy  # noqa: E402
from gardenctl.ops.bootstrap.secrets import generate  # noqa: E402
from tests.fakes.hetzner.fixture import start_fake_hcloud  # noqa: E402
from tests.integration._bootstrap_support import FakeClock, inventory  # noqa: E402


def kinds(records) -> Counter:
    c: Counter = Counter()
    for r in records:
        if r.method == "POST" and "/actions/" not in r.path:
            c["create (POST resource)"] += 1
        elif r.method == "POST":
            c["action (POST .../actions/...)"] += 1
        elif r.method == "DELETE":
            c["delete"] += 1
        elif "/actions" in r.path:
            c["action poll (GET)"] += 1
        else:
            c["read (GET)"] += 1
    c["total"] = len(records)
    return c


def main() -> int:
    inv = inventory(Path(tempfile.mkdtemp()))
    secrets = generate()
    rows = []
    with start_fake_hcloud() as fake:
        clock = FakeClock()
        cloud = HetznerCloud(fake.token, endpoint=fake.endpoint, clock=clock, wall=clock.wall)
        n0 = len(fake.requests)
        apply_infrastructure(cloud, inv, secrets, plan(cloud, inv))
        rows.append(("first apply (empty project)", kinds(fake.requests[n0:])))
        n1 = len(fake.requests)
        apply_infrastructure(cloud, inv, secrets, plan(cloud, inv))
        rows.append(("second apply (complete cluster)", kinds(fake.requests[n1:])))
        n2 = len(fake.requests)
        destroy(cloud, plan_destroy(cloud, inv))
        rows.append(("destroy", kinds(fake.requests[n2:])))
    with start_fake_hcloud() as fake:
        clock = FakeClock()
        cloud = HetznerCloud(fake.token, endpoint=fake.endpoint, clock=clock, wall=clock.wall)
        fake.inject("POST", "/servers", "resource_unavailable", times=1, skip=2)
        try:
            apply_infrastructure(cloud, inv, secrets, plan(cloud, inv), parallel=1)
        except GardenError:
            pass
        rows.append(("interrupted apply (3rd server refused)", kinds(fake.requests)))
        n3 = len(fake.requests)
        apply_infrastructure(cloud, inv, secrets, plan(cloud, inv))
        rows.append(("resumed apply (2 of 3 db servers existed)", kinds(fake.requests[n3:])))
    cols = ["create (POST resource)", "action (POST .../actions/...)", "action poll (GET)", "read (GET)", "delete", "total"]
    lines = [
        "# Hetzner API requests of `gardenctl bootstrap`",
        "",
        "Measured by `benchmarks/bench_bootstrap_requests.py` against the fake API (real hcloud library), inventory of",
        "3 db + 1 K3s server + 2 agents, infrastructure only. Each action stays running for 2 polls (the fake's default).",
        "",
        "| scenario | " + " | ".join(cols) + " |",
        "| --- | " + " | ".join("---" for _ in cols) + " |",
    ]
    for name, c in rows:
        lines.append(f"| {name} | " + " | ".join(str(c.get(k, 0)) for k in cols) + " |")
    out = ROOT / "docs" / "benchmarks" / "bootstrap-requests.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
