"""Run report: what a recovery actually did, rendered from its JSON-lines journal.

Why from the journal and not from live state: the report is for the post-mortem
and the change record, and must be reproducible after the fact (and after a
crash) from the one file the engine fsyncs line by line. Pure rendering.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import Revisions
from ..procedures import DEFAULT, named
from ..procedures.base import Procedure
from .changes import leftovers, members_and_revisions, moved_aside, time_split
from .runbook import fence, markdown_to_html

Event = dict[str, Any]
EXCERPT_LINES = 8


@dataclass
class StepRecord:
    key: str
    title: str = ""
    started: float | None = None
    ended: float | None = None
    status: str = "not run"
    duration: float | None = None
    error: str = ""
    events: list[Event] = field(default_factory=list)

    @property
    def gates(self) -> list[Event]:
        return [e for e in self.events if e.get("event") == "gate"]

    @property
    def commands(self) -> list[Event]:
        return [e for e in self.events if e.get("event") == "command"]

    def time_split(self) -> TimeSplit:
        """Where the step's time went, from the events' end times and durations.

        A command's attempts before its last are retries (with the waits between them, e.g. a `member add`
        refused while the cluster settles); a gate's time runs from the event before it to its verdict.
        """
        commands = retries = gates = 0.0
        attempts: dict[tuple[object, object], list[Event]] = {}
        for e in self.commands:
            if "duration" in e:
                attempts.setdefault((e.get("host"), e.get("script")), []).append(e)
        for runs in attempts.values():
            last = runs[-1]
            commands += float(last["duration"])
            if len(runs) > 1:
                retries += (last["ts"] - last["duration"]) - (runs[0]["ts"] - runs[0]["duration"])
        previous = self.started
        for e in self.events:
            if e.get("event") == "gate" and previous is not None and "ts" in e:
                gates += e["ts"] - previous
            previous = e.get("ts", previous)
        return TimeSplit(commands, gates, retries)


def refusals(steps: list[StepRecord]) -> list[str]:
    """What etcd refused for a while and the run tried again, with what etcd waited for: the Retries column's why."""
    out: list[str] = []
    for st in steps:
        tries: dict[tuple[object, object], list[Event]] = {}
        for e in st.commands:
            if "duration" in e:
                tries.setdefault((e.get("host"), e.get("script")), []).append(e)
        for runs in tries.values():
            refused = [e for e in runs if e.get("refused")]
            if refused:
                last = runs[-1]
                spent = (last["ts"] - last["duration"]) - (runs[0]["ts"] - runs[0]["duration"])
                out.append(f"- `{st.key}` on `{last.get('host')}`: refused {len(refused)} times over {_secs(spent)}, "
                           f"then {'answered' if last.get('exit') == 0 else 'gave up'}: {refused[0]['refused']}.")
    return ["Refused, then tried again:", "", *out, ""] if out else []


@dataclass(frozen=True)
class TimeSplit:
    commands: float
    gates: float
    retries: float


@dataclass
class RunRecord:
    start: Event
    steps: list[StepRecord]
    end: Event | None = None
    members: list[Event] = field(default_factory=list)
    preflight: Event | None = None
    waits: list[Event] = field(default_factory=list)
    """`operator_wait` events: prompts, confirmations, dialogs and pauses (before the run and during it)."""
    leftovers: Event | None = None
    """The `leftovers` event the session writes when the run ends: what the stamp names on every master."""

    def members_event(self, when: str) -> Event | None:
        """The engine's `members` event for "before"/"after" (keyed `phase`; `when` also accepted)."""
        return next((e for e in self.members if e.get("phase") == when), None)

    @property
    def ok(self) -> bool:
        return bool(self.end and self.end.get("ok"))

    @property
    def procedure(self) -> Procedure:
        """What the run was (journals from before procedures had names ran the quorum recovery)."""
        return named(str(self.start.get("procedure", DEFAULT)))

    @property
    def result(self) -> str:
        if self.end is None:
            return "INCOMPLETE (no run_end: the run was killed or is still going)"
        if self.start.get("dry_run"):
            return "DRY RUN (nothing changed)"
        if self.ok:
            return self.procedure.done
        if self.end.get("interrupted"):
            return (f"INTERRUPTED ({self.end.get('error', '')}): "
                    + ("changed hosts before it stopped; --resume continues it" if self.end.get("changed")
                       else "nothing changed"))
        if not self.end.get("changed", True):
            return f"REFUSED (exit {self.end.get('exit_code', '?')}, nothing changed): {self.end.get('error', '')}"
        return f"FAILED (exit {self.end.get('exit_code', '?')}): {self.end.get('error', '')}"


