"""Every gate check judged on recorded etcdctl output, and the runbook printing exactly what each check runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from etcdrescue.checks import (
    AllHealthy,
    EtcdDown,
    GateCheck,
    MemberHealth,
    MembersAsExpected,
    OneLeader,
    Round,
    RunsWithout,
)
from etcdrescue.inventory import Inventory, load_inventory, parse_inventory
from etcdrescue.model import Context, Method
from etcdrescue.plan import build_plan
from etcdrescue.probes import Fact
from etcdrescue.runbook import gate_lines
from etcdrescue.transport import Result

T = TypeVar("T")
DATA = Path(__file__).parent / "data"
META = json.loads((DATA / "meta.json").read_text())
NAMES = tuple(META["members"])


def inventory(peer_of: dict[str, str] | None = None) -> Inventory:
    """The recorded lab's members (127.0.49.x); `peer_of` gives some of them another peer URL."""
    peer_of = peer_of or {}
    return parse_inventory({"cluster": "rec", "members": [
        {"name": n, "host": m["peer_urls"][0].split("//")[1].split(":")[0],
         "peer_url": peer_of.get(n, m["peer_urls"][0]), "client_url": m["client_urls"][0]}
        for n, m in META["members"].items()]})


class Recorded:
    """Answers etcdctl calls with recorded output (`<recording>_<call>.json`), other scripts with `exits`."""

    def __init__(self, inv: Inventory | None = None, recording: str = "healthy", member_list: str = "",
                 exits: Callable[[str, str], int] = lambda name, script: 0) -> None:
        self.inv = inv or inventory()
        self.recording = recording
        self.member_list = member_list or f"{recording}_member_list.json"
        self.exits = exits
        self.scripts: list[str] = []

    def output(self, script: str) -> str:
        for call, name in (("endpoint health", "endpoint_health"), ("endpoint status", "endpoint_status")):
            if call in script:
                return (DATA / f"{self.recording}_{name}.json").read_text()
        if "member list" in script:
            return (DATA / self.member_list).read_text()
        return ""

    def run(self, name: str, script: str, timeout: float = 60.0, on_output: object = None) -> Result:
        self.scripts.append(script)
        return Result(name, script, self.exits(name, script), self.output(script), "", 0.0)

    def fact(self, name: str, fact: Fact[T]) -> T:
        return fact.parse(self.run(name, fact.script).stdout)


def judge(check: GateCheck, hosts: Recorded, members: tuple[str, ...], state: Round | None = None) -> list[str]:
    state = state or Round({})
    state.rows = {n: MemberHealth(n) for n in members}
    return check.judge(members, hosts, state)


UNSTARTED = f"{META['unstarted']['id']:x}"
CASES: list[tuple[GateCheck, Recorded, tuple[str, ...], list[str]]] = [
    (AllHealthy(), Recorded(), NAMES, []),
    (AllHealthy(), Recorded(recording="noquorum"), NAMES,
     [f"{n} not healthy (context deadline exceeded)" for n in NAMES]),
    (MembersAsExpected(peer_urls=True), Recorded(), NAMES, []),
    (MembersAsExpected(), Recorded(member_list="unstarted_member_list.json"), NAMES,
     [f"member {UNSTARTED} ({META['unstarted']['peer_url']}) not started yet"]),
    (MembersAsExpected(), Recorded(), NAMES[:2], [f"member list has members not expected here: {NAMES[2]}"]),
    (MembersAsExpected(peer_urls=True), Recorded(inventory({NAMES[1]: "https://127.0.49.2:2390"})), NAMES,
     [f"{NAMES[1]} advertises peer URL https://127.0.49.2:2380"]),
    (MembersAsExpected(peer_urls=False), Recorded(inventory({NAMES[1]: "https://127.0.49.2:2390"})), NAMES, []),
    (OneLeader(caught_up=True), Recorded(), NAMES, []),
    (OneLeader(), Recorded(recording="noquorum"), NAMES, ["no single leader"]),
    (RunsWithout("--force-new-cluster"), Recorded(), NAMES[:1], []),
    (RunsWithout("--force-new-cluster"), Recorded(exits=lambda n, s: 1), NAMES[:1],
     [f"{NAMES[0]}: etcd not yet running without --force-new-cluster (restart pending)"]),
    (EtcdDown(), Recorded(), NAMES, []),
    (EtcdDown(), Recorded(exits=lambda n, s: int(n == NAMES[2])), NAMES, [f"etcd still running on {NAMES[2]}"]),
]


@pytest.mark.parametrize(("check", "hosts", "members", "expect"), CASES,
                         ids=[f"{type(c[0]).__name__}-{i}" for i, c in enumerate(CASES)])
def test_check_on_recorded_output(check: GateCheck, hosts: Recorded, members: tuple[str, ...],
                                  expect: list[str]) -> None:
    assert judge(check, hosts, members) == expect


def test_health_fills_the_rows_the_wizard_shows() -> None:
    state = Round({})
    hosts = Recorded()
    for check in (AllHealthy(), OneLeader()):
        state.rows = state.rows or {n: MemberHealth(n) for n in NAMES}
        check.judge(NAMES, hosts, state)
    leader = next(n for n, m in META["members"].items() if m["id"] == 1926961723263812633)
    assert [r.name for r in state.rows.values() if r.leader] == [leader]
    assert all(r.healthy and r.up and r.raft_index == 16 for r in state.rows.values())


def test_caught_up_waits_for_the_index_the_leader_had_first() -> None:
    """The target is the leader's raft index when the gate first saw one leader; a member below it is behind."""
    state = Round({}, target_index=17)
    problems = judge(OneLeader(caught_up=True), Recorded(), NAMES, state)
    assert problems == [f"{n} catching up (raft index 16 < 17)" for n in NAMES]
    assert judge(OneLeader(caught_up=False), Recorded(), NAMES, state) == []


@pytest.mark.parametrize("method", [Method.SNAPSHOT_RESTORE, Method.FORCE_NEW_CLUSTER])
def test_the_runbook_prints_every_script_a_gate_runs(method: Method) -> None:
    """One source of truth: whatever a gate's checks execute appears verbatim in that gate's hand instructions."""
    inv = load_inventory(Path(__file__).parents[1] / "docs" / "example-inventory.yaml")
    backup = "/var/lib/etcd/backup" if method is Method.SNAPSHOT_RESTORE else None
    plan = build_plan(Context(inv, backup, method, "S"))
    gates = [s.gate for s in plan.steps if s.gate is not None]
    assert gates
    for gate in gates:
        hosts = Recorded(inv)
        for check in gate.checks:
            judge(check, hosts, gate.members)
        printed = "\n".join(gate_lines(plan, gate))
        assert hosts.scripts, gate.title
        for script in hosts.scripts:
            assert f"\n{script}\n" in printed, (gate.title, script)


def test_a_gate_without_a_check_for_it_prints_nothing_for_it() -> None:
    """The reverse: a runbook line per check, none invented (the restart check only where the flag was used)."""
    inv = load_inventory(Path(__file__).parents[1] / "docs" / "example-inventory.yaml")
    plain = build_plan(Context(inv, "/b", Method.SNAPSHOT_RESTORE, "S"))
    forced = build_plan(Context(inv, None, Method.FORCE_NEW_CLUSTER, "S"))
    assert not any("no longer with" in "\n".join(gate_lines(plain, s.gate)) for s in plain.steps if s.gate)
    drop: Any = forced.step("seed-drop-flag").gate
    assert "no longer with `--force-new-cluster`" in "\n".join(gate_lines(forced, drop))
