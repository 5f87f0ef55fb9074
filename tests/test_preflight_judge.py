"""The pre-flight verdict from typed facts: table-driven, no hosts needed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from etcdrescue.etcddata.freshness import Freshness
from etcdrescue.model import BackupKind, Method, RevisionPath
from etcdrescue.platform import PLATFORMS, ManifestProblem, Severity
from etcdrescue.platform.tools import EtcdTools, Tool
from etcdrescue.preflight.verdict import (
    BackupFacts,
    HostFacts,
    PreflightReport,
    RevisionOptions,
    SeedChoice,
    choose_tools,
    judge,
)
from etcdrescue.probes import HostSurvey, SnapshotInfo

GOOD = HostSurvey(manifest=True, disabled=False, conf=True, data_dir=True, member=True, member_kb=1000,
                  free_kb=900000, etcd_pid=None, client_port_open=False, peer_port_open=False,
                  etcdctl=Tool("/usr/bin/etcdctl", "3.4.23"), etcdutl=None, bash="5.2", tls=True)


def verdict(*, healthy: int = 0, seed: dict[str, Any] | None = None, conf_name: str = "",
            problem: ManifestProblem | None = None, backup: BackupFacts | None = None,
            method: Method = Method.SNAPSHOT_RESTORE, resuming: bool = False) -> PreflightReport:
    hosts = [HostFacts(f"m{i}", reachable=True, survey=GOOD, healthy=i <= healthy) for i in (1, 2, 3)]
    hosts[0] = replace(hosts[0], survey=replace(GOOD, **(seed or {})), conf_name=conf_name,
                       manifest_problem=problem, manifest_path="/etc/origin/node/pod/etcd.yaml")
    return judge(tuple(hosts), seed="m1", quorum=2, data_dir="/var/lib/etcd", backup_path="/b" if backup else None,
                 backup=backup, method=method, resuming=resuming)


FLAG_PROBLEM = ManifestProblem("expected one `exec etcd` line to edit, found 0", Severity.FLAG_EDIT)


@pytest.mark.parametrize(("kw", "expect"), [
    ({}, None),
    ({"healthy": 2}, "cluster still has a healthy quorum (2/3"),
    ({"seed": {"free_kb": 0}}, "not enough free disk"),
    ({"seed": {"member": False}}, "no member data to restore from"),
    ({"seed": {"manifest": True, "disabled": True}}, "both in the pod dir and the disabled dir"),
    ({"seed": {"manifest": False, "disabled": False}}, "etcd manifest missing"),
    ({"seed": {"tls": False}}, "TLS files"),
    ({"backup": BackupFacts("/b", error="backup /b not found on m1")}, "backup /b not found"),
    ({"backup": BackupFacts("/b", kind=BackupKind.DIR, size_kb=800000)}, "not enough free disk"),
    ({"problem": ManifestProblem("malformed YAML (x)", Severity.ALWAYS)}, "malformed YAML"),
    ({"problem": FLAG_PROBLEM}, None),
    ({"problem": FLAG_PROBLEM, "method": Method.FORCE_NEW_CLUSTER}, "expected one `exec etcd` line"),
    ({"healthy": 3, "resuming": True}, None),
])
def test_verdicts(kw: dict[str, Any], expect: str | None) -> None:
    r = verdict(**kw)
    if expect is None:
        assert r.ok, r.problems
    else:
        assert any(expect in p for p in r.problems), r.problems


def test_a_differing_etcd_name_is_a_warning_not_a_refusal() -> None:
    r = verdict(conf_name="old-name", method=Method.FORCE_NEW_CLUSTER)
    assert r.ok and any("etcd.conf names the member old-name" in w for w in r.warnings)


def test_an_unreachable_host_is_refused_with_its_error() -> None:
    hosts = (HostFacts("m1", error="m1: connection refused"), HostFacts("m2", reachable=True, survey=GOOD),
             HostFacts("m3", reachable=True, survey=GOOD))
    r = judge(hosts, seed="m1", quorum=2, data_dir="/d", backup_path=None, backup=None,
              method=Method.FORCE_NEW_CLUSTER)
    assert r.problems == ("m1: connection refused",)


PATHS = PLATFORMS["okd3"].default_paths


def facts(*tools: tuple[Tool | None, Tool | None], server: str | None = None) -> tuple[HostFacts, ...]:
    return tuple(HostFacts(f"m{i}", reachable=True, survey=replace(GOOD, etcdctl=ctl, etcdutl=util),
                           server_version=server) for i, (ctl, util) in enumerate(tools, 1))


ON_PATH = Tool("/usr/bin/etcdctl", "3.5.1")
UTIL = Tool("/usr/bin/etcdutl", "3.5.1")


@pytest.mark.parametrize(("hosts", "restores", "etcdctl", "etcdutl", "problem"), [
    (facts((ON_PATH, UTIL), (ON_PATH, None), (ON_PATH, None)), True, "etcdctl", "etcdutl", ""),
    (facts((ON_PATH, None), (ON_PATH, None)), True, "etcdctl", "", ""),
    (facts((Tool("/opt/bin/etcdctl", "3.4.23", on_path=False), None),
           (Tool("/opt/bin/etcdctl", "3.4.23", on_path=False), None)), True, "/opt/bin/etcdctl", "", ""),
    (facts((ON_PATH, None), (None, None)), False, None, None, "m2: etcdctl not found"),
    (facts((Tool("/opt/bin/etcdctl", "3.4.23", on_path=False), None), (Tool("/x/etcdctl", "3.4.23", False), None)),
     False, None, None, "sits at different places"),
    (facts((Tool("/usr/bin/etcdctl", "3.6.4"), None)), True, None, None, "cannot restore snapshots"),
    (facts((Tool("/usr/bin/etcdctl", "3.6.4"), None)), False, "etcdctl", "", ""),
])
def test_tool_choice(hosts: tuple[HostFacts, ...], restores: bool, etcdctl: str | None, etcdutl: str | None,
                     problem: str) -> None:
    choice = choose_tools(hosts, PATHS, seed="m1", uploaded=None, restores=restores)
    if problem:
        assert choice.tools is None and any(problem in p for p in choice.problems), choice.problems
    else:
        assert choice.tools is not None and not choice.problems, choice.problems
        assert (choice.tools.etcdctl, choice.tools.etcdutl) == (etcdctl, etcdutl)


def test_tool_version_against_the_server() -> None:
    """Hosts' own tools of another minor are a warning; uploaded ones are refused."""
    hosts = facts((Tool("/usr/bin/etcdctl", "3.4.23"), None), server="3.5.15")
    choice = choose_tools(hosts, PATHS, seed="m1", uploaded=None, restores=True)
    assert choice.tools is not None and choice.warnings == ("m1: etcdctl 3.4.23 with etcd 3.5.15",)
    uploaded = EtcdTools(PATHS, "/var/lib/etcdrescue/tools/3.4.23/etcdctl")
    refused = choose_tools(hosts, PATHS, seed="m1", uploaded=uploaded, uploaded_version="3.4.23", restores=True)
    assert refused.tools is None and "the uploaded etcdctl is 3.4.23, but etcd there runs 3.5.15" in refused.problems[0]
    ok = choose_tools(hosts, PATHS, seed="m1", uploaded=uploaded, uploaded_version="3.5.1", restores=True)
    assert ok.tools is uploaded and not ok.problems


