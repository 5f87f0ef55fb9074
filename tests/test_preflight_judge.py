"""The pre-flight verdict from facts: table-driven, no hosts needed."""

from __future__ import annotations

import pytest

from etcdrescue.steps.base import Method
from etcdrescue.steps.preflight import BackupFacts, HostFacts, PreflightReport, judge

GOOD = {"manifest": "yes", "disabled": "no", "conf": "yes", "data_dir": "yes", "member": "yes",
        "member_kb": "1000", "free_kb": "900000", "etcdctl": "/usr/bin/etcdctl", "bash": "5.2", "tls": "yes"}


def report(*, healthy: int = 0, seed: dict[str, str] | None = None, conf_name: str = "",
           backup: BackupFacts | None = None) -> PreflightReport:
    hosts = [HostFacts(f"m{i}", reachable=True, survey=dict(GOOD), healthy=i <= healthy) for i in (1, 2, 3)]
    hosts[0].survey.update(seed or {})
    hosts[0].conf_name = conf_name
    return PreflightReport(hosts, seed="m1", quorum=2, backup=backup)


@pytest.mark.parametrize(("kw", "backup", "expect"), [
    ({}, None, None),
    ({"healthy": 2}, None, "cluster still has a healthy quorum (2/3"),
    ({"seed": {"free_kb": "0"}}, None, "not enough free disk"),
    ({"seed": {"member": "no"}}, None, "no member data to restore from"),
    ({"seed": {"manifest": "yes", "disabled": "yes"}}, None, "both in the pod dir and the disabled dir"),
    ({"seed": {"tls": "no"}}, None, "TLS files"),
    ({}, BackupFacts("/b", kind="missing", error="backup /b not found on m1"), "backup /b not found"),
    ({}, BackupFacts("/b", kind="dir", size_kb=800000), "not enough free disk"),
])
def test_verdicts(kw: dict, backup: BackupFacts | None, expect: str | None) -> None:  # type: ignore[type-arg]
    r = report(**kw, backup=backup)
    judge(r, "/var/lib/etcd", backup="/b" if backup else None, method=Method.SNAPSHOT_RESTORE)
    if expect is None:
        assert r.ok, r.problems
    else:
        assert any(expect in p for p in r.problems), r.problems


def test_resuming_accepts_a_quorum_already_back() -> None:
    r = report(healthy=3)
    judge(r, "/var/lib/etcd", backup=None, method=Method.FORCE_NEW_CLUSTER, resuming=True)
    assert r.ok


def test_a_differing_etcd_name_is_a_warning_not_a_refusal() -> None:
    r = report(conf_name="old-name")
    judge(r, "/var/lib/etcd", backup=None, method=Method.FORCE_NEW_CLUSTER)
    assert r.ok and any("ETCD_NAME=old-name" in w for w in r.warnings)