def parse_runs(events: list[Event]) -> list[RunRecord]:
    """Group journal events into runs (a journal may hold a run and its resume)."""
    runs: list[RunRecord] = []
    current: StepRecord | None = None
    preflight: Event | None = None
    waits: list[Event] = []
    for e in events:
        kind = e.get("event")
        if kind == "preflight":  # written by `recover` before the engine's run_start
            preflight = e
            continue
        if kind == "operator_wait" and (not runs or runs[-1].end is not None):
            waits.append(e)  # a prompt before the run it starts
            continue
        if kind == "run_start":
            keys = list(e.get("steps", []))
            skip = keys.index(e["start_at"]) if e.get("start_at") in keys else 0
            runs.append(RunRecord(e, [StepRecord(k, status="before resume point" if i < skip else "not run")
                                      for i, k in enumerate(keys)], preflight=preflight, waits=waits))
            current, preflight, waits = None, None, []
            continue
        if not runs:
            continue
        run = runs[-1]
        if kind == "run_end":
            run.end = e
        elif kind == "operator_wait":
            run.waits.append(e)
        elif kind == "leftovers":
            run.leftovers = e
        elif kind == "members":
            run.members.append(e)
        elif kind == "step_start":
            current = next((s for s in run.steps if s.key == e.get("step")), None)
            if current is None:
                current = StepRecord(str(e.get("step")))
                run.steps.append(current)
            current.title, current.started, current.status = str(e.get("title", "")), e.get("ts"), "running"
        elif kind == "step_end" and current is not None:
            current.ended, current.status = e.get("ts"), str(e.get("status", "?"))
            current.duration, current.error = e.get("duration"), str(e.get("error", ""))
        elif current is not None:
            current.events.append(e)
    return runs


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _secs(value: object) -> str:
    return f"{value:.1f} s" if isinstance(value, int | float) else "-"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def excerpt(text: str, lines: int = EXCERPT_LINES) -> str:
    kept = text.rstrip("\n").splitlines()
    if len(kept) <= lines:
        return "\n".join(kept)
    return "\n".join([f"... ({len(kept) - lines} earlier lines in the journal)", *kept[-lines:]])


def member_table(rows: list[dict[str, Any]]) -> list[str]:
    """A table of whatever per-member fields the journal carries (gate rows, or `members` events)."""
    if not rows:
        return ["(no member data)", ""]
    cols = list(dict.fromkeys(k for r in rows for k in r))
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_cell(_fmt(r.get(c, ""))) for c in cols) + " |")
    return [*out, ""]


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list | tuple):
        return ", ".join(map(str, v))
    return str(v)


PREFLIGHT_COLUMNS = ("name", "healthy", "manifest", "disabled", "etcd_pid", "client_port", "peer_port", "member_kb",
                     "free_kb", "raft_index", "revision")


def _preflight_lines(e: Event) -> list[str]:
    out = ["## Pre-flight", "", f"Recorded {_when(e.get('ts'))}. Verdict: {e.get('verdict', '?')}", ""]
    rows = [{k: h.get(k, "") for k in PREFLIGHT_COLUMNS if k in h} for h in e.get("hosts") or []]
    out += member_table(rows)
    if e.get("seed_reason"):
        out += [f"Seed: {e['seed_reason']}", ""]
    if e.get("revisions"):
        out += [f"Revisions: {e['revisions']}", ""]
    b = e.get("backup")
    if isinstance(b, dict):
        snap = b.get("snapshot") or {}
        detail = f", revision {snap.get('revision')}, {snap.get('total_keys')} keys" if snap else ""
        out += [f"Backup `{b.get('path', '?')}`: {b.get('kind', '?')}, {b.get('size_kb', '?')} KiB{detail}"
                + (f"; error: {b['error']}" if b.get("error") else ""), ""]
    return out