def fresh(index: int, revision: int) -> Freshness:
    return Freshness(consistent_index=index, revision=revision, db_term=None, wal_commit=index, wal_term=None,
                     wal_last_index=index)


def survivors(*data: tuple[int, int] | None) -> tuple[HostFacts, ...]:
    return tuple(HostFacts(f"m{i}", reachable=True, survey=GOOD, freshness=fresh(*d) if d else None)
                 for i, d in enumerate(data, 1))


def quorum_restore(hosts: tuple[HostFacts, ...], seed: str = "m1", **choice: bool) -> PreflightReport:
    return judge(hosts, seed=seed, quorum=2, data_dir="/d", backup_path=None, backup=None,
                 method=Method.FORCE_NEW_CLUSTER, choice=SeedChoice(**choice))


def test_quorum_restore_takes_the_freshest_member_as_seed() -> None:
    r = quorum_restore(survivors((100, 50), (180, 90), (120, 60)))
    assert r.ok and r.seed == "m2"
    assert r.seed_reason == "m2 has the most recent data (raft index 180, revision 90)"
    tied = quorum_restore(survivors((100, 50), (180, 90), (180, 90)))
    assert tied.seed == "m2" and "tied; first in the inventory" in tied.seed_reason


def test_an_older_seed_is_refused_unless_accepted() -> None:
    hosts = survivors((100, 50), (180, 90), None)
    refused = quorum_restore(hosts, explicit=True)
    assert refused.problems == ("m1: its data is behind m2 by 80 raft entries and 40 revisions: a quorum restore "
                                "from it loses them; use --seed m2, or --accept-older-seed",)
    accepted = quorum_restore(hosts, explicit=True, accept_older=True)
    assert accepted.ok and accepted.seed == "m1" and "accepted although" in accepted.seed_reason
    chosen_fresh = quorum_restore(hosts, seed="m2", explicit=True)
    assert chosen_fresh.ok and chosen_fresh.seed == "m2"


