"""Faults on the real lab: each ends with a clear message, the right exit code, and nothing lost.

- refusals at pre-flight (exit 2, hosts unchanged): corrupt/truncated backup, missing backup, not enough disk,
  manifest missing / malformed / without an `exec etcd` line, changed host key;
- wrong-cluster backup: detected by `etcdrescue.backup_identity` over SSH (pre-flight does not call it yet);
- the SSH connection cut in the middle of a command: exit 3, "effect is unknown", `--resume` finishes;
- etcd crashing while a member joins: the gate fails (exit 3) naming the member with its last log lines,
  the journal says where things stand; fixed by hand, `--resume` finishes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from etcdrescue.backup_identity import backup_members, identity_problem, remote_reader
from etcdrescue.inventory import load_inventory
from etcdrescue.lab import Lab
from etcdrescue.model import Context, Method
from etcdrescue.plan import build_plan

from .audit import audit, snapshot
from .conftest import requires_lab
from .helpers import Broken, break_lab, etcdrescue, host_file, tree_digest
from .test_recover import assert_recovered

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(400)]

LabFactory = Callable[..., Lab]
MANIFEST = "/etc/origin/node/pod/etcd.yaml"


def journal_events(journal: Path) -> list[dict[str, Any]]:
    (path,) = list(journal.glob("*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


def recover(b: Broken, journal: Path, *extra: str, env: dict[str, str] | None = None,
            inventory: str | None = None) -> subprocess.CompletedProcess[str]:
    assert b.backup
    return etcdrescue("recover", "-i", inventory or str(b.lab.inventory_path), "--backup", b.backup, "--yes",
                      "--journal", str(journal), *extra, env=env)


# -- refusals: one broken lab, many cheap cases ----------------------------------------------------------
@pytest.fixture(scope="module")
def refusal_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broken, str]]:
    """A broken 3-master lab on subnet 80, plus an openshift backup from another (1-master) lab on subnet 81
    copied onto its seed as /var/lib/etcd/foreign-backup."""
    root = tmp_path_factory.mktemp("faults")
    lab, other = Lab(root / "lab80", 3, subnet=80), Lab(root / "lab81", 1, subnet=81)
    try:
        lab.up(timeout=60)
        other.up(timeout=60)
        foreign = other.backup_openshift(0)
        shutil.copytree(other.host_path(0, foreign), lab.host_path(0, "/var/lib/etcd/foreign-backup"),
                        symlinks=True)
        other.down()
        yield break_lab(lab, "openshift"), "/var/lib/etcd/foreign-backup"
    finally:
        other.down()
        lab.down()


def test_refusals_at_preflight(refusal_lab: tuple[Broken, str], tmp_path: Path) -> None:
    b, _ = refusal_lab
    lab, inv = b.lab, str(b.lab.inventory_path)
    assert b.backup
    seed, joiner = lab.hosts[0], lab.hosts[2]
    # a corrupt (truncated) copy of the backup, and a truncated snapshot file
    run = lab.exec(seed, f"cp -a {b.backup} /var/lib/etcd/cut-backup && truncate -s 8192 "
                         "/var/lib/etcd/cut-backup/member/snap/db && "
                         f"head -c 12288 {b.backup}/member/snap/db > /var/lib/etcd/cut-snapshot.db")
    assert run.returncode == 0, run.stderr
    # a known_hosts where the seed's key is someone else's
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    lines = lab.known_hosts.read_text().splitlines()
    lines[0] = lines[0].split(" ", 1)[0] + " " + " ".join(other_key.with_suffix(".pub").read_text().split()[:2])
    changed = tmp_path / "known_hosts"
    changed.write_text("\n".join(lines) + "\n")
    real_fp = subprocess.run(["ssh-keygen", "-lf", str(seed.dir / "ssh_host_ed25519_key.pub")], check=True,
                             capture_output=True, text=True).stdout.split()[1]
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["ssh"]["known_hosts"] = str(changed)
    hostkey_inv = tmp_path / "hostkey.yaml"
    hostkey_inv.write_text(yaml.safe_dump(data))

    manifest = host_file(lab, 2, MANIFEST)
    pristine = manifest.read_bytes()
    journal = tmp_path / "j"
    before = tree_digest(lab)
    cases: list[tuple[str, list[str], Callable[[], object] | None, str]] = [
        ("truncated backup db", ["--backup", "/var/lib/etcd/cut-backup"], None,
         "backup /var/lib/etcd/cut-backup on master01.lab.example: /var/lib/etcd/cut-backup/member/snap/db is "
         "not a readable etcd database (corrupt or truncated?)"),
        ("truncated snapshot file", ["--backup", "/var/lib/etcd/cut-snapshot.db"], None,
         "/var/lib/etcd/cut-snapshot.db is not a readable etcd database"),
        ("missing backup", ["--backup", "/var/lib/etcd/openshift-backup-gone"], None,
         "backup /var/lib/etcd/openshift-backup-gone not found on master01.lab.example"),
        ("manifest missing", ["--backup", b.backup], lambda: manifest.rename(tmp_path / "etcd.yaml.away"),
         f"{joiner.name}: etcd manifest missing"),
        ("malformed manifest", ["--backup", b.backup], lambda: manifest.write_text("spec: [containers\n"),
         f"{joiner.name}: {MANIFEST}: malformed YAML"),
        ("no exec etcd line (force-new-cluster)", ["--backup", b.backup, "--method", "force-new-cluster"],
         lambda: manifest.write_bytes(pristine.replace(b"exec etcd", b"exec /usr/bin/etcd")),
         f"{joiner.name}: {MANIFEST}: expected one `exec etcd` line to edit, found 0"),
        ("changed host key", ["--backup", b.backup, "-i", str(hostkey_inv)], None, real_fp),
    ]
    seen: dict[str, str] = {}
    for label, args, damage, expected in cases:
        if damage is not None:
            damage()
        try:
            res = etcdrescue("recover", "-i", inv, *args, "--yes", "--journal", str(journal), timeout=90)
        finally:
            if damage is not None:
                (tmp_path / "etcd.yaml.away").unlink(missing_ok=True)
                manifest.write_bytes(pristine)
        assert res.returncode == 2, (label, res.stdout, res.stderr)
        last = res.stderr.strip().splitlines()[-1]
        assert expected in last, (label, expected, res.stderr)
        seen[label] = last
    assert "SHA256:" in seen["changed host key"]
    assert not list(journal.glob("*.jsonl")), "no journal: only the lock dir"

    # not enough free disk: a tmpfs barely larger than what the seed's /var/lib/etcd holds, in its namespace
    host_dir = lab.host_path(seed, "/var/lib/etcd")
    mount = lab.exec(seed, f"used=$(du -sk /var/lib/etcd | cut -f1) && "
                           f"mount -t tmpfs -o size=$((used + 256))k,mode=700 etcdrescue-test /var/lib/etcd && "
                           f"cp -a {host_dir}/. /var/lib/etcd/ && df -Pk /var/lib/etcd | awk 'NR==2 {{print $4}}'")
    assert mount.returncode == 0, mount.stderr
    try:
        res = etcdrescue("recover", "-i", inv, "--backup", b.backup, "--yes", "--journal", str(journal), timeout=90)
    finally:
        assert lab.exec(seed, "umount -l /var/lib/etcd").returncode == 0
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "master01.lab.example: not enough free disk in /var/lib/etcd:" in res.stderr, res.stderr
    seen["not enough disk"] = res.stderr.strip().splitlines()[-1]
    assert tree_digest(lab) == before
    assert not list(journal.glob("*.jsonl")), "no journal: only the lock dir"
    (tmp_path.parent / "refusal-messages.json").write_text(json.dumps(seen, indent=1))


def test_wrong_cluster_backup_is_detected(refusal_lab: tuple[Broken, str]) -> None:
    """backup_identity, fed over SSH-like shell access to the seed, tells the foreign backup from our own."""
    b, foreign = refusal_lab
    lab = b.lab
    assert b.backup
    inv = load_inventory(lab.inventory_path)
    peers = [m.peer_url for m in inv.members]

    def run(script: str) -> str:
        res = lab.exec(lab.hosts[0], script)
        assert res.returncode == 0, res.stderr
        return res.stdout

    ours = backup_members(remote_reader(run, b.backup + "/member/snap/db"))
    assert sorted(u for m in ours for u in m.peer_urls) == sorted(peers)
    assert identity_problem(ours, peers) is None
    theirs = backup_members(remote_reader(run, foreign + "/member/snap/db"))
    problem = identity_problem(theirs, peers)
    assert problem and "another cluster" in problem and "https://127.0.81.1:2380" in problem


def test_wrong_cluster_backup_refused_by_check(refusal_lab: tuple[Broken, str]) -> None:
    b, foreign = refusal_lab
    res = etcdrescue("check", "-i", str(b.lab.inventory_path), "--backup", foreign, timeout=90)
    assert res.returncode == 2 and "another cluster" in res.stdout + res.stderr


# -- SSH connection cut mid-command ----------------------------------------------------------------------
SHIM = """#!/bin/bash
# test shim, once each: `snapshot restore` waits 5 s BEFORE doing its work (the cut leaves its effect unknown);
# `member add` does its work, then waits 5 s before answering (the cut comes after the effect is in place);
# the pre-flight's `snapshot restore --help` is not a restore
m=/run/etcdlab
case " $* " in
  *" --help "*) ;;
  *" snapshot restore "*)
    if [ ! -e $m/restore-started ]; then
      touch $m/restore-started; sleep 5
      /usr/bin/etcdctl "$@" > $m/restore.out 2>&1; rc=$?
      touch $m/restore-done; cat $m/restore.out; exit $rc
    fi;;
  *" member add "*)
    if [ ! -e $m/add-started ]; then
      /usr/bin/etcdctl "$@" > $m/add.out 2>&1; rc=$?
      touch $m/add-started; sleep 5
      cat $m/add.out; exit $rc
    fi;;
