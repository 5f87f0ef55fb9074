"""Engine decisions on a fake host set: skipping, retrying refusals, checks, dry run, lost connections."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from etcdrescue.checks import EtcdDown
from etcdrescue.command import Command, Retry
from etcdrescue.engine import Callbacks, DryRunMark, Engine, RunResult, StepStatus
from etcdrescue.errors import StepFailed, TransportError
from etcdrescue.inventory.model import parse_inventory
from etcdrescue.journal import Journal, read_journal
from etcdrescue.model import Context, Gate, Method, Step
from etcdrescue.plan import Plan
from etcdrescue.probes import Fact
from etcdrescue.ssh.transport import Result

T = TypeVar("T")

INV = parse_inventory({"cluster": "t", "members": [
    {"name": "m1", "host": "127.0.0.1", "peer_url": "https://127.0.0.1:2380", "client_url": "https://127.0.0.1:2379"},
]})


class FakeHosts:
    """Answers scripts from a table; records what ran."""

    def __init__(self, answer: Callable[[str, int], Result | Exception]) -> None:
        self.answer = answer
        self.ran: list[str] = []
        self.inv = INV

    def run(self, name: str, script: str, timeout: float = 60.0, on_output: object = None) -> Result:
        self.ran.append(script)
        out = self.answer(script, self.ran.count(script))
        if isinstance(out, Exception):
            raise out
        return out


def ok(script: str, code: int = 0, out: str = "") -> Result:
    return Result("m1", script, code, out, "", 0.0)


def engine(commands: tuple[Command, ...], hosts: FakeHosts, dry_run: bool = False) -> Engine:
    plan = Plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, "s"), (Step("k", "t", "p", "w", commands),))
    return Engine(plan, hosts, dry_run=dry_run)  # type: ignore[arg-type]


def test_skip_if_true_means_the_command_never_runs() -> None:
    hosts = FakeHosts(lambda s, n: ok(s, 0))
    result = engine((Command("m1", "mv a b", "move", skip_if="test -e b"),), hosts).run()
    assert hosts.ran == ["test -e b"]
    assert result.outcomes[0].status is StepStatus.SKIPPED


def test_refusal_is_retried_until_it_passes() -> None:
    def answer(s: str, n: int) -> Result:
        return Result("m1", s, 1, "", "etcdserver: unhealthy cluster", 0.0) if n < 3 else ok(s)
    hosts = FakeHosts(answer)
    notes = Notes()
    plan = Plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, "s"), (Step("k", "t", "p", "w", (
        Command("m1", "member add", "add", retry=Retry(("unhealthy cluster",), 10, 0.01, "why")),)),))
    Engine(plan, hosts, callbacks=notes).run()  # type: ignore[arg-type]
    assert hosts.ran.count("member add") == 3
    assert re.fullmatch(r"after 3 tries in \d+\.\d s", notes.notes[0]), notes.notes


def test_refusal_that_outlasts_its_retry_says_what_etcd_waits_for() -> None:
    hosts = FakeHosts(lambda s, n: Result("m1", s, 1, "", "etcdserver: unhealthy cluster", 0.0))
    retry = Retry(("unhealthy cluster",), 0.05, 0.01, "etcd 3.4.23 waits for every voter")
    with pytest.raises(StepFailed, match=r"unhealthy cluster \(still after \d+ tries in 0.05 s: etcd 3.4.23 waits"):
        engine((Command("m1", "member add", "add", retry=retry),), hosts).run()
    assert hosts.ran.count("member add") >= 2


def test_other_failure_is_not_retried() -> None:
    hosts = FakeHosts(lambda s, n: Result("m1", s, 1, "", "etcdserver: peerURL exists", 0.0))
    with pytest.raises(StepFailed, match=r"peerURL exists$"):
        engine((Command("m1", "member add", "add", retry=Retry(("unhealthy cluster",), 10, 0.01, "why")),),
               hosts).run()
    assert hosts.ran.count("member add") == 1


def test_failed_check_stops_the_step() -> None:
    hosts = FakeHosts(lambda s, n: ok(s, 0, "2"))
    cmd = Command("m1", "grep -c x f", "count", mutates=False, check=lambda o: None if o == "1" else "want 1")
    with pytest.raises(StepFailed, match="want 1"):
        engine((cmd,), hosts).run()


class Notes(Callbacks):
    """Records the note each command finished with: what the console and the wizard's log print."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def command_finished(self, cmd: Command, result: Result | None, note: str) -> None:
        self.notes.append(note)


def dry_run(steps: tuple[Step, ...], hosts: FakeHosts | None, **kw: object) -> tuple[RunResult, list[str]]:
    notes = Notes()
    plan = Plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, "s"), steps)
    result = Engine(plan, hosts, callbacks=notes, dry_run=True, **kw).run()  # type: ignore[arg-type]
    return result, notes.notes


