"""Never act on a stale picture (issue 17), on one shared okd3 lab.

The lock comes before the pre-flight and is held through every confirmation; the tool looks again
immediately before its first change; a run that changed nothing leaves no lock and nothing to resume.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcdrescue.journal import read_journal
from etcdrescue.lab import Lab
from etcdrescue.locks import LOCK_PATH
from etcdrescue.resume import find_unfinished

from .conftest import requires_lab
from .helpers import PRE, Broken, break_lab, etcdrescue, tree_digest
from .test_recover import assert_recovered

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(600)]

ENV = {**os.environ, "GRPC_VERBOSITY": "NONE", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("locks") / "lab", 3, subnet=84)
    try:
        lab.up(timeout=60)
        yield lab
    finally:
        lab.down()


@pytest.fixture
def lab(shared: Lab) -> Lab:
    """The shared lab with every member serving: a test before left it recovered, or with members stopped."""
    for h in shared.hosts:
        if shared.host_path(h, shared.shape.paths.disabled_manifest).exists():
            shared.start_etcd(h, wait=False)
    shared.wait_healthy(timeout=90)
    return shared


class Prompted:
    """`etcdrescue ARGS` with a terminal on its standard input, so it asks; its output is collected as it comes."""

    def __init__(self, *args: str) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "etcdrescue", *args], stdin=slave,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
        os.close(slave)
        self.master = master
        self.out = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            self.out += chunk.decode(errors="replace")

    def expect(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.out:
            assert self.proc.poll() is None or time.monotonic() < deadline, f"exited before {text!r}:\n{self.out}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.out}"
            time.sleep(0.05)

    def answer(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def wait(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(10)
        os.close(self.master)
        return code


def locks_on(lab: Lab) -> list[str]:
    return [h.name for h in lab.hosts if lab.host_path(h, LOCK_PATH).exists()]


def only_newest(journal: Path, into: Path) -> Path:
    """A directory holding only the newest journal of `journal` (what `assert_recovered` reads)."""
    into.mkdir()
    newest = max(journal.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    shutil.copy(newest, into / newest.name)
    return into


def test_a_cluster_healed_at_the_prompt_is_not_touched(lab: Lab, tmp_path: Path) -> None:
    """The stale-confirmation race: quorum lost at the pre-flight, healed while the tool waits at its prompt."""
    for h in lab.hosts[1:]:
        lab.stop_etcd(h)
    journal = tmp_path / "j"
    run = Prompted("recover", "-i", str(lab.inventory_path), "--journal", str(journal))
    run.expect("Type the cluster name (lab)")
    assert locks_on(lab) == [h.name for h in lab.hosts], "the lock is held through the confirmation"
    for h in lab.hosts[1:]:
        lab.start_etcd(h, wait=False)
    lab.wait_healthy(timeout=60)
    before = tree_digest(lab)
    run.answer("lab")
    run.expect("[y/N]")
    run.answer("y")
    assert run.wait() == 2, run.out
    assert "the cluster changed since the pre-flight" in run.out, run.out
    assert "master02.lab.example: healthy no -> yes" in run.out, run.out
    assert "nothing was changed on any host; the locks are released" in run.out
    assert tree_digest(lab) == before, "a healed cluster is left exactly as it was"
    assert all(lab.healthy(h) for h in lab.hosts)
    assert locks_on(lab) == []
    assert find_unfinished(journal, "lab") is None, "a refused run leaves nothing to resume"
    events = read_journal(next(journal.glob("*.jsonl")))
    end = events[-1]
    assert end["event"] == "run_end" and end["exit_code"] == 2 and end["changed"] is False
    assert next(e for e in events if e["event"] == "fresh_look")["changes"]
    report = etcdrescue("report", str(next(journal.glob("*.jsonl"))))
    assert "REFUSED (exit 2, nothing changed)" in report.stdout, report.stdout


def test_two_recoveries_at_once_one_runs(lab: Lab, tmp_path: Path) -> None:
    """Two bastions (each its own journal) start together: one recovers, the other is refused at once, naming the
    holder; a third run on the winner's machine is refused by the local lock, never told to resume a live run."""
    b = break_lab(lab, "openshift")
    assert b.backup
    args = ["recover", "-i", str(lab.inventory_path), "--backup", b.backup, "--yes"]
    procs = [subprocess.Popen([sys.executable, "-m", "etcdrescue", *args, "--journal", str(tmp_path / f"j{i}")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ENV) for i in (0, 1)]
    while all(p.poll() is None for p in procs):
        time.sleep(0.05)
    loser = next(p for p in procs if p.poll() is not None)
    winner = next(p for p in procs if p is not loser)
    third = etcdrescue(*args, "--journal", str(tmp_path / f"j{procs.index(winner)}"), timeout=60)
    won_out, won_err = winner.communicate(timeout=400)
    lost_out, lost_err = loser.communicate()
    assert winner.returncode == 0, won_out + won_err
    assert loser.returncode == 2, lost_out + lost_err
    refusal = lost_err.strip().splitlines()[-1]
    assert "holds the lock of this cluster" in refusal and f"(pid {winner.pid}," in refusal, refusal
    assert "alive: pid" in refusal and "nothing changed" in refusal, refusal
    assert not list((tmp_path / f"j{procs.index(loser)}").glob("*.jsonl"))
    if third.returncode == 2 and "another etcdrescue on this machine holds the lock" in third.stderr:
        assert f"(pid {winner.pid}," in third.stderr
    else:  # the winner had already finished: the third found a healthy cluster
        assert "healthy quorum" in third.stderr, third.stderr
    assert "--resume" not in third.stderr
    assert_recovered(b, tmp_path / f"j{procs.index(winner)}", keys=500, post=0)
    assert locks_on(lab) == []


def dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_stale_locks_are_named_and_broken_on_request(lab: Lab, tmp_path: Path) -> None:
    """A lock of a dead pid on this machine and one whose lease expired elsewhere: refused, named stale;
    --break-lock says what it broke and keeps both aside."""
    b = break_lab(lab, "openshift")
    assert b.backup
    dead = {"user": "root", "machine": socket.gethostname(), "pid": dead_pid(), "since": "2026-01-01T00:00:00Z",
            "stamp": "20260101T000000Z", "renewed": time.time() - 30, "pid_start": "1"}
    gone = {"user": "alice", "machine": "bastion-2.example", "pid": 4242, "since": "2026-01-01T00:00:00Z",
            "stamp": "20260101T000001Z", "renewed": time.time() - 3600}
    planted = {0: (json.dumps(dead) + "\n").encode(), 1: (json.dumps(gone) + "\n").encode()}
    for i, text in planted.items():
        lab.host_path(lab.hosts[i], LOCK_PATH).write_bytes(text)
    before = tree_digest(lab)
    journal = tmp_path / "j"
    args = ["recover", "-i", str(lab.inventory_path), "--backup", b.backup, "--yes", "--journal", str(journal)]
    refused = etcdrescue(*args, timeout=90)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith(f"etcdrescue: master01.lab.example: {LOCK_PATH} says root@{socket.gethostname()} "
                           f"(pid {dead['pid']}, run 20260101T000000Z) since 2026-01-01T00:00:00Z holds the lock of "
                           "this cluster (and on 1 more member(s)); "
                           f"stale: pid {dead['pid']} is not running on this machine"), line
    assert tree_digest(lab) == before
    assert not list(journal.glob("*.jsonl"))

    broke = etcdrescue(*args, "--break-lock")
    assert broke.returncode == 0, broke.stdout + broke.stderr
    said = [ln for ln in broke.stdout.splitlines() if ln.startswith("--break-lock: ")]
    assert len(said) == 2, broke.stdout
    assert "master01.lab.example: broke the lock of root@" in said[0] and "not running on this machine" in said[0]
    assert "master02.lab.example: broke the lock of alice@bastion-2.example" in said[1]
    assert "stale: its lease expired" in said[1]
    assert_recovered(b, journal, keys=500, post=0)
    for i, text in planted.items():
        (aside,) = lab.host_path(lab.hosts[i], LOCK_PATH).parent.glob("lock.broken-*")
        assert aside.read_bytes() == text
        aside.rename(aside.with_name("kept-" + aside.name))
    assert locks_on(lab) == []


def test_declined_at_the_stop_then_rerun(lab: Lab, tmp_path: Path) -> None:
    """No at the first step's confirmation: nothing changed, no lock left, nothing to resume; a rerun goes."""
    b = break_lab(lab, "openshift")
    assert b.backup
    journal = tmp_path / "j"
    args = ["recover", "-i", str(lab.inventory_path), "--backup", b.backup, "--journal", str(journal)]
    before = tree_digest(lab)
    run = Prompted(*args)
    run.expect("Type the cluster name (lab)")
    run.answer("lab")
    run.expect("[y/N]")
    run.answer("n")
    assert run.wait() == 130, run.out
    assert "operator declined" in run.out and "nothing was changed on any host; the locks are released" in run.out
    assert tree_digest(lab) == before
    assert locks_on(lab) == []
    again = etcdrescue(*args, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_recovered(b, only_newest(journal, tmp_path / "newest"), keys=500, post=0)


def test_ctrl_c_is_journaled_and_resumed(lab: Lab, tmp_path: Path) -> None:
    b = break_lab(lab, "openshift")
    assert b.backup
    journal = tmp_path / "j"
    args = ["recover", "-i", str(lab.inventory_path), "--backup", b.backup, "--yes", "--journal", str(journal)]
    proc = subprocess.Popen([sys.executable, "-m", "etcdrescue", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not any(e["event"] == "step_end" and e["status"] == "done"
                  for p in journal.glob("*.jsonl") for e in read_journal(p)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    (path,) = journal.glob("*.jsonl")
    end = read_journal(path)[-1]
    assert end["event"] == "run_end" and end["interrupted"] and end["error"] == "interrupted (Ctrl-C)", end
    assert end["changed"] is True
    assert locks_on(lab) == [h.name for h in lab.hosts], "a run stopped mid-way keeps its locks for its resume"
    report = etcdrescue("report", str(path))
    assert "INTERRUPTED (interrupted (Ctrl-C))" in report.stdout, report.stdout
    resumed = etcdrescue(*args, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "(interrupted by: interrupted (Ctrl-C))" in resumed.stdout
    assert_recovered(b, journal, keys=500, post=0)
    assert locks_on(lab) == []


def test_a_backup_at_the_survivors_revision_restarts_nothing(lab: Lab, tmp_path: Path) -> None:
    """No write after the backup: the revisions do not go back, so no control-plane restart and no advice."""
    lab.put_keys(PRE, 500)
    time.sleep(0.6)  # etcd flushes its db about every 100 ms
    backup = lab.backup_openshift(lab.hosts[0])
    lab.break_quorum(lab.hosts[1:])
    journal = tmp_path / "j"
    res = etcdrescue("recover", "-i", str(lab.inventory_path), "--backup", backup, "--yes", "--journal", str(journal))
    assert res.returncode == 0, res.stdout + res.stderr
    compared = [ln for ln in res.stdout.splitlines() if "compared: backup at revision" in ln]
    assert compared and "newest survivor master01.lab.example at" in compared[0], res.stdout
    (path,) = journal.glob("*.jsonl")
    start = next(e for e in read_journal(path) if e["event"] == "run_start")
    assert start["revisions"]["path"] == "continues", start["revisions"]
    assert not [k for k in start["steps"] if "restart" in k or "kubernetes" in k], start["steps"]
    assert "restart by hand" not in res.stdout
    assert_recovered(Broken(lab, backup), journal, keys=500, post=0)
