"""The run report, on a journal recorded from a real lab recovery (tests/data/report_journal.jsonl)
and on hand-made journals for the failure and crash cases.

The end-to-end check (a fresh recovery on the lab, then its report) is in test_rehearse.py, which
already runs one: a second 70 s recovery here would only double the runtime.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from etcdrescue import cli
from etcdrescue.documents.report import parse_runs, render_html, render_markdown
from etcdrescue.journal import read_journal

DATA = Path(__file__).parent / "data" / "report_journal.jsonl"


def events() -> list[dict[str, Any]]:
    return read_journal(DATA)


def test_recorded_recovery_report() -> None:
    evs = events()
    doc = render_markdown(evs, "/var/log/lab-20261129T230720Z.jsonl")
    keys = evs[0]["steps"]
    assert len(keys) == 8
    for i, key in enumerate(keys, 1):
        assert f"| {i} | `{key}` |" in doc
        assert f"### {i}. `{key}`:" in doc
    gates = [e for e in evs if e["event"] == "gate"]
    assert doc.count("Gate **passed**:") == len(gates) == 6
    for g in gates:
        assert g["title"] in doc
    assert "- Result: **RECOVERED**" in doc
    assert "- Cluster: lab\n" in doc
    assert "- Cluster: (not recorded)" in render_markdown(evs, "renamed.jsonl")
    # every command that ran, with its host and exit code; skipped ones are marked
    ran = [e for e in evs if e["event"] == "command" and not e.get("skipped")]
    skipped = [e for e in evs if e["event"] == "command" and e.get("skipped")]
    assert doc.count(": exit 0 in ") == sum(1 for e in ran if e["exit"] == 0)
    assert doc.count(": exit 1 in ") == 2  # member add refused twice while the cluster settled
    assert doc.count("attempt 3") == 1
    assert doc.count("skipped, already in place") == len(skipped)
    assert "Member 5a42a0294febddf2 added to cluster" in doc  # stdout excerpt
    # members after, from the final gate (the journal has no `members` event yet)
    after = doc.split("## Members after")[1].split("\n## ")[0]
    assert "from the last passed gate: all members healthy" in after
    assert after.count("| yes | yes |") == 3
    assert "## Members before\n\nNot recorded in this journal." in doc


def test_failed_and_interrupted_runs(tmp_path: Path) -> None:
    start = {"ts": 100.0, "event": "run_start", "dry_run": False, "steps": ["stop-etcd", "seed-data", "verify"],
             "mode": "m", "seed": "a", "stamp": "S"}
    preflight = {"ts": 99.0, "event": "preflight", "verdict": "quorum lost (1/3 healthy, 2 needed)",
                 "hosts": [{"name": "a", "healthy": True, "manifest": "yes", "etcd_pid": "42", "bash": "5.2"}],
                 "backup": {"path": "/b", "kind": "dir", "size_kb": 120, "snapshot": {"revision": 7, "total_keys": 9}}}
    failed = [
        preflight,
        start,
        {"ts": 100.5, "event": "members", "phase": "before", "members": [{"id": "5a", "name": "a"}]},
        {"ts": 101.0, "event": "step_start", "step": "stop-etcd", "title": "Stop"},
        {"ts": 102.0, "event": "command", "step": "stop-etcd", "host": "a", "script": "mv x y", "exit": 0,
         "attempt": 1, "duration": 0.5, "stdout": "\n".join(f"line{i}" for i in range(30)), "stderr": ""},
        {"ts": 170.0, "event": "gate", "title": "down everywhere", "ok": False, "error": "etcd still running on b",
         "logs": {"b": "boom | pipe"}},
        {"ts": 170.1, "event": "step_end", "step": "stop-etcd", "status": "failed", "error": "gate not met",
         "duration": 69.1},
        {"ts": 170.2, "event": "run_end", "ok": False, "error": "gate not met", "exit_code": 3},
        {"ts": 170.15, "event": "members", "phase": "after", "error": "a: member list: context deadline exceeded"},
    ]
    doc = render_markdown(failed, "c-S.jsonl")
    assert "- Result: **FAILED (exit 3): gate not met**" in doc
    assert "Gate **FAILED**: down everywhere, after 68.0 s" in doc
    assert "etcd still running on b" in doc and "boom | pipe" in doc
    assert "line29" in doc and "line5\n" not in doc and "22 earlier lines in the journal" in doc
    assert "| 2 | `seed-data` |  | not run |" in doc and "| 3 | `verify` |  | not run |" in doc
    # pre-flight and the engine's `members` events are rendered when present
    assert "Verdict: quorum lost (1/3 healthy, 2 needed)" in doc
    assert "| name | healthy | manifest | etcd_pid |\n|---|---|---|---|\n| a | yes | yes | 42 |" in doc
    assert "Backup `/b`: dir, 120 KiB, revision 7, 9 keys" in doc
    assert "| id | name |\n|---|---|\n| 5a | a |" in doc.split("## Members before")[1]
    after = doc.split("## Members after")[1].split("\n## ")[0]
    assert "Member list unavailable at" in after and "context deadline exceeded" in after
    # killed mid-step: no step_end, no run_end
    doc = render_markdown(failed[:5], "c-S.jsonl")
    assert "INCOMPLETE" in doc and "| 1 | `stop-etcd` | Stop | running |" in doc
    resume = [*failed, {**start, "start_at": "seed-data"}]
    resumed = parse_runs(resume)
    assert len(resumed) == 2
    assert [st.status for st in resumed[1].steps] == ["before resume point", "not run", "not run"]
    assert "- Resumed at step `seed-data`" in render_markdown(resume, "c-S.jsonl")
    assert "no run_start" in render_markdown([], "x.jsonl")


class Balanced(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("input", "meta", "br", "hr"):
            self.stack.append(tag)
        self.pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        assert self.stack.pop() == tag


def test_cli_report_md_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "journals"
    d.mkdir()
    (d / "lab-20261129T230720Z.jsonl").write_text(DATA.read_text())
    assert cli.main(["report", str(d)]) == 0  # a directory means its newest journal
    assert "# etcd recovery report: lab-20261129T230720Z.jsonl" in capsys.readouterr().out
    out = tmp_path / "r.html"
    assert cli.main(["report", str(d / "lab-20261129T230720Z.jsonl"), "--format", "html", "-o", str(out)]) == 0
    page = out.read_text()
    assert page == render_html(events(), str(d / "lab-20261129T230720Z.jsonl"))
    p = Balanced()
    p.feed(page)
    cmds = [e for e in events() if e["event"] == "command"]
    outputs = sum(1 for e in cmds for k in ("stdout", "stderr") if (e.get(k) or "").strip())
    assert p.stack == [] and p.pre == len(cmds) + outputs
    assert cli.main(["report", str(tmp_path / "nope.jsonl")]) == 2
    assert "journal not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2


def test_truncated_last_line_is_tolerated(tmp_path: Path) -> None:
    """A crash can leave half a line at the end; the report shows everything before it."""
    j = tmp_path / "c-S.jsonl"
    j.write_text(DATA.read_text() + json.dumps({"event": "step_start"})[:10])
    assert "RECOVERED" in render_markdown(read_journal(j), str(j))


def test_dry_run_journal_shows_each_commands_mark() -> None:
    evs = [{"ts": 1.0, "event": "run_start", "dry_run": True, "steps": ["stop-etcd"], "mode": "m", "seed": "a",
            "stamp": "S"},
           {"ts": 1.1, "event": "step_start", "step": "stop-etcd", "title": "Stop"},
           {"ts": 1.2, "event": "command", "step": "stop-etcd", "host": "a", "script": "mv x y", "mutates": True,
            "dry_run": "would_run", "note": "would run"},
           {"ts": 1.3, "event": "step_end", "step": "stop-etcd", "status": "planned", "duration": 0.2},
           {"ts": 1.4, "event": "run_end", "ok": True, "duration": 0.4}]
    doc = render_markdown(evs, "c-S.jsonl")
    assert "- Result: **DRY RUN (nothing changed)**" in doc
    assert "- `a`: dry run, would run" in doc and "exit ?" not in doc


def test_a_steps_time_is_split_into_commands_gates_and_retries() -> None:
    """The recorded run's `member add` was refused twice while the cluster settled: that wait is retries."""
    runs = parse_runs(events())
    add_step = next(st for st in runs[0].steps if any(c.get("attempt") == 3 for c in st.commands))
    split = add_step.time_split()
    attempts = [c for c in add_step.commands if " member add " in str(c.get("script"))]
    first, last = attempts[0], attempts[-1]
    assert split.retries == pytest.approx((last["ts"] - last["duration"]) - (first["ts"] - first["duration"]))
    assert split.retries > 0.5
    finished = [c for c in add_step.commands if "duration" in c]
    retried = sum(c["duration"] for c in attempts[:-1])
    assert split.commands == pytest.approx(sum(c["duration"] for c in finished) - retried)
    gate = add_step.gates[0]
    before = max(e["ts"] for e in add_step.events if e["ts"] < gate["ts"])
    assert split.gates == pytest.approx(gate["ts"] - before)
    assert add_step.duration is not None and split.commands + split.gates + split.retries <= add_step.duration + 0.01
    doc = render_markdown(events(), "lab.jsonl")
    assert "| Duration | Commands | Gates | Retries | Gate |" in doc
    assert "- Wall time: " in doc and "(from the run's start)" in doc


