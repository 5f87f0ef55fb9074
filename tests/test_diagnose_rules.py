"""`diagnose` without a lab: the log signatures on etcd's own words, and the verdict's rules on facts."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from etcdrescue.diagnose.certs import CertFact, CertRole
from etcdrescue.diagnose.facts import MemberLook, Process
from etcdrescue.diagnose.signatures import Cause, classify
from etcdrescue.diagnose.verdict import Remedy, diagnose
from etcdrescue.inventory.model import parse_inventory
from etcdrescue.preflight.cluster import ClusterFacts
from etcdrescue.preflight.verdict import HostFacts
from etcdrescue.probes import Alarm, AlarmKind, EndpointStatus, MemberInfo

LINES = {
    Cause.ALREADY_BOOTSTRAPPED: '{"level":"fatal","msg":"discovery failed","error":"member 8e9e05c52164694d has '
                                'already been bootstrapped"}',
    Cause.TOCOMMIT_OUT_OF_RANGE: 'panic: tocommit(2195) is out of range [lastIndex(0)]. Was the raft log corrupted, '
                                 'truncated, or lost?',
    Cause.SPACE_EXCEEDED: '{"level":"warn","msg":"failed to apply request","error":"mvcc: database space exceeded"}',
    Cause.CERT_EXPIRED: 'rejected connection from "127.0.243.2:40312" (error "x509: certificate has expired or is '
                        'not yet valid: current time 2026-12-07T19:30:00Z is after 2026-12-06T19:17:20Z")',
    Cause.CERT_UNKNOWN_AUTHORITY: 'tls: failed to verify certificate: x509: certificate signed by unknown authority',
    Cause.WAL_CORRUPT: "2026-12-07 19:25:42.795916 C | etcdmain: wal: max entry size limit exceeded",
    Cause.FLAG_UNDEFINED: "flag provided but not defined: -experimental-initial-corrupt-check",
    Cause.REMOVED_ALL_VOTERS: "panic: removed all voters",
    Cause.ADDRESS_IN_USE: 'listen tcp 127.0.243.1:2380: bind: address already in use',
    Cause.DISK_FULL: 'write /var/lib/etcd/member/wal/0.tmp: no space left on device',
}


@pytest.mark.parametrize("cause", list(Cause))
def test_each_known_cause_is_recognised_in_its_own_words(cause: Cause) -> None:
    log = f"2026-12-07 19:25:42 I | embed: name = m1\n{LINES[cause]}\nUsage:\n  etcd [flags]\n"
    assert [f.cause for f in classify(log)] == [cause]


def test_a_quiet_log_has_no_cause_and_the_newest_line_is_the_evidence() -> None:
    assert classify("I | etcdserver: published {Name:m1} to cluster\n") == ()
    log = "flag provided but not defined: -a\nflag provided but not defined: -experimental-b\n"
    (found,) = classify(log)
    assert found.detail == "flag provided but not defined: -experimental-b"


def test_a_finding_says_its_cause_once() -> None:
    """A line that starts with the cause's own words is shown alone; any other gets the cause in front."""
    (flag,) = classify(LINES[Cause.FLAG_UNDEFINED])
    assert flag.words == "flag provided but not defined: -experimental-initial-corrupt-check"
    (wal,) = classify(LINES[Cause.WAL_CORRUPT])
    assert wal.words == f"{Cause.WAL_CORRUPT.value}: {wal.line}"


INV = parse_inventory({"cluster": "t", "members": [
    {"name": f"m{i}", "host": f"127.0.9.{i}", "peer_url": f"https://127.0.9.{i}:2380",
     "client_url": f"https://127.0.9.{i}:2379"} for i in (1, 2, 3)]})
NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
IDS = {"m1": 0xA1, "m2": 0xB2, "m3": 0xC3}


