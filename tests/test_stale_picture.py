"""The parts of "never act on a stale picture" that need no lab: what a second look compares, who holds a
lock and whether it is alive, which run a resume finds, and the engine's hooks around the first change."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from test_engine import INV, FakeHosts, ok

from etcdrescue.command import Command
from etcdrescue.engine import Engine, Guard
from etcdrescue.errors import InputError
from etcdrescue.etcddata.freshness import Freshness
from etcdrescue.journal import Journal, read_journal
from etcdrescue.locks import LEASE, Holder
from etcdrescue.model import BackupKind, Context, Method, Step
from etcdrescue.plan import Plan
from etcdrescue.preflight.cluster import ClusterFacts
from etcdrescue.preflight.picture import Picture, changes, drift
from etcdrescue.preflight.verdict import BackupFacts, HostFacts, PreflightReport
from etcdrescue.probes import Alarm, AlarmKind, HostSurvey, MemberInfo, ParseError, SnapshotInfo
from etcdrescue.resume import find_unfinished
from etcdrescue.ssh.transport import Result

SURVEY = HostSurvey(manifest=True, disabled=False, conf=True, data_dir=True, member=True, member_kb=1, free_kb=9,
                    etcd_pid=None, client_port_open=False, peer_port_open=False, etcdctl=None, etcdutl=None,
                    bash="5", tls=True)


def report(*, healthy: bool = False, manifest: bool = True, revision: int = 90, backup_hash: int = 1
           ) -> PreflightReport:
    fresh = Freshness(consistent_index=180, revision=revision, db_term=None, wal_commit=180, wal_term=None,
                      wal_last_index=180)
    hosts = (HostFacts("m1", reachable=True, survey=SURVEY, healthy=healthy, freshness=fresh),
             HostFacts("m2", reachable=True, survey=replace(SURVEY, manifest=manifest, disabled=not manifest)))
    backup = BackupFacts("/b", kind=BackupKind.FILE, size_kb=10, mtime=5,
                         snapshot=SnapshotInfo(hash=backup_hash, revision=80, total_keys=5, total_size=1))
    return PreflightReport(hosts, "m1", 2, backup)


def test_the_same_picture_has_no_changes() -> None:
    assert changes(Picture.of(report(), resuming=False), Picture.of(report(), resuming=False)) == []


@pytest.mark.parametrize(("after", "said"), [
    (report(healthy=True), "m1: healthy no -> yes"),
    (report(manifest=False), "m2: manifest enabled -> disabled"),
    (report(backup_hash=2), "backup checksum: 1 -> 2"),
])
def test_each_fact_the_plan_rests_on_is_compared(after: PreflightReport, said: str) -> None:
    assert said in changes(Picture.of(report(), resuming=False), Picture.of(after, resuming=False))


def seen(*members: MemberInfo, alarms: tuple[Alarm, ...] = ()) -> PreflightReport:
    return replace(report(healthy=True), cluster=ClusterFacts("m1", members=members, alarms=alarms))


M1, M2 = MemberInfo(0xA1, "m1", (), ()), MemberInfo(0xB2, "m2", (), ())


@pytest.mark.parametrize(("after", "said"), [
    (seen(M1, replace(M2, id=0xC3)), "members: m1 a1, m2 b2 -> m1 a1, m2 c3"),
    (seen(M1, replace(M2, is_learner=True)), "members: m1 a1, m2 b2 -> m1 a1, m2 b2 learner"),
    (seen(M1, M2, alarms=(Alarm(0xA1, AlarmKind.NOSPACE),)), "alarms: none -> NOSPACE on a1"),
])
def test_the_member_list_and_the_alarms_a_procedure_read_are_compared(after: PreflightReport, said: str) -> None:
    """A replace or a reclaim-space rests on the member list and the alarms: another bastion's `member add`, or an
    alarm disarmed by hand, between the pre-flight and the first change refuses."""
    assert changes(Picture.of(seen(M1, M2), resuming=False), Picture.of(after, resuming=False)) == [said]


def test_data_reach_alone_is_drift_not_a_change() -> None:
    """A survivor without quorum still appends to its log: what its data decides (seed, revision path) is compared
    itself, so its reach alone does not refuse; it is reported."""
    before, after = Picture.of(report(), resuming=False), Picture.of(report(revision=91), resuming=False)
    assert changes(before, after) == []
    assert drift(before, after) == ["m1: data raft index 180, revision 90 -> raft index 180, revision 91"]


def test_a_resumed_run_compares_only_what_it_does_not_move_itself() -> None:
    before = Picture.of(report(), resuming=True)
    assert changes(before, Picture.of(report(healthy=True, revision=99), resuming=True)) == []
    assert changes(before, Picture.of(report(manifest=False), resuming=True)) == ["m2: manifest enabled -> disabled"]


def dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_liveness_of_a_holder() -> None:
    me = Holder.me("s")
    assert me.liveness().startswith("alive: pid")
    gone = dead_pid()
    assert replace(me, pid=gone).liveness() == f"stale: pid {gone} is not running on this machine"
    reused = replace(me, pid_start="1")
    assert reused.liveness().startswith("stale: pid"), "a pid reused by another process is not the holder"
    elsewhere = replace(me, machine="bastion-2.example")
    assert elsewhere.liveness().startswith("alive as far as can be told")
    assert replace(elsewhere, renewed=time.time() - LEASE - 60).liveness().startswith("stale: its lease expired")
    assert Holder.parse(me.json()) == me
    assert Holder.parse("not json").describe().startswith("?@?")


def journal_of(directory: Path, stamp: str, *events: dict[str, object]) -> Path:
    start = {"event": "run_start", "cluster": "c", "dry_run": False, "steps": ["a", "b"], "seed": "m1",
             "stamp": stamp, "backup": None, "method": "force-new-cluster", "backup_kind": "dir", "learners": True}
    path = directory / f"c-{stamp}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in (start, *events)))
    os.utime(path)
    return path


def test_resume_finds_the_newest_unfinished_run(tmp_path: Path) -> None:
    changed = {"event": "command", "step": "a", "mutates": True, "exit": 0}
    unfinished = journal_of(tmp_path, "20260101T000001Z", changed,
                            {"event": "run_end", "ok": False, "error": "interrupted (Ctrl-C)", "changed": True})
    journal_of(tmp_path, "20260101T000002Z", changed, {"event": "run_end", "ok": True})
    journal_of(tmp_path, "20260101T000003Z", {"event": "run_end", "ok": False, "changed": False, "error": "refused"})
    found = find_unfinished(tmp_path, "c")
    assert found is not None and found.path == unfinished, "a later finished or refused run hides nothing"
    assert found.last_error == "interrupted (Ctrl-C)"


class JournaledHosts(FakeHosts):
    """The engine asks a journaled run's member list: here no member answers."""

    def fact(self, name: str, fact: object) -> object:
        raise ParseError(f"{name}: no answer")


