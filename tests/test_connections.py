"""The connection pool's bookkeeping on fake clients: sharing along routes, holders, reopening the dead.

The same behaviour on real sshd, jump host and all: tests/e2e/test_jump.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from etcdrescue.ssh import connections
from etcdrescue.ssh.connections import Connections
from etcdrescue.ssh.route import Endpoint, Route

KH = ("/kh",)
JUMP = Endpoint("jump", "10.0.0.1", 22, "root", KH)
A = Endpoint("a", "10.0.0.2", 22, "root", KH)
B = Endpoint("b", "10.0.0.3", 22, "root", KH)


class FakeTransport:
    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active


class FakeClient:
    def __init__(self, route: Route, parent: FakeClient | None, hop: bool) -> None:
        self.route, self.parent, self.hop = route, parent, hop
        self.transport = FakeTransport()
        self.closed = False

    def get_transport(self) -> FakeTransport:
        return self.transport

    def close(self) -> None:
        self.closed = True
        self.transport.active = False


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[FakeClient]:
    made: list[FakeClient] = []

    def fake_open(route: Route, parent: Any, passphrase: str | None, timeout: float, *, hop: bool) -> FakeClient:
        client = FakeClient(route, parent, hop)
        made.append(client)
        return client

    monkeypatch.setattr(connections, "_open", fake_open)
    return made


def get(pool: Connections, route: Route, holder: str) -> FakeClient:
    client: Any = pool.client(route, holder, passphrase=None, timeout=1)
    return client


def test_members_behind_a_jump_host_share_its_connection(opened: list[FakeClient]) -> None:
    pool = Connections()
    jump = get(pool, (JUMP,), "jump")
    a = get(pool, (JUMP, A), "a")
    b = get(pool, (JUMP, B), "b")
    assert pool.opened == len(opened) == 3
    assert a.parent is jump and b.parent is jump
    assert get(pool, (JUMP, A), "a") is a and pool.opened == 3


def test_a_connection_closes_with_its_last_holder(opened: list[FakeClient]) -> None:
    pool = Connections()
    a = get(pool, (JUMP, A), "a")
    b = get(pool, (JUMP, B), "b")
    jump = a.parent
    assert jump is not None and jump.hop and not a.hop  # errors about it will name it as the jump host
    pool.release("a")
    assert a.closed and not jump.closed and not b.closed
    pool.release("b")
    assert b.closed and jump.closed


def test_a_dead_jump_host_is_reopened_once_for_everyone_behind_it(opened: list[FakeClient]) -> None:
    pool = Connections()
    a = get(pool, (JUMP, A), "a")
    b = get(pool, (JUMP, B), "b")
    assert a.parent is not None
    a.parent.transport.active = a.transport.active = b.transport.active = False  # the jump host dropped
    a2 = get(pool, (JUMP, A), "a")
    b2 = get(pool, (JUMP, B), "b")
    assert a2.parent is b2.parent and a2.parent is not a.parent
    assert pool.opened == 6


def test_close_closes_everything(opened: list[FakeClient]) -> None:
    pool = Connections()
    get(pool, (JUMP, A), "a")
    get(pool, (B,), "b")
    pool.close()
    assert all(c.closed for c in opened) and len(opened) == 3