def _members_section(title: str, event: Event | None) -> list[str]:
    out = [f"## {title}", ""]
    if event is None:
        return [*out, "Not recorded in this journal.", ""]
    if event.get("error"):
        return [*out, f"Member list unavailable at {_when(event.get('ts'))}: {event['error']}", ""]
    rows = event.get("members") or []
    src = f" (from the last passed {event['source']})" if event.get("source") else ""
    return [*out, f"Recorded {_when(event.get('ts'))}{src}.", "", *member_table(list(rows))]


def _after_from_gates(run: RunRecord) -> Event | None:
    """Without a `members` event, the last passed gate is the best 'after' picture there is."""
    for step in reversed(run.steps):
        for g in reversed(step.gates):
            if g.get("ok") and g.get("members") and any("raft_index" in m for m in g["members"]):
                return {"ts": g.get("ts"), "members": g["members"], "source": f"gate: {g.get('title', '')}"}
    return None


def _split(st: StepRecord) -> str:
    if st.started is None:
        return "- | - | -"
    t = st.time_split()
    return f"{_secs(t.commands)} | {_secs(t.gates)} | {_secs(t.retries)}"


def _wall_parts(run: RunRecord) -> tuple[float, str] | None:
    """From the start of the pre-flight (where it was recorded), else of the run, to its end."""
    end = run.end.get("ts") if run.end else None
    start = (run.preflight or {}).get("started") or run.start.get("ts")
    if end is None or start is None:
        return None
    return end - start, "pre-flight included" if (run.preflight or {}).get("started") else "from the run's start"


def _wall(run: RunRecord) -> str:
    parts = _wall_parts(run)
    return "not known (the run did not end)" if parts is None else f"{_secs(parts[0])} ({parts[1]})"


def _gate_lines(g: Event, since: float | None) -> list[str]:
    waited = f", after {_secs(g['ts'] - since)}" if since is not None and "ts" in g else ""
    verdict = "passed" if g.get("ok") else "FAILED"
    out = [f"Gate **{verdict}**: {g.get('title', '')}{waited}"
           + (f" ({_secs(g.get('remaining'))} to spare)" if g.get("ok") else "") + "", ""]
    if g.get("error"):
        out += ["Error:", "", *fence(str(g["error"]), "text"), ""]
    if g.get("members"):
        out += member_table(list(g["members"]))
    for host, log in (g.get("logs") or {}).items():
        out += [f"Last etcd log lines on `{host}`:", "", *fence(excerpt(str(log), 20), "text"), ""]
    return out


def _command_lines(c: Event) -> list[str]:
    head = f"`{c.get('host', '?')}`"
    if c.get("skipped"):
        return [f"- {head}: skipped, already in place ({_when(c.get('ts'))})", "", *fence(str(c.get("script", ""))), ""]
    if c.get("dry_run"):
        return [f"- {head}: dry run, {c.get('note') or c['dry_run']}", "", *fence(str(c.get("script", ""))), ""]
    attempt = f", attempt {c['attempt']}" if c.get("attempt", 1) != 1 else ""
    out = [f"- {head}: exit {c.get('exit', '?')} in {_secs(c.get('duration'))}{attempt} ({_when(c.get('ts'))})", "",
           *fence(str(c.get("script", ""))), ""]
    for stream in ("stdout", "stderr"):
        text = str(c.get(stream) or "").strip()
        if text:
            out += [f"{stream}:", "", *fence(excerpt(text), "text"), ""]
    return out