esac
exec /usr/bin/etcdctl "$@"
"""


def wait_for(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def cut_when(lab: Lab, marker: Path, cut: dict[str, int]) -> threading.Thread:
    """Kill the seed's SSH sessions (not its listener) as soon as `marker` appears."""
    def cutter() -> None:
        if wait_for(marker, 120):
            cut["rc"] = lab.exec(lab.hosts[0], "pkill -f 'sshd: root'").returncode

    t = threading.Thread(target=cutter, daemon=True)
    t.start()
    return t


def test_ssh_cut_mid_command_then_resume(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=82), "openshift")
    lab, seed = b.lab, b.lab.hosts[0]
    before = snapshot(lab)
    # /usr/local/bin is an overlay inside the host: install the shim from inside
    put = lab.exec(seed, f"cat > /usr/local/bin/etcdctl <<'EOF'\n{SHIM}EOF\nchmod 755 /usr/local/bin/etcdctl && "
                         "command -v etcdctl")
    assert put.stdout.strip() == "/usr/local/bin/etcdctl", put.stdout + put.stderr
    run_dir = lab.host_path(seed, "/run/etcdlab")
    journal = tmp_path / "j"

    # 1. cut while the restore has not happened yet: the engine reconnects, cannot confirm, stops (exit 3)
    cut: dict[str, int] = {}
    t = cut_when(lab, run_dir / "restore-started", cut)
    try:
        res = recover(b, journal)
    finally:
        t.join(timeout=130)
    assert cut.get("rc") == 0, cut
    assert res.returncode == 3, res.stdout + res.stderr
    assert ("stop-etcd: master01.lab.example: connection lost during 'restore the backup's db into a fresh "
            "one-member data dir (while the gate waits: it touches nothing live)' and its effect is not confirmed"
            in res.stderr and "--resume" in res.stderr), \
        res.stderr
    events = journal_events(journal)
    assert [e["host"] for e in events if e["event"] == "connection_lost"] == [seed.name]
    assert events[-1]["event"] == "run_end" and events[-1]["exit_code"] == 3
    assert [e["step"] for e in events if e["event"] == "step_end" and e["status"] == "failed"] == ["stop-etcd"]
    # the command carried on on the host after the cut: wait for it, the resume must then see it done
    assert wait_for(run_dir / "restore-done", 30)
    (tmp_path.parent / "cut-stderr.txt").write_text(res.stderr)

    # 2. resume; cut again right after `member add` took effect: reconnect, effect confirmed, carry on
    cut.clear()
    t = cut_when(lab, run_dir / "add-started", cut)
    try:
        again = recover(b, journal, "--resume")
    finally:
        t.join(timeout=130)
    assert cut.get("rc") == 0, cut
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming" in again.stdout and "at step stop-etcd" in again.stdout
    assert_recovered(b, journal, keys=500, post=0)
    events = journal_events(journal)
    restores = [e for e in events if e["event"] == "command" and "snapshot restore" in e["script"]]
    assert [e.get("skipped", False) for e in restores] == [True], restores  # not run twice: the probe saw it
    confirmed = [e for e in events if e.get("confirmed_after_reconnect")]
    assert len(confirmed) == 1 and "member add" in confirmed[0]["script"], confirmed
    assert lab.exec(seed, "mv /usr/local/bin/etcdctl /usr/local/bin/etcdctl.test-shim").returncode == 0
    assert audit(lab, before) == []


