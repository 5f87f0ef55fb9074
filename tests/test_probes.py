"""Fact parsers on output recorded from the real lab (tests/data/, see record.py), plus one live run.

Ground truth for the recordings (member IDs, URLs) was taken over gRPC, not etcdctl, and sits in
tests/data/meta.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest_lab import lab_factory, requires_lab

from etcdrescue import probes
from etcdrescue.inventory.model import load_inventory, parse_inventory
from etcdrescue.lab import Lab
from etcdrescue.platform.envfile import EnvFile
from etcdrescue.platform.pod import StaticPod
from etcdrescue.probes import ParseError
from etcdrescue.ssh.route import member_routes
from etcdrescue.ssh.transport import SSHConfig, SSHHost

__all__ = ["lab_factory"]

DATA = Path(__file__).parent / "data"
META: dict[str, Any] = json.loads((DATA / "meta.json").read_text())
IDS = {name: m["id"] for name, m in META["members"].items()}
BY_URL = {m["client_urls"][0]: m["id"] for m in META["members"].values()}
URLS: list[str] = META["client_urls"]


def data(name: str) -> str:
    return (DATA / name).read_text()


# -- member list ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["healthy_member_list.json", "noquorum_member_list.json"])
def test_member_list_all_started(name: str) -> None:
    members = probes.parse_member_list(data(name))
    assert {m.name: m.id for m in members} == IDS
    for m in members:
        assert m.started
        assert m.peer_urls == tuple(META["members"][m.name]["peer_urls"])
        assert m.client_urls == tuple(META["members"][m.name]["client_urls"])
        assert int(m.hex_id, 16) == m.id


def test_member_list_added_but_unstarted() -> None:
    members = probes.parse_member_list(data("unstarted_member_list.json"))
    assert len(members) == 4
    (new,) = [m for m in members if not m.started]
    assert new.id == META["unstarted"]["id"]
    assert new.name == "" and new.client_urls == ()
    assert new.peer_urls == (META["unstarted"]["peer_url"],)
    assert {m.name: m.id for m in members if m.started} == IDS


# -- endpoint status -------------------------------------------------------------------------

def test_endpoint_status_healthy() -> None:
    status = probes.parse_endpoint_status(data("healthy_endpoint_status.json"))
    assert [s.endpoint for s in status] == URLS
    assert {s.endpoint: s.member_id for s in status} == BY_URL
    leaders = {s.leader for s in status}
    assert len(leaders) == 1 and leaders <= set(IDS.values())
    assert sum(s.is_leader for s in status) == 1
    for s in status:
        assert s.version.startswith("3.4.")
        assert s.revision == 6  # fresh cluster (1) + the five keys record.py wrote
        assert 0 < s.raft_applied_index <= s.raft_index
        assert s.db_size > 0


def test_endpoint_status_lost_quorum() -> None:
    """Two members dead: only the survivor answers, and it knows no leader."""
    status = probes.parse_endpoint_status(data("noquorum_endpoint_status.json"))
    assert META["exit"]["noquorum_endpoint_status.json"] != 0
    assert [(s.endpoint, s.member_id) for s in status] == [(URLS[0], BY_URL[URLS[0]])]
    assert status[0].leader is None and not status[0].is_leader


# -- endpoint health ----------------------------------------------------------------------------

def test_endpoint_health_healthy() -> None:
    health = probes.parse_endpoint_health(data("healthy_endpoint_health.json"))
    assert sorted(h.endpoint for h in health) == URLS
    assert all(h.healthy and h.error == "" for h in health)


def test_endpoint_health_lost_quorum() -> None:
    health = probes.parse_endpoint_health(data("noquorum_endpoint_health.json"))
    assert sorted(h.endpoint for h in health) == URLS
    assert not any(h.healthy for h in health)
    assert all(h.error for h in health)


# -- snapshot / surveys -----------------------------------------------------------------------------

def test_snapshot_status_of_backup_db() -> None:
    snap = probes.parse_snapshot_status(data("backup_snapshot_status.json"))
    assert snap.revision == 6
    assert snap.total_keys >= 5  # the five /record/ keys plus etcd's own
    assert snap.hash > 0 and snap.total_size > 0 and snap.total_size % 4096 == 0


SURVEYS: list[tuple[str, dict[str, Callable[[str], bool]]]] = [
    ("host_survey_running.txt", {
        "manifest": "yes".__eq__, "disabled": "no".__eq__, "conf": "yes".__eq__, "member": "yes".__eq__,
        "etcd_pid": str.isdigit, "client_port": "open".__eq__, "peer_port": "open".__eq__,
        "member_kb": lambda v: int(v) > 0, "free_kb": lambda v: int(v) > 0, "tls": "yes".__eq__,
        "etcdctl": lambda v: v.endswith("/etcdctl"), "bash": lambda v: v[:1] in "45"}),
    ("host_survey_stopped.txt", {
        "manifest": "no".__eq__, "disabled": "yes".__eq__, "etcd_pid": "".__eq__,
        "client_port": "closed".__eq__, "peer_port": "closed".__eq__, "member": "yes".__eq__}),
    ("host_survey_broken.txt", {
        "manifest": "yes".__eq__, "etcd_pid": "".__eq__, "client_port": "closed".__eq__,
        "member": "yes".__eq__, "member_kb": lambda v: int(v) < 1024}),
    ("backup_survey_dir.txt", {
        "kind": "dir".__eq__, "db": "yes".__eq__, "wal": lambda v: int(v) >= 1,
        "size_kb": lambda v: int(v) > 0, "mtime": lambda v: int(v) > 1_600_000_000}),
    ("backup_survey_file.txt", {
        "kind": "file".__eq__, "size_kb": lambda v: int(v) > 0, "mtime": lambda v: int(v) > 1_600_000_000}),
    ("backup_survey_missing.txt", {"kind": "missing".__eq__}),
]


@pytest.mark.parametrize(("name", "checks"), SURVEYS, ids=[s[0] for s in SURVEYS])
def test_surveys(name: str, checks: dict[str, Callable[[str], bool]]) -> None:
    kv = probes.parse_kv(data(name))
    for key, ok in checks.items():
        assert key in kv, key
        assert ok(kv[key]), (key, kv[key])
    if name.startswith("host_survey"):
        assert len(kv) == 20  # every line of the survey script answered


def test_survey_scripts_match_recordings() -> None:
    """The recorded keys are exactly the keys today's scripts print (re-record if this fails)."""
    inv = parse_inventory({"cluster": "c", "members": [
        {"name": "m", "host": "127.0.0.1", "peer_url": "https://127.0.0.1:2380", "client_url": "https://127.0.0.1:2379"}]})
    script = probes.host_survey(inv.platform, inv.members[0]).script
    keys = [part.split("echo ", 1)[1].split("=", 1)[0] for part in script.split("; ") if "echo " in part]
    assert list(probes.parse_kv(data("host_survey_running.txt"))) == keys


