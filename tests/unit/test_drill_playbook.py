"""Drill playbooks: the shipped ones load; bad ones fail with one error naming file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gardenctl.errors import ConfigError
from gardenctl.ops.drill.playbook import (
    Limit,
    builtin_playbook_dirs,
    find_playbooks,
    list_playbooks,
    load_playbook,
    parse_playbook,
    resolve_playbook,
)

REQUIRED = {"switchover", "kill-leader", "stop-leader", "kill-replica", "etcd-member-loss", "etcd-quorum-loss", "haproxy-restart"}

GOOD = """\
name: demo
summary: a demo drill
steps:
  - fault: kill
    roles: [patroni, postgres]
    target: leader
  - wait: new-leader
    timeout-seconds: 45
  - hold: ttl + 5
  - recover: all
thresholds:
  max-write-unavailable-seconds: ttl + 10
  max-acked-writes-lost: {sync: 0, async: null}
  max-leader-changes: 1
"""


def parse(text: str):
    return parse_playbook(textwrap.dedent(text), "pb.yaml")


def error_of(text: str, expected_name: str | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_playbook(textwrap.dedent(text), "pb.yaml", expected_name=expected_name)
    return info.value.message


def test_every_required_playbook_is_shipped_and_valid():
    dirs = tuple((d, "builtin") for d in builtin_playbook_dirs())
    found = find_playbooks(dirs)
    assert REQUIRED <= set(found)
    listing = list_playbooks(dirs)
    assert [p.error for p in listing.playbooks if p.error] == []
    for name in found:
        pb = load_playbook(found[name][0])
        assert pb.name == name
        assert pb.summary
        assert any(s.disruptive for s in pb.steps)


def test_shipped_kill_leader_is_what_the_issue_asks():
    pb = resolve_playbook("kill-leader", None, tuple((d, "builtin") for d in builtin_playbook_dirs()))
    fault = pb.steps[0]
    assert (fault.kind, fault.action, fault.roles, fault.target) == ("fault", "kill", ("patroni", "postgres"), "leader")
    lost = pb.threshold("acked_writes_lost")
    assert lost is not None and lost.limit(True) == 0.0 and lost.limit(False) is None
    assert pb.threshold("seconds_to_new_leader").limit(False, ttl_seconds=20) == 25.0
    assert pb.threshold("split_brain").limit(False) == 0.0


def test_etcd_quorum_loss_kills_two_members_and_the_failsafe_variant_sets_failsafe_mode():
    dirs = tuple((d, "builtin") for d in builtin_playbook_dirs())
    plain = resolve_playbook("etcd-quorum-loss", None, dirs)
    failsafe = resolve_playbook("etcd-quorum-loss-failsafe", None, dirs)
    assert (plain.steps[0].roles, plain.steps[0].count) == (("etcd",), 2)
    assert plain.patroni_config == {}
    assert failsafe.patroni_config == {"failsafe_mode": True}
    assert plain.threshold("write_unavailable_seconds").limit(False) is None  # reported, not judged


def test_good_playbook_parses_into_steps_and_thresholds():
    pb = parse(GOOD)
    assert [s.kind for s in pb.steps] == ["fault", "wait", "hold", "recover"]
    assert pb.steps[1].condition == "new-leader" and pb.steps[1].timeout_seconds == 45.0
    assert pb.steps[2].hold == Limit(5.0, plus_ttl=True)
    assert pb.steps[2].describe() == "hold ttl + 5 s and observe"
    assert pb.steps[0].describe() == "SIGKILL patroni+postgres on leader"
    assert pb.threshold("write_unavailable_seconds").limit(True, 30) == 40.0
    assert pb.threshold("acked_writes_lost").limit(True) == 0.0
    assert pb.threshold("acked_writes_lost").limit(False) is None
    assert pb.probe.rate == 20.0 and pb.probe.read is True


@pytest.mark.parametrize(
    "text, expected",
    [
        ("summary: x\nsteps: []\n", "pb.yaml:1: name: is required but missing"),
        ("name: demo\nsummary: x\nsteps: []\n", "pb.yaml:3: steps: needs at least one step"),
        (
            "name: demo\nsummary: x\nsteps:\n  - wait: new-leader\n",
            "pb.yaml:3: steps: no step breaks anything (add a fault: kill|stop or a switchover step)",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - fault: explode\n    role: patroni\n    target: leader\n",
            "pb.yaml:4: steps[0].fault: unknown action 'explode' (expected one of: kill, stop, start)",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - switchover: auto\n  - wait: new-leeder\n",
            "pb.yaml:5: steps[1].wait: unknown condition 'new-leeder' (expected one of: new-leader, routed, healthy, writes-ok)",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - fault: kill\n    roles: [patroni, mysql]\n    target: leader\n",
            "pb.yaml:5: steps[0].roles: unknown role 'mysql' (expected: patroni, postgres, etcd, haproxy)",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - fault: kill\n    role: etcd\n    target: leader\n",
            "pb.yaml:6: steps[0].target: 'leader' is not a target for etcd (expected: etcd-leader, etcd-follower, etcd-member or a member name)",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - fault: kill\n    roles: [patroni, etcd]\n    target: leader\n",
            "pb.yaml:5: steps[0].roles: patroni/postgres, etcd and haproxy live on different targets: use one step for each",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - switchover: auto\n    wait: healthy\n",
            "pb.yaml:4: steps[0]: more than one step kind (switchover, wait): each step has exactly one of fault, switchover, wait, hold, recover",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - switchover: auto\n    timeout: 3\n",
            "pb.yaml:5: steps[0].timeout: unknown key (check the spelling; see README 'Configuration')",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - switchover: auto\nthresholds:\n  max-write-gap: 3\n",
            "pb.yaml:6: thresholds.max-write-gap: unknown threshold (known: max-write-unavailable-seconds, "
            "max-write-unavailable-total-seconds, max-read-unavailable-seconds, max-acked-writes-lost, "
            "max-seconds-to-new-leader, max-seconds-to-routed, max-writes-misrouted, max-leader-changes, max-split-brain, max-concurrent-primaries)",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - switchover: auto\nthresholds:\n  max-acked-writes-lost: lots\n",
            "pb.yaml:6: thresholds.max-acked-writes-lost: 'lots': expected a number, 'ttl', 'ttl + N', null, or {sync: N, async: M}",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - switchover: auto\nthresholds:\n  max-acked-writes-lost: {sync: 0}\n",
            "pb.yaml:6: thresholds.max-acked-writes-lost: a per-mode threshold needs both sync and async (null means: reported, not judged)",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - switchover: auto\nthresholds:\n  max-leader-changes: -1\n",
            "pb.yaml:6: thresholds.max-leader-changes: must not be negative",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - switchover: auto\n  - hold: soon\n",
            "pb.yaml:5: steps[1].hold: expected the seconds to hold (greater than 0) or 'ttl + N'",
        ),
        (
            "name: demo\nsummary: x\nprobe:\n  rate: 0\nsteps:\n  - switchover: auto\n",
            "pb.yaml:4: probe.rate: must be greater than 0",
        ),
        (
            "name: demo\nsummary: x\npatroni-config:\n  pause: true\nsteps:\n  - switchover: auto\n",
            "pb.yaml:4: patroni-config.pause: a drill never pauses the cluster",
        ),
        (
            "name: demo\nsummary: x\nsteps:\n  - fault: kill\n    role: etcd\n    target: etcd-follower\n    count: 0\n",
            "pb.yaml:7: steps[0].count: must be at least 1",
        ),
        ("name: demo\nsummary: x\nsteps:\n  - [switchover]\n", "pb.yaml:4: steps[0]: expected a mapping like '- fault: kill', got a list"),
        ("name: demo\nsummary: x\nsteps: [\n", "pb.yaml:4: malformed YAML: expected the node content, but found '<stream end>'"),
        ("name: demo\nsumary: x\nsteps:\n  - switchover: auto\n", "pb.yaml:1: summary: is required but missing"),
    ],
)
def test_bad_playbooks_name_file_line_and_key(text, expected):
    assert error_of(text) == expected


def test_name_must_match_the_file():
    assert error_of(GOOD, expected_name="other") == "pb.yaml:1: name: 'demo' does not match the file name 'other'"


def test_unknown_top_level_key_is_named():
    assert error_of(GOOD + "extra: 1\n") == "pb.yaml:15: extra: unknown key (check the spelling; see README 'Configuration')"


def test_resolve_by_name_and_from_file(tmp_path: Path):
    builtin = tmp_path / "builtin"
    user = tmp_path / "user"
    builtin.mkdir()
    user.mkdir()
    (builtin / "demo.yaml").write_text(GOOD)
    (user / "demo.yaml").write_text(GOOD.replace("a demo drill", "my own demo"))
    dirs = ((builtin, "builtin"), (user, "user"))
    assert resolve_playbook("demo", None, dirs).summary == "my own demo"  # the user's shadows the shipped one
    listing = list_playbooks(dirs)
    assert [(p.name, p.source) for p in listing.playbooks] == [("demo", "user")]
    with pytest.raises(ConfigError) as info:
        resolve_playbook("nope", None, dirs)
    assert info.value.message == "no drill playbook named 'nope' (known: demo)"
    other = tmp_path / "anything.yaml"
    other.write_text(GOOD)
    assert resolve_playbook(None, other, dirs).name == "demo"  # --playbook FILE: the name need not match
    with pytest.raises(ConfigError) as info:
        resolve_playbook(None, tmp_path / "missing.yaml", dirs)
    assert info.value.message == f"{tmp_path / 'missing.yaml'}: playbook file not found"


def test_invalid_playbook_is_listed_with_its_error(tmp_path: Path):
    (tmp_path / "broken.yaml").write_text("name: broken\nsummary: x\nsteps: []\n")
    listing = list_playbooks(((tmp_path, "user"),))
    assert listing.playbooks[0].error == f"{tmp_path / 'broken.yaml'}:3: steps: needs at least one step"