def test_dry_run_runs_only_the_probe_and_marks_in_place() -> None:
    hosts = FakeHosts(lambda s, n: ok(s, 0))
    commands = (Command("m1", "mv a b", "move", skip_if="test -e b"),
                Command("m1", "mv c d", "move", skip_if="test -e d"))
    result, notes = dry_run((Step("k", "t", "p", "w", commands),), hosts)
    assert hosts.ran == ["test -e b", "test -e d"]
    assert [v.mark for v in result.verdicts] == [DryRunMark.IN_PLACE, DryRunMark.IN_PLACE]
    assert notes == ["already in place", "already in place"]
    assert result.outcomes[0].status is StepStatus.PLANNED


def test_dry_run_probes_nothing_after_a_command_that_would_run(tmp_path: Path) -> None:
    """Every probe but the first would pass: a dry run that read them would wrongly call them in place."""
    hosts = FakeHosts(lambda s, n: ok(s, 1 if s == "test -e b" else 0))
    first = Step("stop", "t", "p", "w", (Command("m1", "mv a b", "move", skip_if="test -e b"),
                                          Command("m2", "mv c d", "move", skip_if="test -e d")),
                 gate=Gate("down", ("m1",), 5, (EtcdDown(),)))
    second = Step("seed", "t", "p", "w", (Command("m1", "cp e f", "copy", skip_if="test -e f"),
                                           Command("m1", "restart", "restart"),
                                           Command("m1", "cat f", "read", mutates=False, skip_if="test -e f")))
    journal = Journal(tmp_path / "j.jsonl")
    result, notes = dry_run((first, second), hosts, journal=journal)
    journal.close()
    assert hosts.ran == ["test -e b"], "no later probe, no script, no gate poll"
    after = DryRunMark.AFTER_EARLIER_CHANGE
    assert [v.mark for v in result.verdicts] == [DryRunMark.WOULD_RUN, after, after, after, DryRunMark.NOT_PROBED]
    assert notes[:2] == ["would run", after.value]
    events = [e for e in read_journal(tmp_path / "j.jsonl") if e["event"] == "command"]
    assert [e["dry_run"] for e in events] == ["would_run", *["after_earlier_change"] * 3, "not_probed"]
    assert all(o.status is StepStatus.PLANNED for o in result.outcomes)


def test_dry_run_never_executes_read_only_commands() -> None:
    hosts = FakeHosts(lambda s, n: ok(s, 0))
    commands = (Command("m1", "cat f", "read", mutates=False),
                Command("m1", "grep x f", "check", mutates=False, skip_if="test -e g"),
                Command("m1", "mv a b", "move", skip_if="test -e b"))
    result, notes = dry_run((Step("k", "t", "p", "w", commands),), hosts)
    assert hosts.ran == ["test -e b"]
    assert [v.mark for v in result.verdicts] == [DryRunMark.NOT_PROBED, DryRunMark.NOT_PROBED, DryRunMark.IN_PLACE]
    assert notes[:2] == ["dry run: not executed"] * 2


def test_dry_run_without_hosts_probes_nothing() -> None:
    commands = (Command("m1", "mv a b", "move", skip_if="test -e b"), Command("m1", "restart", "restart"))
    result, notes = dry_run((Step("k", "t", "p", "w", commands),), None)
    assert notes == ["dry run: not executed"] * 2
    assert result.outcomes[0].status is StepStatus.PLANNED


def test_lost_connection_with_effect_confirmed_moves_on() -> None:
    def answer(s: str, n: int) -> Result | Exception:
        if s == "mv a b":
            return TransportError("connection lost")
        return ok(s, 1 if n == 1 else 0)  # skip_if: not done before, done after the reconnect
    hosts = FakeHosts(answer)
    result = engine((Command("m1", "mv a b", "move", skip_if="test -e b"),), hosts).run()
    assert hosts.ran == ["test -e b", "mv a b", "test -e b"]
    assert result.outcomes[0].status is StepStatus.DONE


def test_lost_connection_with_effect_unknown_stops() -> None:
    def answer(s: str, n: int) -> Result | Exception:
        return TransportError("connection lost") if s == "mv a b" else ok(s, 1)
    hosts = FakeHosts(answer)
    with pytest.raises(TransportError, match="not confirmed"):
        engine((Command("m1", "mv a b", "move", skip_if="test -e b"),), hosts).run()
    assert hosts.ran.count("mv a b") == 1


def test_read_only_command_is_retried_once_after_a_lost_connection() -> None:
    def answer(s: str, n: int) -> Result | Exception:
        return TransportError("connection lost") if n == 1 else ok(s)
    hosts = FakeHosts(answer)
    engine((Command("m1", "cat f", "read", mutates=False),), hosts).run()
    assert hosts.ran == ["cat f", "cat f"]