def test_refusals_say_what_etcd_waited_for() -> None:
    """The engine journals each refused try with the retry's why; the report gives one line per retried command."""
    evs = events()
    why = "etcd 3.6.17 accepts a member add once a quorum of the voting members has been connected for 5 s"
    adds = [e for e in evs if e.get("event") == "command" and " member add " in str(e.get("script"))]
    for e in adds[:-1]:
        if e.get("exit") != 0:
            e["refused"] = why
    refused = sum(1 for e in adds if e.get("refused"))
    assert refused == 2, "the recorded run's add was refused twice"
    doc = render_markdown(evs, "lab.jsonl")
    step = next(e["step"] for e in adds if e.get("refused"))
    line = next(ln for ln in doc.splitlines() if ln.startswith(f"- `{step}` on "))
    assert ": refused 2 times over " in line and line.endswith(f", then answered: {why}."), line
    assert "Refused, then tried again:" in doc
    assert "Refused, then tried again:" not in render_markdown(events(), "lab.jsonl"), "no refusal, no section"


def test_wall_time_counts_from_the_pre_flight() -> None:
    evs = events()
    start = next(e for e in evs if e["event"] == "run_start")
    end = next(e for e in evs if e["event"] == "run_end")
    preflight = {"event": "preflight", "ts": start["ts"] - 0.1, "verdict": "ok", "hosts": [],
                 "started": start["ts"] - 3.0}
    doc = render_markdown([preflight, *evs], "lab.jsonl")
    wall = end["ts"] - start["ts"] + 3.0
    assert f"- Wall time: {wall:.1f} s (pre-flight included)" in doc
