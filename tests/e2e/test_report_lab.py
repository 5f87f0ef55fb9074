"""The report of a real recovery answers "what changed": okd3 lab (subnet 214), one recovery from an openshift-ansible
backup, driven through a terminal where an operator types the cluster name and answers every confirmation.

Checked against the lab itself, not against the journal: the paths the report says were moved aside and left
over exist on the hosts (and nothing named with the run's stamp is missing from it), the member IDs after are
the live member list's, the seed's ID before is the one it had before the break, and the operator's waits are
the prompts this test answered.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from etcdrescue.documents.report import parse_runs, render_markdown
from etcdrescue.journal import read_journal
from etcdrescue.lab import Lab

from .conftest import requires_lab
from .helpers import break_lab, etcdrescue

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(400)]

LabFactory = Callable[..., Lab]
PROMPTS = 5
"""The start (typing the cluster name) and the four destructive steps: stop, seed data, two joins."""


class Terminal:
    """`etcdrescue recover` on a pseudo-terminal, so it asks as it asks a person."""

    def __init__(self, *args: str) -> None:
        self.fd, tty = pty.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "etcdrescue", *args], stdin=tty, stdout=tty, stderr=tty,
                                     env={**os.environ, "GRPC_VERBOSITY": "NONE"}, close_fds=True)
        os.close(tty)
        self.seen = ""

    def until(self, pattern: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.seen):
            left = deadline - time.monotonic()
            if select.select([self.fd], [], [], max(0.0, min(left, 1.0)))[0]:
                try:
                    self.seen += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:
                    break
            elif left <= 0 or self.proc.poll() is not None:
                break
        found = re.search(pattern, self.seen)
        assert found, f"no {pattern!r} on the terminal: {self.seen[-2000:]}"
        taken, self.seen = self.seen[: found.end()], self.seen[found.end():]
        return taken

    def answer(self, text: str) -> None:
        time.sleep(0.3)  # a person reads before answering: the wait the report must set apart
        os.write(self.fd, text.encode() + b"\n")

    def finish(self, timeout: float = 300) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.5)[0]:
                try:
                    self.seen += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:
                    break
        code = self.proc.wait(timeout=10)
        os.close(self.fd)
        return code


def stamped(lab: Lab, stamp: str) -> dict[str, set[str]]:
    """Every entry named with the stamp under the host's etcd, manifest, settings and tool directories."""
    out: dict[str, set[str]] = {}
    for h in lab.hosts:
        found = out.setdefault(h.name, set())
        for sub in ("var/lib/etcd", "etc/origin", "etc/etcd", "var/lib/etcdrescue"):
            base = h.dir / sub
            if not base.exists():
                continue
            for p in base.rglob(f"*{stamp}*"):
                if not any(stamp in part for part in p.relative_to(h.dir).parts[:-1]):
                    found.add("/" + str(p.relative_to(h.dir)))
    return out


def section(doc: str, title: str) -> str:
    return doc.split(f"### {title}\n")[1].split("\n### ")[0].split("\n## ")[0]


def test_report_of_a_recovery_names_what_changed(lab_factory: LabFactory, tmp_path: Path) -> None:
    lab = lab_factory(3, subnet=214)
    seed = lab.hosts[0]
    seed_id_before = next(f"{m['id']:x}" for m in lab.member_list() if m["name"] == seed.name)
    b = break_lab(lab, "openshift")
    journal_dir = tmp_path / "journal"
    term = Terminal("recover", "-i", str(lab.inventory_path), "--backup", str(b.backup), "--journal", str(journal_dir))
    term.until(r"Type the cluster name \(lab\) to start the recovery: ")
    term.answer("lab")
    for _ in range(PROMPTS - 1):
        term.until(r"\[y/N\] ")
        term.answer("y")
    assert term.finish() == 0, term.seen[-3000:]

    (journal,) = journal_dir.glob("*.jsonl")
    events = read_journal(journal)
    (run,) = parse_runs(events)
    stamp = run.start["stamp"]
    report = etcdrescue("report", str(journal), "--no-commands")
    assert report.returncode == 0, report.stderr
    doc = report.stdout
    assert doc == render_markdown(events, str(journal), commands=False)
    assert "## Appendix" not in doc and "- Result: **RECOVERED**" in doc

    # moved aside: each member's old data dir and settings, as they really are on the hosts
    moved = section(doc, "Moved aside")
    on_hosts = stamped(lab, stamp)
    for h in lab.hosts:
        for original in ("/var/lib/etcd/member", "/etc/etcd/etcd.conf"):
            kept = f"{original}.etcdrescue-{stamp}"
            assert f"| `{h.name}` | `{original}` | `{kept}` |" in moved
            assert kept in on_hosts[h.name]
    # leftovers: exactly what the stamp names on each host, and a tidy command naming each, quoted, never run
    left = section(doc, "Leftovers")
    for h in lab.hosts:
        part = left.split(f"`{h.name}`:")[1].split("\n`master")[0]
        listed = set(re.findall(r"^\| `(/[^`]+)` \|", part, re.M))
        assert listed == on_hosts[h.name], h.name
        assert f"/var/lib/etcdrescue/lock.released-{stamp}" in listed
        (tidy,) = re.findall(r"^rm -r -- (.+)$", part, re.M)
        assert set(tidy.split()) == listed
    assert f"/var/lib/etcd/etcdrescue-restore-{stamp}.complete" in on_hosts[seed.name]

    # members: IDs after are the live member list's; the seed's ID before is the one it had before the break
    table = section(doc, "Members and revisions")
    live = {m["name"]: f"{m['id']:x}" for m in lab.member_list()}
    rows = {r[0].strip("` "): [c.strip() for c in r[1:]] for r in
            (line.strip("|").split("|") for line in table.splitlines() if line.startswith("| `"))}
    assert set(rows) == {h.name for h in lab.hosts}
    for name, (id_before, rev_before, id_after, rev_after, _role) in rows.items():
        assert id_after == live[name], name
        assert rev_after.isdigit(), (name, rev_after)
        if name == seed.name:
            assert (id_before, id_before != id_after) == (seed_id_before, True)
            assert rev_before.isdigit()
        else:
            assert (id_before, rev_before) == ("-", "-"), "a broken member answered before the run"
    backup_rev = run.preflight["backup"]["snapshot"]["revision"] if run.preflight else None
    assert f"Revisions: the backup was at revision {backup_rev}; revisions go back" in table

    # the operator's time: the prompts this test answered, set apart from the tool's
    waits = [e for e in events if e["event"] == "operator_wait"]
    assert [w["what"] for w in waits] == ["start confirmation (typing the cluster name)"] + ["confirmation"] * 4
    assert [w.get("step") for w in waits[1:]] == [k for k in run.start["steps"] if k.startswith(
        ("stop-etcd", "seed-data", "join-"))]
    assert all(w.get("answer") is True for w in waits[1:])
    spent = section(doc, "Time")
    total = sum(w["seconds"] for w in waits)
    assert f"- Waiting for the operator: {total:.1f} s\n" in spent
    assert spent.count("  - confirmation, before step `") == 4
    wall = float(re.search(r"- Wall time: ([0-9.]+) s", spent).group(1))  # type: ignore[union-attr]
    tool = float(re.search(r"- The tool's own time: ([0-9.]+) s", spent).group(1))  # type: ignore[union-attr]
    assert tool == pytest.approx(wall - total, abs=0.11)
    assert json.loads(journal.read_text().splitlines()[-1])["event"] == "run_end"
