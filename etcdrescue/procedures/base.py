"""What makes a procedure a procedure: its name, its pre-flight rules, its plan and its words.

The engine, the gates, the journal, the locks and resume serve every procedure unchanged: a procedure only
declares steps (`Step`, `Command`, `Gate`, as the quorum recovery's do) and judges the survey's facts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model import Context, Step
    from ..preflight.verdict import PreflightReport


@dataclass(frozen=True)
class Procedure:
    name: str
    """Its name in the journal (`run_start.procedure`); a resume continues only the same procedure."""
    title: str
    """How documents name it: "etcd recovery runbook", "etcd recovery report"."""
    done: str
    """The report's word for a run of it that ended well."""
    judge: Callable[..., PreflightReport]
    """The pre-flight rules over the survey's facts (`preflight.verdict.judge`'s signature)."""
    steps: Callable[[Context], tuple[Step, ...]]
    """The ordered steps for a context."""
    mode: Callable[[Context], str]
    """One line saying how this run goes (the plan's mode line in the console, wizard, runbook and report)."""
    needs_cluster: bool = False
    """Its rules read the cluster as a healthy member sees it (`preflight.cluster.ClusterFacts`): the member
    list, every member's status and the alarms. The quorum recovery has no healthy member to ask."""
    takes_options: bool = False
    """Its rules take the operator's `force` and `quota` (`RecoveryOptions`) as keywords."""
    condition: Callable[[Context], HandCheck] | None = None
    """The state of the cluster it is for, as the runbook checks it by hand before anything changes."""
    outcome: str = "every member healthy, one leader"
    """What holds when it ended well (the runbook's last check)."""
    platforms: tuple[str, ...] = ()
    """The profiles it is for (empty: every one); another inventory is refused before any connection."""


@dataclass(frozen=True)
class HandCheck:
    """A read-only check an operator runs by hand: the runbook's prerequisite line, then the command and what
    it must show."""

    title: str
    prerequisite: str
    host: str
    script: str
    expected: str
