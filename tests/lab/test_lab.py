"""End-to-end checks that the lab behaves like OKD 3.10 masters: real etcd, sshd, TLS, namespaces."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from etcdrescue.lab import Lab, LabError
from etcdrescue.lab.lab import MANIFEST

from .conftest import requires_lab

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(180)]

LabFactory = Callable[..., Lab]


def wait_for(cond: Callable[[], object], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def port_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def ssh() -> Iterator[Callable[[Lab, int], paramiko.SSHClient]]:
    clients: list[paramiko.SSHClient] = []

    def connect(lab: Lab, index: int) -> paramiko.SSHClient:
        h = lab.host(index)
        c = paramiko.SSHClient()
        c.load_host_keys(str(lab.known_hosts))
        c.set_missing_host_key_policy(paramiko.RejectPolicy())
        c.connect(h.ip, port=h.ssh_port, username="root", key_filename=str(lab.identity_file),
                  look_for_keys=False, allow_agent=False, timeout=10)
        clients.append(c)
        return c

    yield connect
    for c in clients:
        c.close()


def run(client: paramiko.SSHClient, cmd: str) -> tuple[int, str, str]:
    _, out, err = client.exec_command(cmd, timeout=60)
    rc = out.channel.recv_exit_status()
    return rc, out.read().decode(), err.read().decode()


def pgrep(lab: Lab, index: int) -> list[int]:
    return [int(p) for p in lab.exec(index, "pgrep -x etcd || true").stdout.split()]


def lab_pids(lab: Lab) -> set[int]:
    """Every process in any of the lab's PID namespaces (host-side pids)."""
    namespaces = set()
    for h in lab.hosts:
        pid = lab.supervisor_pid(h)
        assert pid is not None
        namespaces.add(os.readlink(f"/proc/{pid}/ns/pid"))
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") in namespaces:
                    found.add(int(entry))
            except OSError:
                pass
    return found


def test_up_replicates_and_down_leaves_nothing(lab_factory: LabFactory) -> None:
    lab = lab_factory(3, subnet=11)
    assert all(lab.healthy(h) for h in lab.hosts)
    lab.put_keys("/lab/test/", 50)
    got = lab.read_prefix("/lab/test/", host=2)
    assert len(got) == 50 and got["/lab/test/00049"] == "value-00049"
    members = lab.member_list(1)
    assert sorted(m["name"] for m in members) == [h.name for h in lab.hosts]
    assert {m["peer_urls"][0] for m in members} == {h.peer_url for h in lab.hosts}

    inventory = lab.inventory_path.read_text()
    assert "profile: okd3" in inventory and "client_url: https://127.0.11.3:2379" in inventory

    lab.up()  # a second up on a running lab is harmless
    other = Lab(lab.root.with_name("intruder"), 3, subnet=11)
    with pytest.raises(LabError, match="in use"):
        other.up(timeout=5)
    pids = lab_pids(lab)
    assert len(pids) >= 3 * 3  # per host: supervisor, etcd, sshd
    lab.down()
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    assert not alive
    assert not any(port_open(h.ip, p) for h in lab.hosts for p in (2379, 2380, h.ssh_port))
    assert all(s["supervisor"] is False for s in lab.status())
    lab.up()  # restarts on the existing data
    assert len(lab.read_prefix("/lab/test/", host=1)) == 50


SshFactory = Callable[[Lab, int], paramiko.SSHClient]


def test_ssh_sees_its_own_master(lab_factory: LabFactory, ssh: SshFactory) -> None:
    lab = lab_factory(3, subnet=12)
    for i in (0, 2):
        client = ssh(lab, i)
        rc, out, _ = run(client, "grep ^ETCD_NAME= /etc/etcd/etcd.conf; pgrep -x etcd")
        lines = out.split()
        assert rc == 0 and lines[0] == f"ETCD_NAME={lab.hosts[i].name}"
        assert len(lines) == 2  # exactly one etcd visible on this master
        rc, out, _ = run(client, "ls /etc/origin/node/pod; stat -c %a /etc/etcd/peer.key /etc/etcd/etcd.conf")
        assert out.split() == ["apiserver.yaml", "controller.yaml", "disabled", "etcd.yaml", "600", "644"]
    # etcdctl on a master with the peer certs, as the recovery tool uses it
    h = lab.hosts[1]
    res = lab.exec(h, f"ETCDCTL_API=3 etcdctl --endpoints {h.client_url} --cacert /etc/etcd/ca.crt "
                      "--cert /etc/etcd/peer.crt --key /etc/etcd/peer.key endpoint health")
    assert res.returncode == 0, res.stderr
    assert "is healthy" in res.stdout + res.stderr


