"""The pre-flight's per-host survey on recorded etcdctl answers: which questions it asks of a member."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from etcdrescue.documents.console import preflight_lines
from etcdrescue.inventory.model import load_inventory
from etcdrescue.platform.tools import Tool
from etcdrescue.preflight.survey import survey_host
from etcdrescue.preflight.verdict import PreflightReport
from etcdrescue.probes import Fact, HostSurvey

DATA = Path(__file__).parent / "data"
EXAMPLE = Path(__file__).parents[1] / "docs" / "example-inventory.yaml"
T = TypeVar("T")

RUNNING = HostSurvey(manifest=False, disabled=False, conf=False, data_dir=True, member=False, member_kb=0,
                     free_kb=1000, etcd_pid=12, client_port_open=True, peer_port_open=True,
                     etcdctl=Tool("/usr/bin/etcdctl", "3.4.23"), etcdutl=None, bash="5", tls=True)


class Recorded:
    """Answers each fact with what a lab member answered (`state`: healthy or noquorum), and notes the asks."""

    def __init__(self, state: str, survey: HostSurvey = RUNNING) -> None:
        self.inv = load_inventory(EXAMPLE)
        self.state = state
        self.survey = survey
        self.asked: list[str] = []

    def fact(self, name: str, fact: Fact[T]) -> T | Any:
        self.asked.append(fact.name)
        if fact.name == "host survey":
            return self.survey
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


def test_a_member_without_etcdctl_is_health_unknown_not_unhealthy() -> None:
    """A kubeadm node has no etcdctl: its health is not asked (every ask would fail) and not called unhealthy."""
    hosts = Recorded("healthy", replace(RUNNING, etcdctl=None))
    facts = survey_host(hosts, hosts.inv.members[0])  # type: ignore[arg-type]
    assert hosts.asked == ["host survey"]
    assert not facts.healthy and facts.health_unknown and facts.health_error.startswith("health unknown: no etcdctl")
    line = preflight_lines(PreflightReport((facts,), facts.name, 1))[0]
    assert "health unknown: no etcdctl" in line and "unhealthy" not in line
    uploaded = Recorded("healthy", replace(RUNNING, etcdctl=None))
    assert survey_host(uploaded, uploaded.inv.members[0], uploaded=True).healthy  # type: ignore[arg-type]