# -- etcd crashes while a member joins ---------------------------------------------------------------------
def test_joiner_crash_gate_fails_then_resume(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=83), "openshift")
    lab = b.lab
    joiner = lab.hosts[1]
    before = snapshot(lab)
    journal = tmp_path / "j"
    key = f"join-{joiner.name}"
    # stop the tool right after "move the old data aside", before the manifest comes back
    step = build_plan(Context(load_inventory(lab.inventory_path), b.backup, Method.SNAPSHOT_RESTORE, "x")).step(key)
    n = next(i for i, c in enumerate(step.commands, 1) if c.purpose.startswith("move the old data aside"))
    assert step.commands[n].purpose.startswith("move the etcd manifest back")
    killed = recover(b, journal, env={"ETCDRESCUE_FAULT": f"after-command:{key}:{n}"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    conf = host_file(lab, 1, "/etc/etcd/etcd.conf")
    good = conf.read_bytes()
    assert b"ETCD_PEER_CERT_FILE=/etc/etcd/peer.crt\n" in good
    conf.write_bytes(good.replace(b"ETCD_PEER_CERT_FILE=/etc/etcd/peer.crt", b"ETCD_PEER_CERT_FILE=/etc/etcd/gone.crt"))

    failed = recover(b, journal, "--resume", "--gate-timeout", "15")
    assert failed.returncode == 3, failed.stdout + failed.stderr
    err = failed.stderr
    assert f"last etcd log lines on {joiner.name}:" in err, err
    assert "gone.crt" in err, err  # etcd's own complaint, from the member's log
    assert "--resume" in err and f"journal {next(journal.glob('*.jsonl'))}" in err
    events = journal_events(journal)
    gate = [e for e in events if e["event"] == "gate" and not e["ok"]]
    assert gate and joiner.name in gate[-1]["error"] and "gone.crt" in gate[-1]["logs"][joiner.name]
    step_end = [e for e in events if e["event"] == "step_end"][-1]
    assert step_end["step"] == key and step_end["status"] == "failed"
    assert events[-1]["event"] == "run_end" and events[-1]["exit_code"] == 3
    (tmp_path / "gate-stderr.txt").write_text(err)

    conf.write_bytes(good)  # the operator fixes the cause
    done = recover(b, journal, "--resume")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"at step {key}" in done.stdout
    assert_recovered(b, journal, keys=500, post=0)
    assert audit(lab, before) == []