def test_kubelet_stand_in(lab_factory: LabFactory, ssh: SshFactory) -> None:
    lab = lab_factory(3, subnet=13)
    h = lab.hosts[0]

    lab.stop_etcd(h)
    assert pgrep(lab, 0) == []
    assert not port_open(h.ip, 2379) and not port_open(h.ip, 2380)
    assert lab.status()[0]["manifest"] == "disabled"
    lab.start_etcd(h)
    assert lab.healthy(h) and len(pgrep(lab, 0)) == 1

    # the manifest is the switch; like the kubelet, any visible file in the pod dir counts
    manifest = lab.host_path(h, MANIFEST)
    before = pgrep(lab, 0)
    os.replace(manifest, manifest.with_name("etcd.yaml.bak"))
    time.sleep(1)
    assert pgrep(lab, 0) == before  # same pod, same bytes: nothing to do
    assert lab.state(h)["manifest"] == "/etc/origin/node/pod/etcd.yaml.bak"
    os.replace(manifest.with_name("etcd.yaml.bak"), manifest.with_name(".etcd.yaml.hidden"))
    wait_for(lambda: pgrep(lab, 0) == [], what="etcd to stop after manifest removal")
    os.replace(manifest.with_name(".etcd.yaml.hidden"), manifest)
    lab.wait_healthy([h])

    # changing the manifest bytes restarts etcd
    before = pgrep(lab, 0)
    manifest.write_text(manifest.read_text() + "# touched\n")
    wait_for(lambda: pgrep(lab, 0) not in ([], before), what="etcd restart after manifest change")
    lab.wait_healthy([h])

    # master-restart etcd over SSH restarts it; master-logs shows the new container's log
    client = ssh(lab, 0)
    before = pgrep(lab, 0)
    rc, _, err = run(client, "/usr/local/bin/master-restart etcd")
    assert rc == 0, err
    wait_for(lambda: pgrep(lab, 0) not in ([], before), what="etcd restart after master-restart")
    lab.wait_healthy([h])
    rc, out, _ = run(client, "master-logs etcd etcd")
    assert rc == 0 and "etcdmain: etcd Version: 3.4" in out and f"ETCD_NAME={h.name}" in out
    rc, out, _ = run(client, "master-logs etcd etcd --tail 3")
    assert len(out.splitlines()) == 3
    assert int(lab.state(h)["restarts"]) == 5


def test_backups(lab_factory: LabFactory) -> None:
    lab = lab_factory(3, subnet=14)
    lab.put_keys("/backup/", 30)
    time.sleep(0.5)  # etcd commits its bolt db every 100 ms: a live copy taken sooner misses recent writes
    d = lab.backup_openshift(1)
    assert d.startswith("/var/lib/etcd/openshift-backup-")
    assert lab.host_path(1, f"{d}/member/snap/db").is_file()
    assert lab.host_path(1, f"{d}/member/wal").is_dir()
    res = lab.exec(1, f"ETCDCTL_API=3 etcdctl snapshot status {d}/member/snap/db -w json")
    assert res.returncode == 0, res.stderr
    status = json.loads(res.stdout)
    assert status["revision"] >= 31 and status["totalKey"] >= 30

    d2 = lab.backup_copy(2)
    assert lab.host_path(2, f"{d2}/member/snap/db").is_file()
    assert lab.healthy(2)


def test_break_quorum_crash_loops(lab_factory: LabFactory) -> None:
    lab = lab_factory(3, subnet=15)
    lab.break_quorum([1, 2])
    survivor = lab.hosts[0]
    wait_for(lambda: not lab.healthy(survivor), timeout=15, what="survivor to lose quorum")
    assert len(pgrep(lab, 0)) == 1  # still running, just without quorum
    broken = lab.hosts[1]
    wait_for(lambda: int(lab.state(broken)["restarts"]) >= 3, timeout=20, what="crash loop")
    st = lab.status()[1]
    assert st["manifest"] == "enabled" and st["last_exit"] == "1" and not st["healthy"]
    # each start is a new container with a fresh log: read one that etcd already wrote its exit into
    wait_for(lambda: "etcdmain: wal:" in lab.exec(broken, "master-logs etcd etcd").stdout, timeout=20,
             what="the crash in the current container's log")
    # etcd opens (creates) an empty member/snap/db before it chokes on the WAL
    wal = lab.host_path(broken, "/var/lib/etcd/member/wal/0000000000000000-0000000000000000.wal")
    assert wal.read_bytes().startswith(b"\xde\xad\xbe\xef")


