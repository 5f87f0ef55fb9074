"""Pre-flight rules that depend on the etcd version.

A snapshot carries the storage version of the etcd that wrote it (3.6+); an older minor does not start on it
(measured: etcd 3.6.17 on a 3.7.4 snapshot restored by etcdutl 3.6.17 exits with `version "3.7.0" is not
supported`): such a backup is refused before anything changes, where both versions are known. A
`--force-new-cluster` on a patch that can keep members recorded in the data is said."""

from __future__ import annotations

import pytest

from etcdrescue.model import BackupKind, Method
from etcdrescue.platform.tools import Tool
from etcdrescue.preflight.verdict import BackupFacts, HostFacts, judge
from etcdrescue.probes import HostSurvey, SnapshotInfo, parse_snapshot_status

SURVEY = HostSurvey(manifest=True, disabled=False, conf=True, data_dir=True, member=True, member_kb=1000,
                    free_kb=900000, etcd_pid=None, client_port_open=False, peer_port_open=False,
                    etcdctl=Tool("/usr/bin/etcdctl", "3.6.17"), etcdutl=Tool("/usr/bin/etcdutl", "3.6.17"),
                    bash="5.2", tls=True)


def test_the_storage_version_is_read_from_etcdutl_json() -> None:
    """etcdutl 3.6.17's own output for snapshots of a 3.7.4, a 3.6.17 and a 3.5.36 server, and 3.5's (no field)."""
    assert parse_snapshot_status('{"hash":2265156252,"revision":2,"totalKey":1,"totalSize":20480,'
                                 '"version":"3.7.0"}').storage_version == "3.7.0"
    assert parse_snapshot_status('{"hash":3305130068,"revision":2,"totalKey":1,"totalSize":20480,'
                                 '"version":"3.6.0"}').storage_version == "3.6.0"
    assert parse_snapshot_status('{"hash":2900970876,"revision":2,"totalKey":1,"totalSize":24576,'
                                 '"version":""}').storage_version == ""
    assert parse_snapshot_status('{"hash":2900970876,"revision":2,"totalKey":7,"totalSize":24576}'
                                 ).storage_version == ""


def report(stored: str, server: str | None) -> tuple[str, ...]:
    hosts = tuple(HostFacts(f"m{i}", reachable=True, survey=SURVEY, server_version=server) for i in (1, 2, 3))
    backup = BackupFacts("/var/lib/etcd/snap.db", kind=BackupKind.FILE, size_kb=10, can_bump=True,
                         snapshot=SnapshotInfo(1, 501, 500, 20480, stored))
    return judge(hosts, seed="m1", quorum=2, data_dir="/var/lib/etcd", backup_path="/var/lib/etcd/snap.db",
                 backup=backup, method=Method.SNAPSHOT_RESTORE).problems


@pytest.mark.parametrize(("stored", "server", "refused"), [
    ("3.7.0", "3.6.17", True),
    ("3.6.0", "3.5.36", True),
    ("3.6.0", "3.6.17", False),
    ("3.6.0", "3.7.4", False),  # an older minor's data is upgraded by the newer etcd
    ("", "3.5.36", False),  # 3.5 and older record none
    ("3.7.0", None, False),  # okd3's manifest does not name the version: nothing to compare
])
def test_a_backup_of_a_newer_minor_is_refused(stored: str, server: str | None, refused: bool) -> None:
    problems = report(stored, server)
    if refused:
        assert server is not None
        assert problems == (
            f"backup /var/lib/etcd/snap.db: its data has storage version {stored} (written by etcd {stored[:3]}), "
            f"but etcd on m1 is {server} and does not start on data of a newer minor: restore it where etcd "
            f"{stored[:3]} runs, or first convert a copy with `etcdutl migrate --target-version {server[:3]}` "
            f"of etcd {stored[:3]}",)
    else:
        assert problems == ()


@pytest.mark.parametrize(("server", "warned"), [
    ("3.4.23", True), ("3.5.24", True), ("3.5.25", False), ("3.5.36", False), ("3.6.5", True), ("3.6.6", False),
    ("3.7.4", False), (None, False),
])
def test_a_force_new_cluster_that_can_keep_members_is_said(server: str | None, warned: bool) -> None:
    hosts = tuple(HostFacts(f"m{i}", reachable=True, survey=SURVEY, server_version=server) for i in (1, 2, 3))
    r = judge(hosts, seed="m1", quorum=2, data_dir="/var/lib/etcd", backup_path=None, backup=None,
              method=Method.FORCE_NEW_CLUSTER)
    said = [w for w in r.warnings if "--force-new-cluster can keep members" in w]
    assert said == ([f"m1 runs etcd {server}, whose --force-new-cluster can keep members recorded in the data "
                     "(fixed in 3.5.25 and 3.6.6, never in 3.4): the recovery removes stray learners from the seed's "
                     "member list, and its gate stops on any other member left"] if warned else [])