def test_a_backup_older_than_a_survivor_is_a_warning() -> None:
    hosts = survivors((100, 700), None, None)
    backup = BackupFacts("/b", kind=BackupKind.FILE, size_kb=10,
                         snapshot=SnapshotInfo(hash=1, revision=501, total_keys=500, total_size=1), can_bump=True)
    r = judge(hosts, seed="m1", quorum=2, data_dir="/d", backup_path="/b", backup=backup,
              method=Method.SNAPSHOT_RESTORE)
    assert r.ok and r.seed == "m1"
    assert r.warnings == ("m1 holds revision 700, the backup 501: restoring it loses 199 revisions; a quorum "
                          "restore from m1 (no --backup, --seed m1) keeps them",)


def restore(can_bump: bool, method: Method = Method.SNAPSHOT_RESTORE, **options: Any) -> PreflightReport:
    backup = BackupFacts("/b", kind=BackupKind.FILE, size_kb=10,
                         snapshot=SnapshotInfo(hash=1, revision=501, total_keys=500, total_size=1), can_bump=can_bump)
    return judge(survivors(None, None, None), seed="m1", quorum=2, data_dir="/d", backup_path="/b", backup=backup,
                 method=method, revision_options=RevisionOptions(**options))


def test_a_restore_bumps_revisions_where_the_tool_can() -> None:
    r = restore(True)
    assert r.ok and r.revisions.path is RevisionPath.BUMPED and r.revisions.bump == 1_000_000_000
    assert not r.revisions.restart_control_plane and r.revisions.restart_by_hand == ()
    assert restore(True, bump=5000).revisions.bump == 5000


def test_without_the_flags_revisions_go_back_and_the_control_plane_restarts() -> None:
    r = restore(False)
    assert r.ok and r.revisions.path is RevisionPath.BACKWARDS and r.revisions.bump == 0
    assert r.revisions.restart_control_plane
    assert any("revisions will go backwards" in w and "restarts the API servers" in w for w in r.warnings)
    assert "the kubelet on every node" in r.revisions.restart_by_hand
    by_hand = restore(False, restart_control_plane=False)
    assert not by_hand.revisions.restart_control_plane
    assert by_hand.revisions.restart_by_hand[0].startswith("the API servers")


def test_an_asked_for_bump_the_tool_cannot_do_is_refused() -> None:
    r = restore(False, bump=5000)
    assert r.problems == ("--bump-revision 5000: etcdctl snapshot restore has no --bump-revision (etcdctl >= 3.4.27, "
                          "etcdutl >= 3.5.10): give --etcd-tools DIR with such tools, or drop --bump-revision",)
    copy = restore(True, Method.FORCE_NEW_CLUSTER, bump=5000)
    assert copy.problems == ("--bump-revision needs --method snapshot-restore (force-new-cluster copies the data dir)",)
    assert restore(True, Method.FORCE_NEW_CLUSTER).revisions.path is RevisionPath.BACKWARDS
    never = restore(True, bump=0)
    assert never.ok and never.revisions.path is RevisionPath.BACKWARDS
    assert never.revisions.why.startswith("--bump-revision 0; compared: backup at revision ")