def render_markdown(events: list[Event], source: str = "journal", *, commands: bool = True) -> str:
    """The report: what changed first, then the steps; every command with its output in an appendix (unless
    `commands` is False)."""
    name = Path(source).name
    runs = parse_runs(events)
    out = [f"# {title(runs)} report: {name}", ""]
    if not runs:
        return "\n".join([*out, "The journal holds no run (no run_start event).", ""])
    for n, run in enumerate(runs, 1):
        s = run.start
        if len(runs) > 1:
            out += [f"## Run {n} of {len(runs)}", ""]
        stamp = str(s.get("stamp", ""))
        cluster = str(s.get("cluster") or "")
        if not cluster:  # Journal.create names the file <cluster>-<stamp>.jsonl
            suffix = f"-{stamp}.jsonl"
            cluster = name.removesuffix(suffix) if stamp and name.endswith(suffix) else "(not recorded)"
        end_ts = run.end.get("ts") if run.end else None
        out += [f"- Cluster: {cluster}", f"- Result: **{run.result}**", f"- Mode: {s.get('mode', '?')}",
                f"- Seed: `{s.get('seed', '?')}`", f"- Stamp: `{stamp}`",
                *([f"- Resumed at step `{s['start_at']}`"] if s.get("start_at") else []),
                f"- Started: {_when(s.get('ts'))}", f"- Finished: {_when(end_ts)}",
                f"- Duration: {_secs(run.end.get('duration') if run.end else None)}", f"- Wall time: {_wall(run)}",
                f"- Journal: `{source}`", ""]
        if not s.get("dry_run"):
            out += ["## What changed", "",
                    *members_and_revisions(s, run.preflight, run.members_event("before"),
                                           run.members_event("after") or _after_from_gates(run)),
                    *moved_aside(stamp, run.leftovers), *time_split(_wall_parts(run), run.waits),
                    *leftovers(stamp, run.leftovers, lock_released=run.ok)]
        if run.preflight is not None:
            out += _preflight_lines(run.preflight)
        out += _members_section("Members before", run.members_event("before"))
        out += ["## Steps", "", "Duration is split into time in commands, waiting at gates, and in retries of "
                "refused commands (the rest is the tool's bookkeeping).", "",
                "| # | Step | Title | Status | Started | Duration | Commands | Gates | Retries | Gate |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for i, st in enumerate(run.steps, 1):
            gate = "; ".join(("passed" if g.get("ok") else "FAILED") for g in st.gates) or "-"
            out.append(f"| {i} | `{st.key}` | {_cell(st.title)} | {st.status} | {_when(st.started)} | "
                       f"{_secs(st.duration)} | {_split(st)} | {gate} |")
        out.append("")
        out += refusals(run.steps)
        out += _members_section("Members after", run.members_event("after") or _after_from_gates(run))
        todo = Revisions.from_record(s.get("revisions")).restart_by_hand
        if todo and run.ok:
            out += ["## Restart by hand", "", "etcd's revisions went backwards; these still remember the old ones:",
                    "", *(f"- [ ] {t}" for t in todo), ""]
        if not commands:
            out += ["Every command with its output: `etcdrescue report` without `--no-commands`.", ""]
            continue
        out += ["## Appendix: what ran, step by step", ""]
        for i, st in enumerate(run.steps, 1):
            out += [f"### {i}. `{st.key}`: {st.title or '(not started)'}", "",
                    f"Status: **{st.status}**, {_secs(st.duration)}, started {_when(st.started)}", ""]
            if st.error:
                out += ["Error:", "", *fence(st.error, "text"), ""]
            since = st.started
            for e in st.events:
                if e.get("event") == "command":
                    out += _command_lines(e)
                elif e.get("event") == "gate":
                    out += _gate_lines(e, since)
                since = e.get("ts", since)
    return "\n".join(out)


def title(runs: list[RunRecord]) -> str:
    return runs[0].procedure.title if runs else named(DEFAULT).title


def render_html(events: list[Event], source: str = "journal", *, commands: bool = True) -> str:
    return markdown_to_html(render_markdown(events, source, commands=commands),
                            f"{title(parse_runs(events))} report: {Path(source).name}",
                            phase_prefix="Run ")
