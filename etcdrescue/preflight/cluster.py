"""The cluster as its healthy members see it: the member list, every member's status and the alarms.

Why apart from the hosts' surveys: these come from one healthy member for the whole cluster, after the hosts
answered (which ones are healthy decides whom to ask). A cluster without a healthy member has no such view;
the procedures that need one (replace, reclaim-space, diagnose) say so, the quorum recovery never needs it.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RescueError
from ..platform.tools import EtcdTools
from ..probes import Alarm, AlarmKind, EndpointStatus, MemberInfo, ParseError, alarm_list, endpoint_status, member_list
from ..ssh.hosts import Hosts


@dataclass(frozen=True)
class ClusterFacts:
    asked: str
    """The member whose host answered for the cluster."""
    members: tuple[MemberInfo, ...] = ()
    statuses: tuple[EndpointStatus, ...] = ()
    """One per member that answered `endpoint status` (a dead member has none)."""
    alarms: tuple[Alarm, ...] = ()
    error: str = ""
    inventory: tuple[tuple[str, str], ...] = ()
    """The inventory's members as (name, peer URL), to tell its entries from unknown ones: an added member that
    never started has no name in the member list, only its peer URL."""

    def listed(self, peer_url: str) -> MemberInfo | None:
        """The entry with `peer_url` (started or not)."""
        return next((m for m in self.members if peer_url in m.peer_urls), None)

    @property
    def leader_id(self) -> int | None:
        return next((s.leader for s in self.statuses if s.leader), None)

    def member(self, name: str) -> MemberInfo | None:
        return next((m for m in self.members if m.name == name), None)

    def member_by_id(self, member_id: int) -> MemberInfo | None:
        return next((m for m in self.members if m.id == member_id), None)

    def status_of(self, member_id: int) -> EndpointStatus | None:
        return next((s for s in self.statuses if s.member_id == member_id), None)

    @property
    def voters(self) -> tuple[MemberInfo, ...]:
        return tuple(m for m in self.members if not m.is_learner)

    @property
    def learners(self) -> tuple[MemberInfo, ...]:
        return tuple(m for m in self.members if m.is_learner)

    def alarmed(self, kind: AlarmKind) -> tuple[Alarm, ...]:
        return tuple(a for a in self.alarms if a.kind is kind)

    def journal(self) -> dict[str, object]:
        return {"asked": self.asked, "error": self.error,
                "members": [{"id": m.hex_id, "name": m.name, "learner": m.is_learner, "peer_urls": list(m.peer_urls)}
                            for m in self.members],
                "statuses": [{"id": f"{s.member_id:x}", "leader": s.is_leader, "revision": s.revision,
                              "raft_index": s.raft_index, "db_size": s.db_size, "db_size_in_use": s.db_size_in_use,
                              "version": s.version} for s in self.statuses],
                "alarms": [{"id": a.hex_id, "alarm": a.kind.value} for a in self.alarms]}


def survey_cluster(hosts: Hosts, healthy: Sequence[str], tools: EtcdTools | None = None) -> ClusterFacts | None:
    """Asked of the first of the `healthy` members, for every member's client URL; None when no member is healthy.

    The member list and the alarms are linearizable reads (they need the quorum the healthy member has);
    the status of a member that is down is simply missing. `tools`: the pre-flight's choice (the platform's
    own by default).
    """
    if not healthy:
        return None
    inv = hosts.inv
    asked = healthy[0]
    me = inv.member(asked)
    tools = tools or inv.platform.tools
    everyone = [m.client_url for m in inv.members]
    with cf.ThreadPoolExecutor(3) as pool:
        listed = pool.submit(hosts.fact, asked, member_list(tools, [me.client_url]))
        statuses = pool.submit(hosts.fact, asked, endpoint_status(tools, everyone))
        alarms = pool.submit(hosts.fact, asked, alarm_list(tools, [me.client_url]))
    errors: list[str] = []

    def result(future: cf.Future[list[Any]], what: str) -> tuple[Any, ...]:
        try:
            return tuple(future.result())
        except (RescueError, ParseError) as exc:
            errors.append(f"{asked}: {what}: {str(exc)[:160]}")
            return ()

    return ClusterFacts(asked, result(listed, "member list"), result(statuses, "endpoint status"),
                        result(alarms, "alarm list"), "; ".join(errors),
                        tuple((m.name, m.peer_url) for m in inv.members))