def test_five_members_and_quoted_manifest(lab_factory: LabFactory) -> None:
    lab = lab_factory(5, subnet=16, manifest_style="quoted")
    assert len(lab.member_list()) == 5
    text = lab.host_path(4, MANIFEST).read_text()
    assert "- '#!/bin/sh" in text and "exec etcd" in text
    # reopening from disk gives the same lab
    again = Lab.load(lab.root)
    assert [h.name for h in again.hosts] == [h.name for h in lab.hosts]
    assert again.status()[4]["healthy"]


def test_errors(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "x", 3, subnet=17)
    assert lab.host("master02").ip == "127.0.17.2"
    assert lab.host_path("master03.lab.example", "/etc/etcd/etcd.conf") == (
        tmp_path / "x/hosts/master03.lab.example/etc/etcd/etcd.conf")
    with pytest.raises(LabError):
        lab.host_path(0, "/etc/passwd")
    with pytest.raises(LabError):
        lab.exec(0, "true")  # not up
    with pytest.raises(LabError):
        Lab.load(tmp_path / "nothing")


def test_manual_recovery_works_in_the_lab(lab_factory: LabFactory) -> None:
    """The documented OKD 3.10 procedure (force-new-cluster, then re-add a member) succeeds here."""
    lab = lab_factory(3, subnet=18)
    lab.put_keys("/keep/", 10)
    time.sleep(0.3)
    lab.break_quorum([1, 2])
    h1, h2 = lab.hosts[0], lab.hosts[1]
    sed = "sed -i 's/^\\( *\\)exec etcd$/\\1exec etcd --force-new-cluster/' " + MANIFEST
    assert lab.exec(h1, sed).returncode == 0
    lab.wait_healthy([h1])
    assert [m["name"] for m in lab.member_list(h1)] == [h1.name]
    assert lab.exec(h1, f"sed -i 's/ --force-new-cluster$//' {MANIFEST}").returncode == 0
    wait_for(lambda: "force" not in lab.exec(h1, "ps -o args= -C etcd").stdout, what="plain etcd again")
    lab.wait_healthy([h1])

    etcdctl = (f"ETCDCTL_API=3 etcdctl --cacert /etc/etcd/ca.crt --cert /etc/etcd/peer.crt "
               f"--key /etc/etcd/peer.key --endpoints {h1.client_url}")
    res = lab.exec(h1, f"{etcdctl} member add {h2.name} --peer-urls={h2.peer_url}")
    assert res.returncode == 0, res.stderr
    cluster = f"{h1.name}={h1.peer_url},{h2.name}={h2.peer_url}"
    assert lab.exec(h2, f"mv {MANIFEST} /etc/origin/node/pod/disabled/").returncode == 0
    # Not `pgrep`: a crash-looping etcd may be between two starts while the kubelet, which read the
    # manifest just before it moved, starts it once more on the old conf and a half-deleted data dir.
    wait_for(lambda: lab.state(h2).get("manifest") == "" and lab.etcd_pid(h2) is None, what="kubelet saw it gone")
    res = lab.exec(h2, f"""set -e
rm -rf /var/lib/etcd/member
sed -i -e 's|^ETCD_INITIAL_CLUSTER=.*|ETCD_INITIAL_CLUSTER={cluster}|' \\
       -e 's|^ETCD_INITIAL_CLUSTER_STATE=.*|ETCD_INITIAL_CLUSTER_STATE=existing|' /etc/etcd/etcd.conf
mv /etc/origin/node/pod/disabled/etcd.yaml {MANIFEST}
""")
    assert res.returncode == 0, res.stderr
    lab.wait_healthy([h1, h2], timeout=30)
    assert len(lab.read_prefix("/keep/", host=h2)) == 10
