"""The health gate every seed, join and verify step ends with."""

from __future__ import annotations

from ..checks import AllHealthy, GateCheck, LearnerCaughtUp, MembersAsExpected, OneLeader
from ..model import Context, Gate


def healthy_gate(ctx: Context, title: str, names: tuple[str, ...], *, peer_urls: bool = False,
                 caught_up: bool = False, extra: tuple[GateCheck, ...] = (), stray_learners: bool = False) -> Gate:
    """All healthy, the member list as expected, `extra`, one leader: the order the runbook prints them."""
    members = MembersAsExpected(peer_urls, stray_learners=stray_learners)
    return Gate(title, names, ctx.gate_timeout, (AllHealthy(), members, *extra, OneLeader(caught_up)))


def learner_gate(ctx: Context, title: str, voters: tuple[str, ...], learner: str) -> Gate:
    """A learner's join: the voters healthy with one leader, the member list with the learner in it, and the
    learner caught up (asked by status: health and member list do not answer on a learner)."""
    return Gate(title, voters, ctx.gate_timeout, (AllHealthy(), MembersAsExpected(True, learner=learner),
                                                  LearnerCaughtUp(learner), OneLeader()), learners=(learner,))
