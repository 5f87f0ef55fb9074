"""The diagnosis of a cluster: the pre-flight's survey of every member, the cluster as a healthy member sees it,
and a close look at each member (logs, process, flags, certificates), in parallel. Read-only."""

from __future__ import annotations

import concurrent.futures as cf

from ..errors import SurveyFailed
from ..inventory.model import Member
from ..preflight.cluster import survey_cluster
from ..preflight.survey import Uploaded, survey_host, tool_choice
from ..preflight.verdict import HostFacts
from ..ssh.hosts import Hosts
from .facts import MemberLook, look_at
from .verdict import Diagnosis, diagnose


def run_diagnosis(hosts: Hosts, *, uploaded: Uploaded | None = None, inventory_file: str = "INV") -> Diagnosis:
    inv = hosts.inv

    def one(member: Member) -> tuple[HostFacts, MemberLook]:
        try:
            facts = survey_host(hosts, member, uploaded=uploaded is not None)
            return facts, look_at(hosts, member, facts)
        except Exception as exc:
            raise SurveyFailed.of(member.name, exc) from exc

    with cf.ThreadPoolExecutor(max_workers=min(8, len(inv.members))) as pool:
        looked = [f.result() for f in [pool.submit(one, m) for m in inv.members]]
    facts = tuple(f for f, _ in looked)
    choice = tool_choice(hosts, facts, uploaded=uploaded, restores=False)
    serving = [h.name for h in sorted(facts, key=lambda h: not h.healthy) if h.serves]
    cluster = survey_cluster(hosts, serving, choice.on(serving[0]) if serving else None)
    return diagnose(tuple(lk for _, lk in looked), cluster, inv, inventory_file=inventory_file)
