"""reclaim-space offline: its pre-flight rules on typed facts (table-driven), its plan's order and undo, the space
rules it judges by, and the session's door for `--force` and `--quota`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_preflight_judge import GOOD
from test_resume_unit import inventory

from etcdrescue.inventory.model import load_inventory
from etcdrescue.model import BackupKind, Context, Method, Revisions
from etcdrescue.plan import build_plan
from etcdrescue.platform import PLATFORMS
from etcdrescue.platform.tools import EtcdTools
from etcdrescue.preflight.cluster import ClusterFacts
from etcdrescue.preflight.options import RecoveryOptions
from etcdrescue.preflight.verdict import HostFacts, PreflightReport, ToolChoice
from etcdrescue.probes import Alarm, AlarmKind, EndpointStatus, MemberInfo, parse_alarm_list
from etcdrescue.procedures import named
from etcdrescue.procedures.reclaim import RECLAIM_SPACE, judge
from etcdrescue.session import RecoverySession
from etcdrescue.space import DEFAULT_QUOTA, effective_quota, only_nospace, reclaimable, room_problem
from etcdrescue.steps.space import RoomCheck

DATA = Path(__file__).parent / "data"
IDS = {"m1": 11, "m2": 12, "m3": 13}
QUOTA = 1_000_000
TOOLS = ToolChoice(EtcdTools(PLATFORMS["okd3"].default_paths))


def status(name: str, *, db: int = 400_000, in_use: int = 380_000, leader: str = "m2") -> EndpointStatus:
    return EndpointStatus(f"https://{name}:2379", IDS[name], IDS[leader], 100, 100, 50, db, "3.5.36",
                          db_size_in_use=in_use)


def facts(*, alarms: tuple[AlarmKind, ...] = (AlarmKind.NOSPACE,), db: int = 400_000, in_use: int = 380_000,
          silent: str = "", listed: tuple[str, ...] = ("m1", "m2", "m3")) -> ClusterFacts:
    members = tuple(MemberInfo(IDS[n], n, (f"https://{n}:2380",), (f"https://{n}:2379",)) for n in listed)
    statuses = tuple(status(n, db=db, in_use=in_use) for n in listed if n != silent)
    return ClusterFacts("m1", members, statuses, tuple(Alarm(IDS["m1"], kind) for kind in alarms))


def verdict(cluster: ClusterFacts | None = None, *, quota: int | None = None, force: bool = False,
            resuming: bool = False, limits: int = QUOTA, **kw: Any) -> PreflightReport:
    hosts = tuple(HostFacts(n, reachable=True, survey=GOOD, health_error="Active Alarm(s): NOSPACE ", quota=limits)
                  for n in ("m1", "m2", "m3"))
    return judge(hosts, seed="m1", quorum=2, data_dir="/var/lib/etcd", backup_path=None, backup=None,
                 method=Method.SNAPSHOT_RESTORE, resuming=resuming, tools=TOOLS,
                 cluster=facts(**kw) if cluster is None else cluster, quota=quota, force=force)


@pytest.mark.parametrize(("kw", "expect"), [
    ({}, None),
    ({"alarms": ()}, "no NOSPACE alarm and nothing worth reclaiming"),
    ({"alarms": (), "force": True}, None),
    ({"alarms": (), "in_use": 100_000}, None),
    ({"alarms": (), "resuming": True}, None),
    ({"alarms": (AlarmKind.NOSPACE, AlarmKind.CORRUPT)}, "a CORRUPT alarm is raised"),
    ({"silent": "m3"}, "m3: no status (etcd down?)"),
    ({"listed": ("m1", "m2")}, "the member list differs from the inventory (missing: m3"),
    ({"quota": QUOTA}, f"--quota {QUOTA}: not above m1's quota"),
    ({"quota": 4 * QUOTA}, None),
    ({"quota": 4 * QUOTA, "alarms": ()}, None),
], ids=["nospace", "nothing-to-do", "forced", "fragmented", "resumed", "corrupt", "member-down", "member-missing",
        "quota-not-above", "quota", "quota-alone"])
def test_the_rules(kw: dict[str, Any], expect: str | None) -> None:
    r = verdict(**kw)
    if expect is None:
        assert r.ok, r.problems
        assert r.tools is not None and r.verdict.endswith("disarm, verify)")
    else:
        assert not r.ok and r.tools is None
        assert any(expect in p for p in r.problems), r.problems


def test_without_a_quorum_it_is_recovers_job() -> None:
    hosts = tuple(HostFacts(n, reachable=True, survey=GOOD) for n in ("m1", "m2", "m3"))
    r = judge(hosts, seed="m1", quorum=2, data_dir="/var/lib/etcd", tools=TOOLS, cluster=None)
    assert not r.ok and "`etcdrescue recover`" in r.problems[0]


def test_the_leader_becomes_the_seed_and_the_verdict_says_why() -> None:
    r = verdict()
    assert r.seed == "m2" and "m2 is the leader" in r.seed_reason
    assert "the compaction drops only the history" in r.revisions.explained
    assert r.verdict.startswith("NOSPACE alarm raised: reclaim-space can start")
    resumed = verdict(resuming=True)
    assert resumed.seed == "m1", "a resumed run keeps the order its journal names"


def test_near_the_quota_it_says_defragmenting_may_not_help_and_names_the_way_out() -> None:
    full = verdict(in_use=900_000, db=950_000)
    assert full.ok and any("--quota BYTES" in w and "m1 878.9 KiB of 976.6 KiB" in w for w in full.warnings)
    assert not any("--quota" in w for w in verdict(quota=4 * QUOTA, in_use=900_000).warnings)
    assert any("recommended maximum" in w for w in verdict(quota=9 * 1024**3).warnings)


def context(tmp_path: Path, quota: int | None = None) -> Context:
    inv = load_inventory(inventory(tmp_path)).with_seed("m2.test")  # the pre-flight makes the leader the seed
    return Context(inv, None, Method.FORCE_NEW_CLUSTER, "20260101T000000Z", quota=quota)


def test_followers_first_the_leader_last(tmp_path: Path) -> None:
    plan = build_plan(context(tmp_path), RECLAIM_SPACE)
    assert [s.key for s in plan.steps] == ["compact", "defrag-m1.test", "defrag-m3.test", "defrag-m2.test", "room",
                                           "disarm", "verify"]
    assert plan.procedure == "reclaim-space" and "then the leader m2.test" in plan.mode
    defrags = [s for s in plan.steps if s.key.startswith("defrag-")]
    assert [s.commands[0].host for s in defrags] == ["m1.test", "m3.test", "m2.test"]
    assert "the leader, last" in defrags[-1].title
    assert all(s.gate is not None for s in defrags)


def test_the_quota_steps_come_after_the_room_check_one_member_at_a_time(tmp_path: Path) -> None:
    plan = build_plan(context(tmp_path, quota=8_000_000), RECLAIM_SPACE)
    keys = [s.key for s in plan.steps]
    assert keys[4:8] == ["room", "quota-m1.test", "quota-m3.test", "quota-m2.test"]
    step = plan.step("quota-m1.test")
    assert step.destructive and "8000000 bytes" in step.destructive
    assert step.undo and any("put the original etcd.conf back" in c.purpose for c in step.undo)
    assert {c.host for c in step.commands} == {"m1.test"}
    assert all(c.skip_if for c in step.commands if c.mutates), "every change has its already-done probe"
    assert "ETCD_QUOTA_BACKEND_BYTES=8000000" in " ".join(c.script for c in step.commands)


def test_what_cannot_be_undone_says_so_and_every_change_is_probed(tmp_path: Path) -> None:
    plan = build_plan(context(tmp_path), RECLAIM_SPACE)
    assert "cannot be undone" in plan.step("compact").undo_note
    assert "cannot be undone" in plan.step("defrag-m1.test").undo_note
    assert all(c.skip_if for s in plan.steps for c in s.commands if c.mutates)
    assert not any(c.mutates for c in plan.step("room").commands + plan.step("verify").commands)


@pytest.mark.parametrize(("raw", "bytes_"), [(None, DEFAULT_QUOTA), ("0", DEFAULT_QUOTA), ("8589934592", 8 * 1024**3),
                                             ("-1", -1), ("junk", DEFAULT_QUOTA)])
def test_the_quota_etcd_runs_with(raw: str | None, bytes_: int) -> None:
    assert effective_quota(raw) == bytes_


@pytest.mark.parametrize(("db", "in_use", "free"), [(1000_000, 100_000, 900_000), (1000_000, 900_000, 0),
                                                    (100_000, 50_000, 0), (10**9, 7 * 10**8, 3 * 10**8)])
def test_what_a_defragmentation_gives_back(db: int, in_use: int, free: int) -> None:
    assert reclaimable(db, in_use) == free


def test_only_the_nospace_alarm_is_excused() -> None:
    assert only_nospace("Active Alarm(s): NOSPACE ")
    assert not only_nospace("Active Alarm(s): NOSPACE CORRUPT ")
    assert not only_nospace("context deadline exceeded")
    assert parse_alarm_list((DATA / "nospace_alarm_list.json").read_text())[0].kind is AlarmKind.NOSPACE


def test_the_room_check_reads_the_quota_from_the_settings(tmp_path: Path) -> None:
    st = json.dumps([{"Endpoint": "x", "Status": {"dbSize": 590_000, "dbSizeInUse": 580_000}}])
    parse = context(tmp_path).platform.settings.parse_values
    full = RoomCheck(parse, None, "m1.test")
    out = "ETCD_NAME=m1.test\nETCD_QUOTA_BACKEND_BYTES=600000\n#etcdrescue: status follows#\n" + st
    assert "defragmenting could not help: the db is 576.2 KiB of a 585.9 KiB quota" in (full(out) or "")
    assert RoomCheck(parse, 8_000_000, "m1.test")(out) is None, "judged by the new quota"
    assert full(out.replace("600000", "0")) is None, "unset: etcd's default 2 GiB"
    assert "no status" in (room_problem("m1.test", "Error: context deadline exceeded", QUOTA) or "")
    kubeadm = PLATFORMS["kubeadm"].build(PLATFORMS["kubeadm"].default_paths).settings.parse_values
    assert "could not be read" in (RoomCheck(kubeadm, None, "m1.test")("kind: [\n" + out[out.index("#etc"):]) or "")


def test_the_session_hands_force_and_quota_to_the_rules(tmp_path: Path) -> None:
    session = RecoverySession.open(RecoveryOptions(inventory(tmp_path), procedure="reclaim-space", force=True,
                                                   quota=5_000_000))
    assert session.procedure is named("reclaim-space")
    rules: Any = session.rules
    assert rules.keywords == {"force": True, "quota": 5_000_000}
    assert session.context(BackupKind.DIR, Revisions()).quota == 5_000_000
    assert RecoverySession.open(RecoveryOptions(inventory(tmp_path))).rules is named("recover").judge


def test_a_resume_keeps_its_course(tmp_path: Path) -> None:
    """`reclaim-space --resume` without the `--quota` the run had would start elsewhere: refused."""
    from test_resume_unit import unfinished

    from etcdrescue.commands.reclaim import same_course
    from etcdrescue.errors import InputError

    steps = tuple(s.key for s in build_plan(context(tmp_path, quota=8_000_000), RECLAIM_SPACE).steps)
    u = replace(unfinished(), procedure="reclaim-space", steps=steps, done=steps[:6], seed="m2.test")
    plain = RecoverySession.open(RecoveryOptions(inventory(tmp_path), procedure="reclaim-space"))
    with pytest.raises(InputError, match="resume with the options it ran with"):
        same_course(plain, u)
    journal = tmp_path / "unit-x.jsonl"
    ctx = context(tmp_path, quota=8_000_000)
    journal.write_text(json.dumps({"event": "run_start", "mode": RECLAIM_SPACE.mode(ctx)}) + "\n")
    midway = replace(u, path=journal, done=steps[:6])  # one member's quota raised already
    with pytest.raises(InputError, match="raised quotas already"):
        same_course(RecoverySession.open(RecoveryOptions(inventory(tmp_path), procedure="reclaim-space",
                                                         quota=9_000_000)), midway)
    same_course(RecoverySession.open(RecoveryOptions(inventory(tmp_path), procedure="reclaim-space",
                                                     quota=8_000_000)), midway)
    early = replace(u, done=steps[:4])  # stopped before the room check: the quota may come now
    same_course(RecoverySession.open(RecoveryOptions(inventory(tmp_path), procedure="reclaim-space",
                                                     quota=9_000_000)), replace(early, steps=steps[:5] + steps[8:]))


def test_the_runbook_renders_the_same_steps(tmp_path: Path) -> None:
    """`etcdrescue runbook --procedure reclaim-space` prints the plan the engine runs: no connection needed."""
    from etcdrescue.cli import build_parser
    from etcdrescue.commands.runbook import build

    args = build_parser().parse_args(["runbook", "-i", str(inventory(tmp_path)), "--procedure", "reclaim-space",
                                      "--seed", "m2.test", "--quota", "8000000", "--stamp", "20260101T000000Z"])
    text, _ = build(args)
    assert text.startswith("# etcd reclaim-space runbook: unit")
    titles = [line for line in text.splitlines() if line.startswith("### Step ")]
    assert [t.split(": ", 1)[1] for t in titles][:4] == [
        "Compact etcd's history up to the current revision", "Defragment m1.test (1 of 3)",
        "Defragment m3.test (2 of 3)", "Defragment m2.test (3 of 3, the leader, last)"]
    assert "Raise m1.test's quota to 7.6 MiB" in text and "alarm disarm" in text
    assert "A compaction cannot be undone" in text


class Configs:
    """A host set that serves one settings text (okd3's etcd.conf) or manifest (kubeadm) to `read_config`."""

    def __init__(self, tmp_path: Path, profile: str, text: str, manifest: str) -> None:
        inv = Path(inventory(tmp_path))
        inv.write_text(inv.read_text().replace("profile: okd3", f"profile: {profile}"))
        self.inv = load_inventory(inv)
        self.text = text
        self.manifest = manifest

    def __getitem__(self, name: str) -> Configs:
        return self

    def read_file(self, path: str) -> bytes:
        return self.manifest.encode()

    def fact(self, name: str, fact: Any) -> Any:
        return fact.parse(self.text)


@pytest.mark.parametrize(("profile", "line", "quota"), [
    ("okd3", "ETCD_QUOTA_BACKEND_BYTES=8589934592", 8 * 1024**3),
    ("okd3", "#ETCD_QUOTA_BACKEND_BYTES=1", DEFAULT_QUOTA),
    ("kubeadm", "    - --quota-backend-bytes=600000", 600_000),
    ("kubeadm", "", DEFAULT_QUOTA),
])
def test_the_survey_reads_each_members_quota_in_its_platforms_terms(tmp_path: Path, profile: str, line: str,
                                                                     quota: int) -> None:
    from etcdrescue.lab.okd3 import manifest
    from etcdrescue.preflight.survey import read_config

    if profile == "okd3":
        text, pod = f"ETCD_NAME=m1.test\n{line}\n", manifest()
    else:
        snapshots = "    - --snapshot-count=10000\n"
        text = pod = (DATA / "kubeadm" / "v1.34-init.yaml").read_text().replace(snapshots, snapshots + line + "\n"
                                                                                 if line else snapshots)
    hosts = Configs(tmp_path, profile, text, pod)
    got = read_config(hosts, hosts.inv.members[0], GOOD)  # type: ignore[arg-type]
    assert got["quota"] == quota


def test_a_member_healthy_but_for_its_nospace_alarm_serves() -> None:
    """etcdctl 3.5+ calls every member unhealthy while the alarm stands: the cluster's view is still asked of it."""
    alarmed = HostFacts("m1", reachable=True, survey=GOOD, health_error="Active Alarm(s): NOSPACE ")
    assert alarmed.serves and not alarmed.healthy
    assert not HostFacts("m1", reachable=True, survey=GOOD, health_error="no leader").serves
