"""The health gate every seed, join and verify step ends with."""

from __future__ import annotations

from ..checks import AllHealthy, GateCheck, MembersAsExpected, OneLeader
from ..model import Context, Gate


def healthy_gate(ctx: Context, title: str, names: tuple[str, ...], *, peer_urls: bool = False,
                 caught_up: bool = False, extra: tuple[GateCheck, ...] = ()) -> Gate:
    """All healthy, the member list as expected, `extra`, one leader: the order the runbook prints them."""
    return Gate(title, names, ctx.gate_timeout, (AllHealthy(), MembersAsExpected(peer_urls), *extra,
                                                 OneLeader(caught_up)))