# -- malformed input ----------------------------------------------------------------------------

MALFORMED: list[tuple[Callable[[str], Any], str, type[Exception] | tuple[type[Exception], ...]]] = [
    (probes.parse_member_list, "", ParseError),
    (probes.parse_member_list, "Error: context deadline exceeded\n", ParseError),
    (probes.parse_member_list, '{"members": [', ParseError),
    (probes.parse_endpoint_status, "", ParseError),
    (probes.parse_endpoint_status, "[{\"Endpoint\": \"x\"", ParseError),
    (probes.parse_endpoint_health, "\n\n", ParseError),
    (probes.parse_snapshot_status, "Error: snapshot file has wrong size\n", ParseError),
    (probes.parse_snapshot_status, '{"hash": 1}', KeyError),
]


@pytest.mark.parametrize(("parse", "text", "exc"), MALFORMED)
def test_malformed(parse: Callable[[str], Any], text: str, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        parse(text)


def test_json_after_noise() -> None:
    """Banner lines before the JSON (a motd, a sudo lecture) are skipped."""
    text = "Last login: yesterday\n  " + data("healthy_member_list.json")
    assert {m.name for m in probes.parse_member_list(text)} == set(IDS)


def test_parse_kv() -> None:
    assert probes.parse_kv("a=1\nb = x=y \nnoise\n\nc=\n") == {"a": "1", "b": "x=y", "c": ""}


def test_env_file_settings_parser() -> None:
    settings = EnvFile("/etc/etcd/etcd.conf")
    text = 'ETCD_NAME="m1"\n#ETCD_WAL_DIR=\nETCD_DATA_DIR=/var/lib/etcd/\nOTHER=x\n'
    assert settings.parse_values(text) == {"name": "m1", "data-dir": "/var/lib/etcd/"}


# -- live: every fact through the real SSH transport ----------------------------------------------

@pytest.mark.lab
@requires_lab
@pytest.mark.timeout(120)
def test_facts_over_ssh_on_live_lab(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(3, subnet=41)
    inv = load_inventory(lab.inventory_path)
    m0 = inv.members[0]
    cfg = SSHConfig(member_routes(inv)[m0.name])
    urls = [m.client_url for m in inv.members]
    tools = inv.platform.tools
    truth = {m["name"]: m["id"] for m in lab.member_list()}
    lab.put_keys("/live/", 3)
    time.sleep(0.5)  # etcd commits its bolt db every 100 ms; the backup copies the file as it is
    backup = lab.backup_openshift(0)
    with SSHHost(m0.name, cfg) as host:
        def fact(f: probes.Fact[Any]) -> Any:
            res = host.run(f.script, timeout=f.timeout)
            return f.parse(res.stdout)

        assert {m.name: m.id for m in fact(probes.member_list(tools, urls))} == truth
        status = fact(probes.endpoint_status(tools, urls))
        assert sorted(s.endpoint for s in status) == urls
        assert sum(s.is_leader for s in status) == 1 and {s.leader for s in status} <= set(truth.values())
        assert all(h.healthy for h in fact(probes.endpoint_health(tools, urls)))
        survey = fact(probes.host_survey(inv.platform, m0))
        assert survey.manifest and survey.client_port_open and survey.etcd_pid is not None and survey.tls
        assert survey.etcdctl is not None and survey.etcdctl.version.startswith("3.")
        assert fact(probes.backup_survey(backup))["kind"] == "dir"
        snap = fact(probes.snapshot_status(tools, backup + "/member/snap/db"))
        assert snap.revision >= 4 and snap.total_keys >= 3
        settings = inv.platform.settings
        conf = settings.parse_values(host.run(settings.values_script()).stdout)
        assert conf["name"] == m0.name and conf["listen-client-urls"] == m0.client_url
        assert not host.run(StaticPod.down(m0.host, [m0.client_port, m0.peer_port])).ok
        lab.stop_etcd(0)
        assert host.run(StaticPod.down(m0.host, [m0.client_port, m0.peer_port])).ok
        survey = fact(probes.host_survey(inv.platform, m0))
        assert (survey.manifest, survey.disabled, survey.etcd_pid) == (False, True, None)


def test_runs_without_counts_only_live_etcd_processes(tmp_path: Path) -> None:
    """A killed etcd not yet reaped is a zombie with an empty command line: it passed the restart check
    between the old process's death and the new one's start. Only processes with a command line count."""
    fake = tmp_path / "etcd"
    shutil.copy("/bin/sh", fake)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "pgrep").write_text("#!/bin/sh\necho $PIDS\n")
    (shim / "pgrep").chmod(0o755)
    script = StaticPod.runs_without("--force-new-cluster")

    def check(*procs: subprocess.Popen[bytes]) -> int:
        env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "PIDS": " ".join(str(p.pid) for p in procs)}
        return subprocess.run(["bash", "-c", script], env=env, timeout=10).returncode

    flagged = subprocess.Popen([str(fake), "-c", "sleep 30; true", "etcd", "--force-new-cluster"])
    plain = subprocess.Popen([str(fake), "-c", "sleep 30; true", "etcd"])
    zombie = subprocess.Popen([str(fake), "-c", "true"])
    try:
        time.sleep(0.3)  # the zombie exits and stays unreaped: nobody waits for it yet
        assert check(flagged) == 1 and check(flagged, plain) == 1
        assert check(zombie) == 1, "a zombie alone is not a running etcd"
        assert check(plain, zombie) == 0 and check(plain) == 0
    finally:
        for p in (flagged, plain, zombie):
            p.kill()
            p.wait()


