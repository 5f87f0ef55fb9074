"""The report's "what changed": from hand-made journals (members with IDs and revisions, leftovers, the operator's
waits), the engine's journaling of waits and leftovers with fake hosts, and the leftovers probe on real files."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from etcdrescue.command import Command
from etcdrescue.documents.report import parse_runs, render_markdown
from etcdrescue.engine import Callbacks, Engine
from etcdrescue.inventory.model import parse_inventory
from etcdrescue.journal import Journal, read_journal
from etcdrescue.leftovers import aside_of, leftovers, leftovers_probe, origin, parse_leftovers
from etcdrescue.model import Context, Method, Step
from etcdrescue.plan import Plan
from etcdrescue.probes import Fact
from etcdrescue.ssh.transport import Result

S = "20261207T120000Z"
Event = dict[str, Any]


def journal(ok: bool = True) -> list[Event]:
    kept = {"path": f"/var/lib/etcd/member.etcdrescue-{S}", "dir": True, "from": "/var/lib/etcd/member",
            "tag": "etcdrescue"}
    conf = {"path": f"/etc/etcd/etcd.conf.etcdrescue-{S}", "dir": False, "from": "/etc/etcd/etcd.conf",
            "tag": "etcdrescue"}
    marker = {"path": f"/var/lib/etcd/etcdrescue-restore-{S}.complete", "dir": False, "from": "", "tag": ""}
    odd = {"path": f"/etc/etcd/it's {S}", "dir": False, "from": "", "tag": ""}
    return [
        {"ts": 90.0, "event": "preflight", "verdict": "quorum lost", "started": 80.0,
         "hosts": [{"name": "a", "revision": 601, "raft_index": 611}, {"name": "b"}],
         "backup": {"path": "/b", "kind": "dir", "size_kb": 1, "snapshot": {"revision": 501, "total_keys": 9}}},
        {"ts": 95.0, "event": "operator_wait", "what": "start confirmation (typing the cluster name)",
         "seconds": 4.25},
        {"ts": 100.0, "event": "run_start", "dry_run": False, "steps": ["stop-etcd", "join-b"], "mode": "m",
         "seed": "a", "stamp": S, "revisions": {"path": "backwards", "why": "no bump", "bump": 0,
                                                 "restart_control_plane": True}},
        {"ts": 100.5, "event": "members", "phase": "before", "error": "a has no leader: the member list needs one",
         "status": [{"name": "a", "id": "a1", "revision": 601, "raft_index": 611, "leader": False,
                     "learner": False}]},
        {"ts": 101.0, "event": "operator_wait", "what": "confirmation", "step": "stop-etcd", "seconds": 20.5,
         "answer": True},
        {"ts": 101.1, "event": "step_start", "step": "stop-etcd", "title": "Stop"},
        {"ts": 102.0, "event": "command", "step": "stop-etcd", "host": "a", "script": "mv x y", "exit": 0,
         "attempt": 1, "duration": 0.5, "stdout": "", "stderr": ""},
        {"ts": 103.0, "event": "step_end", "step": "stop-etcd", "status": "done", "duration": 1.9},
        {"ts": 103.5, "event": "operator_wait", "what": "pause", "step": "join-b", "seconds": 6.0},
        {"ts": 110.0, "event": "members", "phase": "after",
         "members": [{"id": "b2", "name": "a"}, {"id": "c3", "name": "b"}],
         "status": [{"name": "a", "id": "b2", "revision": 501, "raft_index": 8, "leader": True, "learner": False},
                    {"name": "b", "id": "c3", "revision": 501, "raft_index": 8, "leader": False, "learner": False}]},
        {"ts": 110.5, "event": "leftovers", "stamp": S,
         "hosts": {"a": [kept, conf, marker], "b": [kept, odd], "c": {"error": "c: cannot reach c:22"}}},
        {"ts": 111.0, "event": "run_end", "ok": ok, "duration": 11.0,
         **({} if ok else {"error": "gate not met", "exit_code": 3, "changed": True})},
    ]


def section(doc: str, title: str) -> str:
    return doc.split(f"### {title}\n")[1].split("\n### ")[0].split("\n## ")[0]


def test_what_changed_comes_first_and_names_members_asides_time_and_leftovers() -> None:
    doc = render_markdown(journal(), f"c-{S}.jsonl")
    assert doc.index("## What changed") < doc.index("## Pre-flight") < doc.index("## Steps") < doc.index("## Appendix")
    members = section(doc, "Members and revisions")
    assert "| `a` | a1 | 601 | b2 | 501 | leader after |" in members
    assert "| `b` | - | - | c3 | 501 |  |" in members
    assert "Revisions: the backup was at revision 501; revisions go back" in members
    moved = section(doc, "Moved aside")
    assert f"| `a` | `/var/lib/etcd/member` | `/var/lib/etcd/member.etcdrescue-{S}` |" in moved
    assert f"| `a` | `/etc/etcd/etcd.conf` | `/etc/etcd/etcd.conf.etcdrescue-{S}` |" in moved
    assert f"| `b` | `/var/lib/etcd/member` | `/var/lib/etcd/member.etcdrescue-{S}` |" in moved
    assert ".complete" not in moved
    spent = section(doc, "Time")
    assert "- Wall time: 31.0 s (pre-flight included)" in spent
    assert "- Waiting for the operator: 30.8 s" in spent and "- The tool's own time: 0.2 s" in spent
    assert "  - confirmation, before step `stop-etcd`: yes: 20.5 s" in spent
    assert "  - pause, before step `join-b`: 6.0 s" in spent
    assert "  - start confirmation (typing the cluster name): 4.2 s" in spent
    left = section(doc, "Leftovers")
    assert "marker: the backup's restore finished" in left
    assert f"/var/lib/etcdrescue/lock.released-{S}" in left  # the run ended well: the session released it
    assert "`c`: not known (c: cannot reach c:22)." in left
    assert (f"rm -r -- /var/lib/etcd/member.etcdrescue-{S} '/etc/etcd/it'\"'\"'s {S}' "
            f"/var/lib/etcdrescue/lock.released-{S}") in left
    assert "never run by the tool" in left


def test_a_failed_run_keeps_its_lock_and_the_commands_can_be_left_out() -> None:
    doc = render_markdown(journal(ok=False), f"c-{S}.jsonl", commands=False)
    assert "lock.released" not in doc
    assert "## Appendix" not in doc and "mv x y" not in doc
    assert "`etcdrescue report` without `--no-commands`" in doc
    assert "mv x y" in render_markdown(journal(ok=False), f"c-{S}.jsonl")


def test_a_journal_without_the_new_events_says_so() -> None:
    old = [e for e in journal() if e["event"] not in ("leftovers", "operator_wait")]
    doc = render_markdown(old, f"c-{S}.jsonl")
    assert f"look for names ending in `-{S}`" in section(doc, "Moved aside")
    assert "Not recorded in this journal." in section(doc, "Leftovers")
    assert "- Waiting for the operator: 0.0 s (nobody was asked)" in section(doc, "Time")


def test_waits_before_a_run_belong_to_it() -> None:
    runs = parse_runs(journal())
    assert [w["what"] for w in runs[0].waits] == ["start confirmation (typing the cluster name)", "confirmation",
                                                  "pause"]
    assert runs[0].leftovers is not None and runs[0].steps[0].commands[0]["script"] == "mv x y"


MEMBER = {"name": "m1", "host": "127.0.0.1", "peer_url": "https://127.0.0.1:2380",
          "client_url": "https://127.0.0.1:2379"}
INV = parse_inventory({"cluster": "t", "members": [MEMBER]})


class Hosts:
    def __init__(self) -> None:
        self.inv = INV
        self.facts: list[str] = []

    def run(self, name: str, script: str, timeout: float = 60.0, on_output: object = None) -> Result:
        return Result(name, script, 0, "", "", 0.0)

    def fact(self, name: str, fact: Fact[Any]) -> Any:
        self.facts.append(fact.name)
        if fact.name == "leftovers":
            return fact.parse(f"d /var/lib/etcd/member.etcdrescue-{S}\nf /etc/etcd/etcd.conf.etcdrescue-{S}\n")
        return fact.parse("[]")


class Slow(Callbacks):
    def confirm(self, step: Step) -> bool:
        time.sleep(0.2)
        return True


def test_the_engine_journals_the_operators_waits_and_the_leftovers(tmp_path: Path) -> None:
    steps = (Step("quick", "t", "p", "w", (Command("m1", "true", "x"),), destructive=""),
             Step("asks", "t", "p", "w", (Command("m1", "true", "x"),), destructive="Go?"))
    plan = Plan(Context(INV, None, Method.FORCE_NEW_CLUSTER, S), steps)
    j = Journal(tmp_path / "j.jsonl")
    Engine(plan, Hosts(), journal=j, callbacks=Slow()).run()  # type: ignore[arg-type]
    events = read_journal(tmp_path / "j.jsonl")
    waits = [e for e in events if e["event"] == "operator_wait"]
    assert [(w["what"], w["step"], w["answer"]) for w in waits] == [("confirmation", "asks", True)]
    (found,) = [e for e in events if e["event"] == "leftovers"]
    assert found["hosts"]["m1"] == [
        {"path": f"/var/lib/etcd/member.etcdrescue-{S}", "dir": True, "from": "/var/lib/etcd/member",
         "tag": "etcdrescue"},
        {"path": f"/etc/etcd/etcd.conf.etcdrescue-{S}", "dir": False, "from": "/etc/etcd/etcd.conf",
         "tag": "etcdrescue"}]
    assert events[-1]["event"] == "run_end"
    quick = Journal(tmp_path / "q.jsonl")
    Engine(plan, Hosts(), journal=quick).run()  # type: ignore[arg-type]
    assert not [e for e in read_journal(tmp_path / "q.jsonl") if e["event"] == "operator_wait"], \
        "nobody was asked: no wait"


def test_the_probe_finds_what_the_stamp_names_on_a_real_tree(tmp_path: Path) -> None:
    data, conf = tmp_path / "data", tmp_path / "conf"
    inv = parse_inventory({"cluster": "t", "paths": {"data_dir": str(data), "etcd_conf": str(conf / "etcd.conf")},
                           "members": [MEMBER]})
    (data / f"member.etcdrescue-{S}").mkdir(parents=True)
    (data / f"member.etcdrescue-{S}" / f"inner-{S}").write_text("not listed: inside an aside")
    (data / f"etcdrescue-restore-{S}.complete").write_text("")
    (data / "member").mkdir()
    conf.mkdir()
    (conf / f"etcd.conf.etcdrescue-{S}").write_text("x")
    (conf / f".hidden.forced-{S}").write_text("x")
    (conf / "etcd.conf.etcdrescue-20200101T000000Z").write_text("another run's")
    fact = leftovers_probe(inv.platform, S)
    out = subprocess.run(["bash", "-c", fact.script], capture_output=True, text=True, check=True).stdout
    found = leftovers(fact.parse(out), inv.platform, S)
    assert {(x.path, x.is_dir, x.origin, x.tag) for x in found} == {
        (f"{data}/member.etcdrescue-{S}", True, f"{data}/member", "etcdrescue"),
        (f"{data}/etcdrescue-restore-{S}.complete", False, "", ""),
        (f"{conf}/etcd.conf.etcdrescue-{S}", False, f"{conf}/etcd.conf", "etcdrescue"),
        (f"{conf}/.hidden.forced-{S}", False, f"{conf}/.hidden", "forced"),
    }


def test_asides_and_their_origins() -> None:
    assert aside_of(f"/var/lib/etcd/member.etcdrescue-{S}", S) == ("/var/lib/etcd/member", "etcdrescue")
    assert aside_of(f"/x/lock.released-{S}", S) == ("/x/lock", "released")
    assert aside_of(f"/x/etcdrescue-restore-{S}.complete", S) is None
    cp = INV.platform.control_plane
    component = cp.stages[0][0]
    copied = f"{cp.disabled_dir}/{component.manifest.rsplit('/', 1)[1]}"
    assert origin(INV.platform, copied) == component.manifest
    assert origin(INV.platform, "/etc/etcd/etcd.conf") == "/etc/etcd/etcd.conf"
    assert parse_leftovers("d /a\nf /b c\n") == [("/a", True), ("/b c", False)]