class Refusing(Guard):
    def __init__(self) -> None:
        self.steps = 0

    def before_step(self) -> None:
        self.steps += 1

    def before_first_change(self) -> None:
        raise InputError("the cluster changed since the pre-flight")


def test_the_guard_refuses_before_the_first_mutating_command(tmp_path: Path) -> None:
    hosts = JournaledHosts(lambda s, n: ok(s, 1 if s.startswith("test") else 0))
    commands = (Command("m1", "cat state", "read", mutates=False), Command("m1", "mv a b", "move", skip_if="test -e b"))
    plan = Plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, "s"), (Step("k", "t", "p", "w", commands),))
    journal = Journal(tmp_path / "j.jsonl")
    guard = Refusing()
    engine = Engine(plan, hosts, journal=journal, guard=guard)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="changed since"):
        engine.run()
    assert hosts.ran == ["cat state", "test -e b"], "the probe ran, the move did not"
    assert guard.steps == 1 and not engine.changed
    events = read_journal(tmp_path / "j.jsonl")
    assert events[0]["event"] == "run_start" and events[0]["procedure"] == "recover"
    end = events[-1]
    assert end["event"] == "run_end" and end["exit_code"] == 2 and end["changed"] is False


def test_ctrl_c_is_journaled_as_an_interrupt(tmp_path: Path) -> None:
    def answer(script: str, n: int) -> Result:
        raise KeyboardInterrupt

    plan = Plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, "s"),
                (Step("k", "t", "p", "w", (Command("m1", "mv a b", "move"),)),))
    engine = Engine(plan, JournaledHosts(answer), journal=Journal(tmp_path / "j.jsonl"))  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        engine.run()
    end = read_journal(tmp_path / "j.jsonl")[-1]
    assert (end["error"], end["interrupted"], end["exit_code"], end["changed"]) == (
        "interrupted (Ctrl-C)", True, 130, True)


def test_holder_names_machine_user_pid_and_since() -> None:
    h = Holder.me("20260101T000000Z")
    assert h.describe() == f"{h.user}@{socket.gethostname()} (pid {os.getpid()}, run 20260101T000000Z) since {h.since}"
