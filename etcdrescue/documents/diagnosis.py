"""A diagnosis in plain text: each member's findings, then the verdict, its evidence and the next step."""

from __future__ import annotations

from ..diagnose.verdict import Diagnosis


def diagnosis_lines(d: Diagnosis) -> list[str]:
    out = []
    for name, found in d.findings.items():
        out.append(f"  {name}")
        out += [f"    - {line}" for line in found]
    if d.cluster is not None and d.cluster.alarms:
        out.append("  alarms: " + ", ".join(f"{a.kind.value} on {a.hex_id}" for a in d.cluster.alarms))
    members = f" ({', '.join(d.members)})" if d.members else ""
    out.append(f"verdict: {d.procedure.value}{members}")
    out += [f"  because: {line}" for line in d.evidence]
    out += [f"  next: {line}" for line in d.next_steps]
    return out
