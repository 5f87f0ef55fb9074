"""The cluster as a healthy member sees it (`preflight.cluster`), read over SSH on a real okd3 lab."""

from __future__ import annotations

import pytest
from conftest_lab import LabFactory

from etcdrescue.inventory.model import load_inventory
from etcdrescue.lab import Lab
from etcdrescue.preflight.cluster import survey_cluster
from etcdrescue.preflight.survey import survey_host
from etcdrescue.ssh.hosts import Hosts

from .conftest import requires_lab

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(300)]


def test_a_healthy_member_tells_the_members_their_status_and_the_alarms(lab_factory: LabFactory) -> None:
    lab: Lab = lab_factory(3, subnet=240)
    lab.put_keys("/registry/pods/default/p", 20)
    lab.stop_etcd(2)
    with Hosts(load_inventory(lab.inventory_path)) as hosts:
        facts = tuple(survey_host(hosts, m) for m in hosts.inv.members)
        seen = survey_cluster(hosts, [h.name for h in facts if h.healthy])
    assert seen is not None and not seen.error
    names = {m.name for m in seen.members}
    assert names == {h.name for h in lab.hosts}
    stopped = seen.member(lab.host(2).name)
    assert stopped is not None and seen.status_of(stopped.id) is None
    assert len(seen.statuses) == 2
    assert seen.leader_id is not None and seen.member_by_id(seen.leader_id) is not None
    assert all(s.db_size_in_use > 0 and s.db_size >= s.db_size_in_use for s in seen.statuses)
    assert seen.alarms == ()


def test_no_healthy_member_no_view(lab_factory: LabFactory) -> None:
    lab: Lab = lab_factory(3, subnet=241)
    for h in (0, 1):
        lab.stop_etcd(h)
    with Hosts(load_inventory(lab.inventory_path)) as hosts:
        facts = tuple(survey_host(hosts, m) for m in hosts.inv.members)
        assert survey_cluster(hosts, [h.name for h in facts if h.healthy]) is None