class Settling(FakeHosts):
    """The stop gate's host: etcd is down; the gate's probe and the `while_gate` command record their times."""

    def __init__(self, restore: Callable[[], Result]) -> None:
        super().__init__(lambda s, n: ok(s, 1 if s.startswith("test -e") else 0))
        self.restore = restore
        self.times: dict[str, list[float]] = {"probe": [], "restore": []}

    def run(self, name: str, script: str, timeout: float = 60.0, on_output: object = None) -> Result:
        if script == "restore":
            self.ran.append(script)
            self.times["restore"].append(time.monotonic())
            return self.restore()
        if "pgrep" in script:
            self.times["probe"].append(time.monotonic())
        return super().run(name, script, timeout, on_output)


def settling_step() -> Step:
    restore = Command("m1", "restore", "restore", skip_if="test -e done", while_gate=True)
    return Step("stop", "stop", "p", "w", (Command("m1", "mv m d", "move"), restore),
                gate=Gate("down", ("m1",), 10.0, (EtcdDown(),), settle=0.6))


def test_a_while_gate_command_runs_as_the_gate_settles() -> None:
    """The restore starts once the step's other commands ran, and the gate keeps polling while it runs."""
    def slow_restore() -> Result:
        time.sleep(0.4)
        return ok("restore")
    hosts = Settling(slow_restore)
    plan = Plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, "s"), (settling_step(),))
    start = time.monotonic()
    result = Engine(plan, hosts).run()  # type: ignore[arg-type]
    assert result.outcomes[0].status is StepStatus.DONE
    assert hosts.ran.index("mv m d") < hosts.ran.index("test -e done") < hosts.ran.index("restore")
    (began,) = hosts.times["restore"]
    assert any(began < t < began + 0.4 for t in hosts.times["probe"]), "the gate waited for the restore"
    assert time.monotonic() - start < 0.6 + 0.4


def test_a_failed_while_gate_command_fails_the_step_after_its_gate() -> None:
    hosts = Settling(lambda: Result("m1", "restore", 1, "", "no space left on device", 0.0))
    plan = Plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, "s"), (settling_step(),))
    engine = Engine(plan, hosts)  # type: ignore[arg-type]
    with pytest.raises(StepFailed, match=r"restore failed .*no space left on device"):
        engine.run()
    assert engine.result.outcomes[0].gate is None
    assert engine.result.outcomes[0].status is StepStatus.FAILED
    assert hosts.times["probe"][-1] - hosts.times["probe"][0] >= 0.6, "the gate was held to its end"


def test_a_dry_run_marks_the_while_gate_command_in_plan_order() -> None:
    hosts = Settling(lambda: ok("restore"))
    plan = Plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, "s"), (settling_step(),))
    result = Engine(plan, hosts, dry_run=True).run()  # type: ignore[arg-type]
    assert [(v.cmd.script, v.mark) for v in result.verdicts] == [
        ("mv m d", DryRunMark.WOULD_RUN), ("restore", DryRunMark.AFTER_EARLIER_CHANGE)]
    assert hosts.times == {"probe": [], "restore": []}


class Asked(FakeHosts):
    """Answers `endpoint status` from `status` (JSON) and notes which facts were asked."""

    def __init__(self, status: str) -> None:
        super().__init__(lambda s, n: ok(s))
        self.status = status
        self.facts: list[str] = []

    def fact(self, name: str, fact: Fact[T]) -> T:
        self.facts.append(fact.name)
        if fact.name == "endpoint status":
            return fact.parse(self.status)
        return fact.parse('{"members": [{"ID": 90, "name": "m1", "peerURLs": ["https://127.0.0.1:2380"]}]}')


STATUS = ('[{"Endpoint":"https://127.0.0.1:2379","Status":{"header":{"member_id":90},"raftIndex":5%s}}]')


def status_row(leader: bool) -> dict[str, object]:
    return {"name": "m1", "id": "5a", "revision": 0, "raft_index": 5, "leader": leader, "learner": False}


@pytest.mark.parametrize(("leader", "asked", "logged"), [
    (False, ["endpoint status"],
     {"status": [status_row(False)], "error": "m1 has no leader: the member list needs one"}),
    (True, ["endpoint status", "member list"], {"status": [status_row(True)], "members": [
        {"id": "5a", "name": "m1", "peer_urls": ["https://127.0.0.1:2380"], "client_urls": []}]}),
])
def test_the_member_list_is_asked_for_the_report_only_with_a_leader(
        tmp_path: Path, leader: bool, asked: list[str], logged: dict[str, object]) -> None:
    """Without a leader `member list` waits out its 5 s timeout before every recovery of a broken cluster; the
    status of every member that answers (its ID and revision) is journaled either way."""
    hosts = Asked(STATUS % (',"leader":90' if leader else ""))
    plan = Plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, "s"), ())
    journal = Journal(tmp_path / "j.jsonl")
    Engine(plan, hosts, journal=journal).record_members("before")  # type: ignore[arg-type]
    assert hosts.facts == asked
    (event,) = read_journal(tmp_path / "j.jsonl")
    assert {k: v for k, v in event.items() if k not in ("ts", "event", "phase")} == logged
