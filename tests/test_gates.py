"""Gate decisions on a fake host set: the stop gate must see etcd stay down, not just once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from etcdrescue.checks import Block, EtcdDown, Prober, Round
from etcdrescue.errors import GateTimeout
from etcdrescue.gates import GateReport, check_once, wait_gate
from etcdrescue.inventory import Inventory, parse_inventory
from etcdrescue.model import DOWN_SETTLE_ENV, Context, Gate, Method, default_down_settle
from etcdrescue.probes import Fact
from etcdrescue.steps.stop import stop_all
from etcdrescue.transport import Result

T = TypeVar("T")
INV = parse_inventory({"cluster": "t", "members": [
    {"name": "m1", "host": "127.0.0.1", "peer_url": "https://127.0.0.1:2380", "client_url": "https://127.0.0.1:2379"},
]})


class Sequence:
    """Answers the down probe from a script of states ('down' / 'up'); the last one repeats."""

    def __init__(self, states: list[str]) -> None:
        self.states = states
        self.asked = 0
        self.inv = INV

    def run(self, name: str, script: str, timeout: float = 60.0,
            on_output: Callable[[str], None] | None = None) -> Result:
        assert "pgrep -x etcd" in script
        state = self.states[min(self.asked, len(self.states) - 1)]
        self.asked += 1
        return Result(name, script, 0 if state == "down" else 1, "", "", 0.0)

    def fact(self, name: str, fact: Fact[T]) -> T:
        raise AssertionError(f"the down gate asks no fact ({fact.name})")


def down_gate(settle: float, timeout: float = 5.0) -> Gate:
    return Gate("etcd is down", ("m1",), timeout, (EtcdDown(),), settle=settle)


def test_without_settle_the_first_down_passes() -> None:
    hosts = Sequence(["down", "up"])
    assert wait_gate(down_gate(0), hosts, poll=0.01).ok
    assert hosts.asked == 1


def test_an_etcd_started_after_the_first_down_restarts_the_settle() -> None:
    """The race a crash-looping member makes: down, the kubelet starts it once more, down again."""
    hosts = Sequence(["down", "up", "up", "down"])
    seen: list[GateReport] = []
    report = wait_gate(down_gate(0.2), hosts, poll=0.02, on_progress=seen.append)
    assert report.ok
    problems = [r.problem for r in seen]
    assert "making sure it stays down" in problems[0]
    assert problems[1] == problems[2] == "etcd still running on m1"
    # after the last "up", at least 0.2 s of down answers (every 0.02 s) before the pass
    assert hosts.asked - 4 >= 8
    assert not any(r.ok for r in seen[:-1])


def test_settle_longer_than_the_gate_times_out() -> None:
    with pytest.raises(GateTimeout, match="stays down"):
        wait_gate(down_gate(5, timeout=0.2), Sequence(["down"]), poll=0.02)


def test_the_stop_step_settles_for_the_configured_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DOWN_SETTLE_ENV, raising=False)
    assert default_down_settle() == 5.0
    monkeypatch.setenv(DOWN_SETTLE_ENV, "2.5")
    ctx = Context(INV, None, Method.FORCE_NEW_CLUSTER, "s")
    gate = stop_all(ctx).gate
    assert gate is not None and gate.settle == 2.5
    monkeypatch.setenv(DOWN_SETTLE_ENV, "soon")
    assert default_down_settle() == 5.0


class Meets:
    """A check that only holds when every check of its round is being judged at the same moment."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        try:
            self.barrier.wait(timeout=2)
        except threading.BrokenBarrierError:
            return ["judged alone"]
        state.update(members[0], healthy=True)
        return []

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        return []


def test_the_checks_of_a_round_are_judged_side_by_side() -> None:
    """A round lasts as long as its slowest probe, not the sum of them: the gate notices sooner."""
    barrier = threading.Barrier(3)
    gate = Gate("together", ("m1",), 5.0, (Meets(barrier), Meets(barrier), Meets(barrier)))
    report = check_once(gate, Sequence(["down"]), Round({}))
    assert report.ok, report.problem
    assert report.members[0].healthy
