"""The replace procedure offline: its pre-flight rules over typed facts (table-driven), and its steps as data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_preflight_judge import GOOD
from test_resume_unit import inventory
from test_runbook import assert_runs_the_plan

from etcdrescue.checks import AllHealthy, EntryGone, EtcdDown, LearnerCaughtUp, OneLeader
from etcdrescue.errors import InputError
from etcdrescue.inventory.model import load_inventory
from etcdrescue.model import Context, Method
from etcdrescue.plan import build_plan
from etcdrescue.platform.okd3 import DEFAULT_PATHS
from etcdrescue.platform.tools import EtcdTools
from etcdrescue.preflight.cluster import ClusterFacts
from etcdrescue.preflight.options import RecoveryOptions
from etcdrescue.preflight.verdict import HostFacts, PreflightReport, ToolChoice
from etcdrescue.probes import Alarm, AlarmKind, EndpointStatus, MemberInfo
from etcdrescue.procedures import PROCEDURES, named
from etcdrescue.procedures.replace import REPLACE
from etcdrescue.procedures.replace_rules import judge
from etcdrescue.session import RecoverySession
from etcdrescue.space import NoAlarm

NAMES = ("m1", "m2", "m3", "m4", "m5")
URL = {n: f"https://10.0.0.{i}:2380" for i, n in enumerate(NAMES, 1)}
ID = {n: 0xA0 + i for i, n in enumerate(NAMES, 1)}
TOOLS = ToolChoice(EtcdTools(DEFAULT_PATHS))


def entry(name: str, *, learner: bool = False, started: bool = True, url: str | None = None) -> MemberInfo:
    return MemberInfo(ID[name], name if started else "", (url or URL[name],), (), learner)


def facts(n: int = 3, *, healthy: tuple[str, ...] = ("m1", "m2"), target: str = "m3",
          members: tuple[MemberInfo, ...] | None = None, leader: str = "m1", alarms: tuple[Alarm, ...] = (),
          reachable: bool = True, force: bool = False, resuming: bool = False,
          error: str = "", tools: ToolChoice = TOOLS) -> PreflightReport:
    names = NAMES[:n]
    hosts = tuple(HostFacts(m, reachable=reachable or m != target, survey=GOOD, healthy=m in healthy,
                            error="" if reachable or m != target else f"{m}: unreachable") for m in names)
    listed = members if members is not None else tuple(entry(m) for m in names)
    statuses = tuple(EndpointStatus(f"https://{m}:2379", ID[m], ID[leader], 100, 100, 50, 1, "3.5.36")
                     for m in names if m in healthy)
    cluster = (ClusterFacts(healthy[0], listed, statuses, alarms, error, tuple((m, URL[m]) for m in names))
               if healthy else None)
    return judge(hosts, seed="m1", quorum=n // 2 + 1, data_dir="/var/lib/etcd", backup_path=None, backup=None,
                 method=Method.FORCE_NEW_CLUSTER, resuming=resuming, settings="etcd.conf", tools=tools,
                 choice=None, revision_options=None, cluster=cluster, target=target, force=force)


@pytest.mark.parametrize(("kw", "expect"), [
    ({}, None),
    ({"healthy": ("m1", "m3")}, "replacing m3 would cost the quorum: 1 healthy voters without it (m1), 2 needed "
                                "once its entry is removed; bring m2 back first"),
    ({"healthy": ()}, "no member is healthy: the cluster has lost its quorum, which is `etcdrescue recover`"),
    ({"n": 5, "healthy": ("m1", "m2")}, "the cluster has no quorum (2/5 voters healthy)"),
    ({"n": 5, "healthy": ("m1", "m2", "m4", "m5")}, None),
    ({"n": 5, "healthy": ("m1", "m2", "m4")}, "m5 is not healthy either: a replace rebuilds one member while every "
                                              "other one is healthy"),
    ({"n": 5, "healthy": ("m1", "m2", "m3"), "target": "m3", "force": True}, "would cost the quorum"),
    ({"n": 5, "healthy": ("m1", "m2", "m3"), "force": True}, "would cost the quorum: 2 healthy voters"),
    ({"healthy": ("m1", "m2", "m3")}, "m3 is a healthy voter: nothing to replace (--force"),
    ({"healthy": ("m1", "m2", "m3"), "force": True}, None),
    ({"healthy": ("m1", "m2", "m3"), "leader": "m3", "force": True}, "m3 is healthy and the leader"),
    ({"healthy": ("m1", "m3"), "force": True}, "would cost the quorum"),
    ({"healthy": ("m1", "m2", "m3"), "resuming": True}, None),
    ({"members": (entry("m1"), entry("m2"))}, None),
    ({"members": (entry("m1"), entry("m2"), entry("m3", learner=True, started=False))}, None),
    ({"members": (entry("m1"), entry("m2"), entry("m3", started=False))}, None),
    ({"members": (entry("m1"), entry("m2"), entry("m3"), entry("m4"))},
     "the member list has voter a4 m4 (https://10.0.0.4:2380) that the inventory does not name"),
    ({"members": (entry("m1"), entry("m2"), entry("m3"), entry("m4", learner=True, started=False))},
     "learner a4 (never started)"),
    ({"members": (entry("m1"), entry("m3"))}, "m2 (https://10.0.0.2:2380) is not in the member list"),
    ({"members": (entry("m1"), entry("m2", learner=True), entry("m3"))}, "m2 is a learner in the member list"),
    ({"members": (entry("m1"), entry("m2"), entry("m3", url="https://10.9.9.9:2380"))},
     "m3 is listed with peer URL https://10.9.9.9:2380, the inventory says https://10.0.0.3:2380"),
    ({"alarms": (Alarm(ID["m1"], AlarmKind.NOSPACE),)}, "alarm NOSPACE on member a1: a replace does not clear it; "
                                                        "`etcdrescue reclaim-space` first"),
    ({"reachable": False}, "m3: unreachable"),
    ({"healthy": (), "tools": ToolChoice(None, ("m1: etcdctl not found (PATH): give --etcd-tools DIR",))},
     "m1: etcdctl not found"),
    ({"error": "member list: context deadline exceeded"}, "cannot read the cluster through m1: member list"),
    ({"error": "member list: context deadline exceeded", "members": ()}, "cannot read the cluster through m1"),
], ids=lambda v: str(v)[:60])
def test_rules(kw: dict[str, Any], expect: str | None) -> None:
    report = facts(**kw)
    if expect is None:
        assert report.ok, report.problems
        assert report.tools is not None and report.seed in ("m1", "m2") and report.ok_line == report.verdict
        assert report.verdict.endswith("replace can start")
    else:
        assert not report.ok and report.tools is None
        assert expect in report.problems[0], report.problems


@pytest.mark.parametrize(("members", "words"), [
    (None, "m3: voter a3, not healthy (removed, then added back as a learner); 2 healthy voters without it, "
           "2 needed: replace can start"),
    ((entry("m1"), entry("m2")), "m3: not in the member list (added back as a learner); 2 healthy voters without "
                                 "it, 2 needed"),
    ((entry("m1"), entry("m2"), entry("m3", learner=True, started=False)),
     "m3: an added, never started learner a3 (taken over); 2 healthy voters without it, 2 needed"),
])
def test_the_verdict_says_what_happens_to_the_entry(members: tuple[MemberInfo, ...] | None, words: str) -> None:
    assert facts(members=members).verdict.startswith(words)


def test_the_seed_is_a_healthy_voter_other_than_the_target() -> None:
    assert facts(target="m1", healthy=("m1", "m2", "m3"), leader="m2", force=True).seed == "m2"
    assert facts(target="m1", healthy=("m2", "m3"), leader="m2").seed == "m2"
    assert facts(target="m2").seed == "m1"


def test_force_reaches_the_rules_of_a_replace(tmp_path: Path) -> None:
    assert PROCEDURES["replace"] is REPLACE and named("replace") is REPLACE and REPLACE.takes_options
    session = RecoverySession.open(RecoveryOptions(inventory(tmp_path), procedure="replace", target="m3.test",
                                                   force=True))
    assert session.rules.keywords["force"] is True  # type: ignore[attr-defined]


def plan_of(tmp_path: Path, target: str = "m2.test") -> tuple[Context, list[Any]]:
    inv = load_inventory(inventory(tmp_path)).with_seed("m1.test")
    ctx = Context(inv, None, Method.FORCE_NEW_CLUSTER, "20261207T000000Z", target=target)
    return ctx, list(build_plan(ctx, REPLACE).steps)


def test_the_steps_stop_remove_add_promote_verify(tmp_path: Path) -> None:
    ctx, steps = plan_of(tmp_path)
    assert [s.key for s in steps] == ["stop-m2.test", "remove-m2.test", "join-m2.test", "promote-m2.test", "verify"]
    stop, remove, add, promote, verify = steps
    assert {c.host for c in stop.commands} == {"m2.test"} and stop.destructive and stop.undo
    assert stop.gate is not None and isinstance(stop.gate.checks[0], EtcdDown) and stop.gate.members == ("m2.test",)
    assert stop.gate.settle == ctx.down_settle
    (rm,) = remove.commands
    assert rm.host == "m1.test" and " member remove " in rm.script and rm.skip_if and "'$3 == u" in rm.skip_if
    assert '$2 == "unstarted" && $4 == "true"' in rm.script, "a half-added learner is taken over, not removed"
    assert rm.skip_if.startswith("out=$(") and "&& ! printf" in rm.skip_if, "a failed member list never skips"
    assert remove.gate is not None and remove.gate.members == ("m1.test", "m3.test")
    assert [type(c) for c in remove.gate.checks] == [AllHealthy, EntryGone, OneLeader]
    assert remove.destructive and remove.undo_note
    add_cmd = add.commands[0]
    assert add_cmd.host == "m1.test"
    assert "member add m2.test --peer-urls=https://10.0.0.2:2380 --learner" in add_cmd.script
    assert add_cmd.check is not None
    members = [{"ID": i, "name": f"m{i}.test", "peerURLs": [f"https://10.0.0.{i}:2380"]} for i in (1, 3)]
    answer = {"member": {"ID": 2, "peerURLs": ["https://10.0.0.2:2380"], "isLearner": True},
              "members": [*members, {"ID": 2, "peerURLs": ["https://10.0.0.2:2380"], "isLearner": True}]}
    assert "-w json" in add_cmd.script
    assert add_cmd.check(json.dumps(answer) + "\n") is None, "every member in the initial cluster"
    scripts = " ".join(c.script for c in add.commands)
    assert "existing" in scripts and "mv /var/lib/etcd/member /var/lib/etcd/member.etcdrescue-20261207T000000Z" \
        in scripts
    assert all(c.skip_if for c in add.commands if c.mutates), "every mutating command probes first"
    assert add.gate is not None and add.gate.members == ("m1.test", "m3.test") and add.gate.learners == ("m2.test",)
    assert any(isinstance(c, LearnerCaughtUp) for c in add.gate.checks)
    assert " member promote " in promote.commands[0].script and promote.commands[0].skip_if
    assert promote.gate is not None and promote.gate.members == ("m1.test", "m3.test", "m2.test")
    assert verify.gate is not None and any(isinstance(c, NoAlarm) for c in verify.gate.checks)
    assert all(not c.mutates for c in verify.commands)
    for step in steps:
        assert all(c.skip_if for c in step.commands if c.mutates), step.key


def test_the_first_member_can_be_the_target(tmp_path: Path) -> None:
    ctx, steps = plan_of(tmp_path, "m1.test")
    assert [s.key for s in steps][:3] == ["stop-m1.test", "remove-m1.test", "join-m1.test"]
    with pytest.raises(ValueError, match="target"):
        build_plan(replace(ctx, target=None), REPLACE)


def test_the_session_knows_its_target(tmp_path: Path) -> None:
    session = RecoverySession.open(RecoveryOptions(inventory(tmp_path), procedure="replace", target="m3.test"))
    assert session.procedure is REPLACE and session.target == "m3.test"
    with pytest.raises(InputError, match="no member 'm9' in the inventory"):
        RecoverySession.open(RecoveryOptions(inventory(tmp_path), procedure="replace", target="m9"))


def test_the_runbook_of_a_replace(tmp_path: Path) -> None:
    """`runbook --procedure replace --member MEMBER` renders the replace's own steps and checks, asked through
    another member."""
    from etcdrescue import cli
    from etcdrescue.commands.runbook import build

    inv = str(inventory(tmp_path))
    args = cli.build_parser().parse_args(["runbook", "-i", inv, "--procedure", "replace", "--member", "m1.test",
                                          "--stamp", "20261207T000000Z"])
    text, _ = build(args)
    assert text.startswith("# etcd member replacement runbook: unit")
    assert "- Seed: `m2.test`" in text and "| `m1.test` |" in text and "| replaced |" in text
    assert "really lost quorum" not in text and "keeps its quorum without `m1.test`" in text
    assert "### The quorum holds without `m1.test`" in text and "No backup" not in text
    assert "- [ ] unit replaced: every member healthy and a voter, one leader, no alarm" in text
    for title in ("Stop etcd on m1.test", "Remove m1.test's old entry from the member list",
                  "Add m1.test back as a learner, with empty data", "Promote m1.test to a voting member",
                  "Verify the whole cluster", "unit replaced: every member healthy"):
        assert title in text
    plan = build_plan(Context(load_inventory(inv).with_seed("m2.test"), None, Method.FORCE_NEW_CLUSTER,
                              "20261207T000000Z", target="m1.test"), REPLACE)
    assert_runs_the_plan(text, plan)
    for wrong in (["--procedure", "replace", "--member", "m1.test", "--backup", "/b"], ["--procedure", "replace"],
                  ["--member", "m1.test"]):
        with pytest.raises(InputError, match="--procedure replace takes --member MEMBER"):
            build(cli.build_parser().parse_args(["runbook", "-i", inv, *wrong]))


def test_the_lab_cli_offers_every_one_member_break() -> None:
    from etcdrescue.commands import lab as labcmd
    from etcdrescue.lab.data_breaks import MODES

    assert tuple(MODES) == labcmd.ONE_MEMBER


def test_the_report_of_a_replace() -> None:
    from etcdrescue.documents.report import parse_runs, render_markdown

    start = {"event": "run_start", "cluster": "c", "dry_run": False, "steps": ["stop-m3"], "seed": "m1",
             "stamp": "s", "backup": None, "method": "force-new-cluster", "backup_kind": "dir", "learners": True,
             "procedure": "replace", "mode": "replace m3: stopped, its old entry removed"}
    end = {"event": "run_end", "ok": True, "duration": 1.0}
    assert parse_runs([start, end])[0].result == "REPLACED"
    text = render_markdown([start, end], "c-s.jsonl")
    assert text.startswith("# etcd member replacement report: c-s.jsonl") and "**REPLACED**" in text