def test_gate_probes_ask_only_the_endpoints_that_listen(tmp_path: Path) -> None:
    """A closed port is left out at once (etcdctl would wait out its deadline on it); none open gives `[]`."""
    import socket

    from etcdrescue.platform.paths import Paths
    from etcdrescue.platform.tools import EtcdTools

    fake = tmp_path / "etcdctl"
    fake.write_text('#!/bin/sh\nfor a; do case "$a" in https://*) echo "$a";; esac; done\n')
    fake.chmod(0o755)
    tools = EtcdTools(Paths("/m", "/d", "/c", "/var/lib/etcd", "/ca", "/crt", "/key"), str(fake))
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))
        up, down = (f"https://127.0.0.1:{s.getsockname()[1]}" for s in (listening, closed))
        asked = subprocess.run(["bash", "-c", tools.ctl_listening([down, up, down.replace("127.0.0.1", "[::1]")],
                                                                   "endpoint", "status")],
                               capture_output=True, text=True, timeout=10)
        assert asked.stdout.split() == [up], asked
        none = subprocess.run(["bash", "-c", tools.ctl_listening([down], "endpoint", "status")],
                              capture_output=True, text=True, timeout=10)
        assert none.stdout.strip() == "[]", none


def test_alarm_list_names_the_alarm_and_its_member() -> None:
    alarms = probes.parse_alarm_list(data("nospace_alarm_list.json"))
    assert alarms == [probes.Alarm(8277657731026782902, probes.AlarmKind.NOSPACE)]
    assert alarms[0].hex_id == "72e025d9761e0ab6"


def test_no_alarm_is_an_empty_list() -> None:
    assert probes.parse_alarm_list(data("quiet_alarm_list.json")) == []


def test_an_unknown_alarm_is_not_read_as_none() -> None:
    with pytest.raises(ParseError, match="unknown alarm"):
        probes.parse_alarm_list('{"alarms":[{"memberID":1,"alarm":7}]}')


def test_endpoint_status_reads_the_space_in_use() -> None:
    statuses = probes.parse_endpoint_status(data("healthy_endpoint_status.json"))
    assert [(s.db_size, s.db_size_in_use) for s in statuses] == [(20480, 16384)] * 3
