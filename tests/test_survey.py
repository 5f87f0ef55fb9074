"""The pre-flight's per-host survey on recorded etcdctl answers: which questions it asks of a member."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from etcdrescue.inventory.model import load_inventory
from etcdrescue.preflight.survey import survey_host
from etcdrescue.probes import Fact, HostSurvey

DATA = Path(__file__).parent / "data"
EXAMPLE = Path(__file__).parents[1] / "docs" / "example-inventory.yaml"
T = TypeVar("T")

RUNNING = HostSurvey(manifest=False, disabled=False, conf=False, data_dir=True, member=False, member_kb=0,
                     free_kb=1000, etcd_pid=12, client_port_open=True, peer_port_open=True, etcdctl=None,
                     etcdutl=None, bash="5", tls=True)


class Recorded:
    """Answers each fact with what a lab member answered (`state`: healthy or noquorum), and notes the asks."""

    def __init__(self, state: str) -> None:
        self.inv = load_inventory(EXAMPLE)
        self.state = state
        self.asked: list[str] = []

    def fact(self, name: str, fact: Fact[T]) -> T | Any:
        self.asked.append(fact.name)
        if fact.name == "host survey":
            return RUNNING
        recorded = DATA / f"{self.state}_{fact.name.replace(' ', '_')}.json"
        return fact.parse(recorded.read_text())


def test_a_member_without_a_leader_is_not_asked_its_health() -> None:
    """`endpoint status` answers at once without a leader; `endpoint health` would wait out its 3 s."""
    hosts = Recorded("noquorum")
    facts = survey_host(hosts, hosts.inv.members[0])  # type: ignore[arg-type]
    assert hosts.asked == ["host survey", "endpoint status"]
    assert not facts.healthy and facts.health_error == "no leader" and facts.member_id == "1abdf17a52ea0419"


def test_a_member_with_a_leader_is_asked_its_health() -> None:
    hosts = Recorded("healthy")
    facts = survey_host(hosts, hosts.inv.members[0])  # type: ignore[arg-type]
    assert hosts.asked == ["host survey", "endpoint status", "endpoint health"]
    assert facts.healthy and facts.health_error == ""
