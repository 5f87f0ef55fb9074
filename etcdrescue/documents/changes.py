"""The report's headline: what a run changed, from its journal's structured events, not its scripts.

- members and revisions before and after: the engine's `members` events (each answering member's ID, revision
  and raft index, from `endpoint status`; the member list where there was a leader), the pre-flight's hosts;
- what was moved aside and what else the run left: the session's `leftovers` event, read from the hosts when
  the run ended (every name the tool gives carries the run's stamp: `leftovers.Leftover.aside_of`);
- the operator's time apart from the tool's: the `operator_wait` events (prompts, confirmations, dialogs,
  pauses) against the wall time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..leftovers import Leftover, tidy_command
from ..locks import LOCK_PATH
from ..model import Revisions
from .runbook import fence

Event = dict[str, Any]

TAGS = {
    "etcdrescue": "kept aside before the run changed it: the way back",
    "bounced": "the manifest moved out of the kubelet's directory to restart the component (a copy went back)",
    "forced": "the manifest that started the seed with --force-new-cluster, replaced by the pristine one",
    "started": "the manifest moved out again by an undo (stop the seed again)",
    "restored": "the restored data, moved aside by an undo (the original went back)",
    "rewritten": "the rewritten settings, moved aside by an undo (the original went back)",
    "released": "this run's lock, released when the run ended",
    "renew": "a lock renewal's temporary file (a run stopped while renewing)",
}
"""What each aside tag means (`Context.aside(path, tag)`, `ControlPlane.bounced`, `HostLocks.release`)."""


def _secs(value: float) -> str:
    return f"{value:.1f} s"


def _leftovers(event: Event | None) -> dict[str, list[Leftover] | str]:
    """Host -> its leftovers, or why they are not known."""
    out: dict[str, list[Leftover] | str] = {}
    for host, found in ((event or {}).get("hosts") or {}).items():
        if isinstance(found, dict):
            out[host] = str(found.get("error", "not known"))
        else:
            out[host] = [Leftover(str(x["path"]), bool(x.get("dir")), str(x.get("from") or ""),
                                  str(x.get("tag") or "")) for x in found]
    return out


def _what(item: Leftover) -> tuple[str, str]:
    """(where it came from, what it is) in words."""
    kind = "directory" if item.is_dir else "file"
    if item.tag:
        return f"`{item.origin}`", TAGS.get(item.tag, f"kept aside ({item.tag})") + f" ({kind})"
    if item.path.endswith(".complete"):
        return "-", "marker: the backup's restore finished (a rerun skips it)"
    if ".partial-" in item.path:
        return "-", f"an interrupted copy or restore, moved aside by the next try ({kind})"
    return "-", f"made by the run ({kind})"


def moved_aside(run_stamp: str, event: Event | None) -> list[str]:
    out = ["### Moved aside", ""]
    if event is None:
        return [*out, "Not recorded in this journal (the run ended before the tool looked at the hosts): look "
                      f"for names ending in `-{run_stamp}` beside etcd's data, manifests and settings.", ""]
    rows = [(host, item, *_what(item)) for host, items in _leftovers(event).items()
            if not isinstance(items, str) for item in items if item.tag == "etcdrescue"]
    if not rows:
        return [*out, "Nothing: the run kept nothing aside.", ""]
    out += ["What the run kept aside before changing it: the way back. Keep it until the cluster has run well "
            "for a while.", "", "| Host | Moved or copied from | Kept as |", "|---|---|---|"]
    out += [f"| `{host}` | {src} | `{item.path}` |" for host, item, src, _ in rows]
    return [*out, ""]


def leftovers(run_stamp: str, event: Event | None, *, lock_released: bool) -> list[str]:
    """`lock_released`: the run ended well, so the session moved each member's lock aside right after the
    engine journaled what it found (`RecoverySession.finish`)."""
    out = ["### Leftovers", ""]
    if event is None:
        return [*out, "Not recorded in this journal.", ""]
    found = _leftovers(event)
    lock = Leftover(f"{LOCK_PATH}.released-{run_stamp}", False, LOCK_PATH, "released")
    for items in found.values():
        if lock_released and not isinstance(items, str) and lock not in items:
            items.append(lock)
    out += [f"Everything named with this run's stamp `{run_stamp}` on the masters when the run ended (read from "
            "the hosts). The tool never removes them; once you have decided, the command under each host tidies "
            "them (it is printed here, never run by the tool).", ""]
    for host, items in found.items():
        if isinstance(items, str):
            out += [f"`{host}`: not known ({items}).", ""]
            continue
        if not items:
            out += [f"`{host}`: nothing.", ""]
            continue
        out += [f"`{host}`:", "", "| Path | From | What it is |", "|---|---|---|"]
        out += [f"| `{item.path}` | {src} | {what} |" for item in items for src, what in [_what(item)]]
        out += ["", "Tidy, once you have decided (on that host, as root):", "",
                *fence(tidy_command(item.path for item in items)), ""]
    return out


def _member_rows(preflight: Event | None, before: Event | None, after: Event | None) -> list[list[str]]:
    names: dict[str, dict[str, str]] = {}

    def row(name: str) -> dict[str, str]:
        return names.setdefault(name, {})

    for h in (preflight or {}).get("hosts") or []:
        r = row(str(h.get("name")))
        if h.get("revision") not in (None, ""):
            r["rev_before"] = str(h["revision"])
    for side, event in (("before", before), ("after", after)):
        for m in (event or {}).get("members") or []:
            row(str(m.get("name") or m.get("id")))[f"id_{side}"] = str(m.get("id", ""))
        for st in (event or {}).get("status") or []:
            r = row(str(st.get("name")))
            r[f"id_{side}"] = str(st.get("id", ""))
            r[f"rev_{side}"] = str(st.get("revision", ""))
            if st.get("leader"):
                r[f"role_{side}"] = "leader"
            elif st.get("learner"):
                r[f"role_{side}"] = "learner"
    return [[f"`{name}`", r.get("id_before", "-"), r.get("rev_before", "-"), r.get("id_after", "-"),
             r.get("rev_after", "-"), ", ".join(f"{r[k]} {k[5:]}" for k in ("role_before", "role_after") if k in r)]
            for name, r in names.items()]


def members_and_revisions(start: Event, preflight: Event | None, before: Event | None,
                          after: Event | None) -> list[str]:
    out = ["### Members and revisions", ""]
    rows = _member_rows(preflight, before, after)
    if rows:
        out += ["Member IDs and revisions as each member answered (`-`: it did not: stopped, or not asked).", "",
                "| Member | ID before | Revision before | ID after | Revision after | Role |",
                "|---|---|---|---|---|---|",
                *("| " + " | ".join(r) + " |" for r in rows), ""]
    else:
        out += ["No member answered before or after the run (not recorded in this journal).", ""]
    facts = []
    snapshot = ((preflight or {}).get("backup") or {}).get("snapshot") or {}
    if snapshot.get("revision") is not None:
        facts.append(f"the backup was at revision {snapshot['revision']}")
    facts.append(Revisions.from_record(start.get("revisions")).explained)
    return [*out, "Revisions: " + "; ".join(facts) + ".", ""]


def time_split(wall: tuple[float, str] | None, waits: Iterable[Event]) -> list[str]:
    waits = list(waits)
    waited = sum(float(w.get("seconds", 0.0)) for w in waits)
    out = ["### Time", ""]
    if wall is None:
        out.append("- Wall time: not known (the run did not end)")
    else:
        seconds, since = wall
        out += [f"- Wall time: {_secs(seconds)} ({since})",
                f"- The tool's own time: {_secs(max(0.0, seconds - waited))}"]
    out.append(f"- Waiting for the operator: {_secs(waited)}" + ("" if waits else " (nobody was asked)"))
    for w in waits:
        step = f", before step `{w['step']}`" if w.get("step") else ""
        answer = (": yes" if w["answer"] else ": no") if isinstance(w.get("answer"), bool) else ""
        out.append(f"  - {w.get('what', '?')}{step}{answer}: {_secs(float(w.get('seconds', 0.0)))}")
    return [*out, ""]