def look(name: str, *, healthy: bool = True, log: str = "", expired: bool = False) -> MemberLook:
    end = NOW - dt.timedelta(days=1) if expired else NOW + dt.timedelta(days=900)
    return MemberLook(HostFacts(name, reachable=True, healthy=healthy), Process(1 if healthy else None), log,
                      classify(log), (), (CertFact(CertRole.PEER, "/etc/etcd/peer.crt", end),))


def cluster(*, alarms: tuple[Alarm, ...] = (), extra: tuple[MemberInfo, ...] = ()) -> ClusterFacts:
    members = tuple(MemberInfo(IDS[m.name], m.name, (m.peer_url,), (m.client_url,)) for m in INV.members)
    statuses = tuple(EndpointStatus(m.client_url, IDS[m.name], 0xA1, 10, 10, 5, 4096, "3.4.23") for m in INV.members)
    return ClusterFacts("m1", members + extra, statuses, alarms)


def verdict(looks: tuple[MemberLook, ...], seen: ClusterFacts | None) -> tuple[Remedy, tuple[str, ...]]:
    d = diagnose(looks, seen, INV, now=NOW)
    return d.procedure, d.members


WAL = LINES[Cause.WAL_CORRUPT]
FLAG = LINES[Cause.FLAG_UNDEFINED]


@pytest.mark.parametrize(("looks", "seen", "want"), [
    ((look("m1"), look("m2"), look("m3")), cluster(), (Remedy.NONE, ())),
    ((look("m1"), look("m2"), look("m3", healthy=False, log=WAL)), cluster(), (Remedy.REPLACE, ("m3",))),
    ((look("m1"), look("m2"), look("m3")), cluster(alarms=(Alarm(0xB2, AlarmKind.NOSPACE),)),
     (Remedy.RECLAIM_SPACE, ("m1", "m2", "m3"))),
    ((look("m1"), look("m2"), look("m3")), cluster(alarms=(Alarm(0xC3, AlarmKind.CORRUPT),)),
     (Remedy.REPLACE, ("m3",))),
    ((look("m1"), look("m2", healthy=False, expired=True), look("m3")), cluster(), (Remedy.RENEW_CERTS, ("m2",))),
    ((look("m1"), look("m2", healthy=False, log=FLAG), look("m3", healthy=False, log=WAL)), None,
     (Remedy.FIX_FLAGS, ("m2",))),
    ((look("m1"), look("m2", healthy=False, log=WAL), look("m3", healthy=False, log=WAL)), None,
     (Remedy.RECOVER, ("m1",))),
    ((look("m1"), look("m2"), look("m3")),
     cluster(extra=(MemberInfo(0xD4, "", ("https://127.0.9.9:2380",), (), is_learner=True),)),
     (Remedy.UNKNOWN, ())),
])
def test_the_verdict_names_the_procedure_and_its_members(looks: tuple[MemberLook, ...], seen: ClusterFacts | None,
                                                           want: tuple[Remedy, tuple[str, ...]]) -> None:
    assert verdict(looks, seen) == want


def test_a_half_added_learner_of_an_inventory_member_is_a_replace() -> None:
    seen = cluster()
    half = replace(seen.members[2], name="", is_learner=True)
    seen = replace(seen, members=(*seen.members[:2], half))
    assert verdict((look("m1"), look("m2"), look("m3", healthy=False)), seen) == (Remedy.REPLACE, ("m3",))


def test_the_json_has_the_procedure_and_each_members_findings() -> None:
    d = diagnose((look("m1"), look("m2"), look("m3", healthy=False, log=WAL)), cluster(), INV, now=NOW)
    record = d.record()
    assert record["procedure"] == {"name": "replace", "members": ["m3"]}
    assert list(record["members"]) == ["m1", "m2", "m3"]
    assert any("WAL/CRC corruption" in line for line in record["members"]["m3"]["findings"])
    assert record["members"]["m3"]["causes"][0]["cause"] == "WAL/CRC corruption"
