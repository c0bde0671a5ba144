"""Against the real Hetzner Cloud API: only with HCLOUD_TOKEN set (skipped with a message otherwise).

Read-only by default: the catalogue and a plan for a throwaway cluster name. The full cycle (apply --infra-only,
second apply with zero creates, destroy) creates billable servers: it also needs GARDENCTL_LIVE_APPLY=1.
"""

from __future__ import annotations

import os
import secrets

import pytest

from gardenctl.backends.hetzner import HetznerCloud
from gardenctl.inventory import check_catalog
from gardenctl.ops.bootstrap import apply_infrastructure, destroy, plan, plan_destroy
from gardenctl.ops.bootstrap.secrets import generate
from tests.integration._bootstrap_support import hetzner_section, inventory

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("HCLOUD_TOKEN"), reason="HCLOUD_TOKEN is not set: the live Hetzner Cloud tests need a read-write API token of a test project"),
]


@pytest.fixture
def live(tmp_path):
    name = f"gctl-live-{secrets.token_hex(3)}"
    pools = {"db": {"count": 3, "server-type": "cx23"}, "k3s-server": {"count": 1, "server-type": "cx23"}, "k3s-agent": {"count": 0, "server-type": "cx23"}}
    inv = inventory(tmp_path, hetzner_section(pools=pools, location=os.environ.get("GARDENCTL_LIVE_LOCATION", "fsn1")), name=name)
    return inv, HetznerCloud(os.environ["HCLOUD_TOKEN"], endpoint=inv.endpoint)


def test_catalogue_and_plan_read_only(live):
    inv, cloud = live
    types = cloud.list_server_types()
    assert any(t.name == "cx23" for t in types)
    retired = [t for t in types if t.name in ("cx22", "cpx11")]
    assert all(any(loc.unavailable_after is not None for loc in t.locations) for t in retired)
    check_catalog(inv, types)
    p = plan(cloud, inv)
    assert p.counts["create"] == len(p.items) and p.counts["change"] == 0


@pytest.mark.skipif(os.environ.get("GARDENCTL_LIVE_APPLY") != "1", reason="creates billable servers: set GARDENCTL_LIVE_APPLY=1 as well")
def test_full_cycle_apply_again_destroy(live):
    inv, cloud = live
    try:
        apply_infrastructure(cloud, inv, generate(), plan(cloud, inv))
        again = plan(cloud, inv)
        assert again.up_to_date
    finally:
        destroy(cloud, plan_destroy(cloud, inv))
    assert plan_destroy(cloud, inv).empty
