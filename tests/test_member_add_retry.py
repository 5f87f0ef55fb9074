"""`member add`'s retry fits the seed's etcd: up to 3.5.29/3.6.10 the member asked waits for every voter to have
been connected 5 s, from 3.5.30/3.6.11 for a quorum (etcd PRs 21641, 21667, 21669)."""

from __future__ import annotations

import pytest

from etcdrescue.command import Command, Retry
from etcdrescue.documents.runbook import _commands
from etcdrescue.inventory.model import parse_inventory
from etcdrescue.model import Context, Method
from etcdrescue.platform.release import EtcdRelease
from etcdrescue.steps.join import join

INV = parse_inventory({"cluster": "t", "members": [
    {"name": f"m{i}", "host": f"127.0.9.{i}", "peer_url": f"https://127.0.9.{i}:2380",
     "client_url": f"https://127.0.9.{i}:2379"} for i in (1, 2, 3)
]})


@pytest.mark.parametrize(("version", "every_voter"), [
    ("3.4.23", True), ("3.5.29", True), ("3.5.30", False), ("v3.5.36", False),
    ("3.6.10", True), ("3.6.11", False), ("3.6.17-0", False), ("3.7.1", False), ("", True),
])
def test_which_versions_wait_for_every_voter(version: str, every_voter: bool) -> None:
    assert EtcdRelease(version).adds_only_when_all_connected is every_voter


def member_add(etcd: str | None) -> Command:
    ctx = Context(INV, None, Method.FORCE_NEW_CLUSTER, "s", etcd=etcd)
    return next(c for c in join(ctx, 2)[0].commands if " member add " in c.script)


@pytest.mark.parametrize(("etcd", "within", "waits_for"), [
    ("3.5.29", 60.0, "connected to every voting member for 5 s"),
    (None, 60.0, "etcd of unknown version accepts"),
    ("3.6.11", 20.0, "once a quorum of the voting members"),
    ("3.7.1", 20.0, "once a quorum of the voting members"),
])
def test_member_add_retries_as_the_seeds_etcd_needs(etcd: str | None, within: float, waits_for: str) -> None:
    retry = member_add(etcd).retry
    assert retry is not None
    assert (retry.within, retry.on) == (within, ("unhealthy cluster", "too many learner members"))
    assert waits_for in retry.why


def test_the_runbook_says_how_to_retry_the_member_add() -> None:
    cmd = member_add("3.4.23")
    text = "\n".join(_commands((cmd,), "7"))
    assert isinstance(cmd.retry, Retry)
    assert ("If it is refused with `unhealthy cluster` or `too many learner members`, run it again every 1 s for up "
            "to 60 s: etcd 3.4.23 accepts a member add only once the member asked has been connected to every "
            "voting member for 5 s.") in text