def test_a_quorum_restore_keeps_revisions_unless_the_seed_is_behind() -> None:
    hosts = survivors((100, 50), (180, 90), None)
    assert quorum_restore(hosts).revisions.path is RevisionPath.CONTINUES
    older = quorum_restore(hosts, explicit=True, accept_older=True).revisions
    assert older.path is RevisionPath.BACKWARDS and older.restart_control_plane


@pytest.mark.parametrize(("path", "refused"), [
    ("/d/member/snap/db", True), ("/d/member", True), ("/d//member/../member/snap", True),
    ("/d/openshift-backup-1", False), ("/d/member-backup/db", False), ("/elsewhere/member/snap/db", False),
])
def test_a_backup_inside_the_live_member_dir_is_refused(path: str, refused: bool) -> None:
    """The restore runs while the stop gate settles, when etcd may still write its member dir."""
    backup = BackupFacts(path, kind=BackupKind.FILE, size_kb=10,
                         snapshot=SnapshotInfo(hash=1, revision=501, total_keys=500, total_size=1), can_bump=True)
    r = judge(survivors(None, None, None), seed="m1", quorum=2, data_dir="/d/", backup_path=path, backup=backup,
              method=Method.SNAPSHOT_RESTORE)
    problem = f"backup {path} is inside the live data dir /d/member: copy it elsewhere first"
    assert (problem in r.problems) is refused and r.ok is not refused, r.problems


def restore_over(*data: tuple[int, int] | None, can_bump: bool = False, **options: Any) -> PreflightReport:
    """A restore of a backup at revision 501 over survivors holding `data` (raft index, revision)."""
    backup = BackupFacts("/b", kind=BackupKind.FILE, size_kb=10,
                         snapshot=SnapshotInfo(hash=1, revision=501, total_keys=500, total_size=1), can_bump=can_bump)
    return judge(survivors(*data), seed="m1", quorum=2, data_dir="/d", backup_path="/b", backup=backup,
                 method=Method.SNAPSHOT_RESTORE, revision_options=RevisionOptions(**options))


@pytest.mark.parametrize("can_bump", [False, True])
def test_a_backup_at_or_above_every_survivor_keeps_revisions(can_bump: bool) -> None:
    """The data decides: no restart of the control plane and nothing to restart by hand, where nothing went back."""
    for survivor in (501, 400):
        r = restore_over((900, survivor), None, (800, 300), can_bump=can_bump).revisions
        assert r.path is RevisionPath.CONTINUES, r
        assert not r.restart_control_plane and r.restart_by_hand == () and r.bump == 0
        assert r.why == f"the backup is at or above every survivor's revision; compared: backup at revision 501, " \
                        f"newest survivor m1 at {survivor}"


def test_a_backup_below_a_survivor_says_which_revisions_it_compared() -> None:
    back = restore_over((900, 300), (950, 502)).revisions
    assert back.path is RevisionPath.BACKWARDS and back.restart_control_plane
    assert back.why.endswith("compared: backup at revision 501, newest survivor m2 at 502"), back.why
    bumped = restore_over((900, 300), (950, 502), can_bump=True).revisions
    assert bumped.path is RevisionPath.BUMPED and bumped.why.endswith("newest survivor m2 at 502")
    asked = restore_over((900, 600), can_bump=True, bump=5000).revisions
    assert asked.path is RevisionPath.BUMPED and asked.bump == 5000, "an asked-for bump is the operator's call"


def test_members_serving_under_an_alarm_are_a_working_cluster() -> None:
    """etcdctl 3.5+ calls a member with the NOSPACE alarm unhealthy: it still has a leader and serves reads. A quorum
    of them is a working cluster (reclaim-space's, not a recovery's): stopping it would make things worse."""
    alarm = "Active Alarm(s): NOSPACE"
    hosts = tuple(HostFacts(f"m{i}", reachable=True, survey=GOOD, health_error=alarm) for i in (1, 2, 3))
    r = judge(hosts, seed="m1", quorum=2, data_dir="/var/lib/etcd", backup_path=None, backup=None,
              method=Method.FORCE_NEW_CLUSTER)
    assert not r.ok
    assert r.problems[0].startswith("cluster still has a healthy quorum (3/3 members serving)")
    assert "serving with an alarm: m1, m2, m3" in r.problems[0]
