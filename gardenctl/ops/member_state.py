"""What each Patroni member says about itself (``GET /patroni``), as opposed to what the DCS lists (``/cluster``).

A member key outlives its Patroni by up to ttl: a member killed and started again still shows its old "streaming" in
``/cluster`` while it is really starting. Readiness (lab up) and recovery (drills) ask every member directly.
"""

from __future__ import annotations

from typing import Any, Protocol

from gardenctl.backends.patroni import parse_self_report
from gardenctl.errors import GardenError
from gardenctl.model import PatroniCluster


class MemberStatusSource(Protocol):
    def get_member_status(self, api_url: str) -> dict[str, Any]: ...


def own_state_problems(patroni: MemberStatusSource, cluster: PatroniCluster, *, require_streaming: bool = False) -> list[str]:
    """What each member's own REST API (``GET /patroni``) says is wrong. A member key outlives its Patroni by up
    to ttl: a member killed and started again still shows its old "streaming" in ``/cluster`` while it is really
    starting; its own answer says what it is now. ``require_streaming``: a replica that does not report its
    replication state (Patroni before 3.0 does not) counts as not streaming."""
    problems: list[str] = []
    leader = cluster.leader
    for m in cluster.members:
        if not m.api_url:
            continue
        try:
            own = parse_self_report(patroni.get_member_status(m.api_url))
        except GardenError as exc:
            problems.append(f"{m.name}: its REST API does not answer ({exc.message})")
            continue
        if own.state != "running":
            problems.append(f"{m.name} says it is {own.state or 'in an unknown state'}")
            continue
        if leader is not None and m.name != leader.name:
            replication = own.replication_state
            if (replication is not None or require_streaming) and replication != "streaming":
                problems.append(f"{m.name} says its replication is {replication or 'unknown'}, not streaming")
            if leader.timeline is not None and own.timeline not in (None, leader.timeline):
                problems.append(f"{m.name} says it is on timeline {own.timeline}, the leader on {leader.timeline}")
    return problems
