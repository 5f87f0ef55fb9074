"""The checks a gate is made of: each holds its probe, its judgement and its hand instructions.

Why one object for all three: the engine polls `judge`, the runbook prints `instructions`, so
the printed procedure can never describe a gate the code does not check (or the reverse).
Checks run through a `Prober` (the host set), never a transport: steps declare them as data.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from .inventory.model import Inventory
from .platform.controlplane import Component
from .probes import Fact, ParseError, endpoint_health, endpoint_status, member_list

T = TypeVar("T")


class Ran(Protocol):
    @property
    def ok(self) -> bool: ...


class Prober(Protocol):
    """What a check needs of the hosts: the inventory, a script's exit status and parsed facts."""

    @property
    def inv(self) -> Inventory: ...

    def run(self, name: str, script: str, timeout: float = 60.0, on_output: Callable[[str], None] | None = None
            ) -> Ran: ...

    def fact(self, name: str, fact: Fact[T]) -> T: ...


@dataclass(frozen=True)
class MemberHealth:
    name: str
    up: bool = False
    healthy: bool = False
    leader: bool = False
    raft_index: int = 0
    detail: str = ""


@dataclass
class Round:
    """One poll of a gate: the rows every check fills in, and what carries over between polls.

    The checks of a round run at the same time, so a row is only ever changed under the lock.
    """

    rows: dict[str, MemberHealth]
    target_index: int | None = None
    """The leader's raft index when the gate first saw one leader: joiners must reach it."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(self, name: str, **values: object) -> None:
        with self._lock:
            self.rows[name] = replace(self.rows[name], **values)  # type: ignore[arg-type]

    def first_target(self, index: int) -> None:
        with self._lock:
            if self.target_index is None:
                self.target_index = index


@dataclass(frozen=True)
class Block:
    """Hand instructions run on one host: the runbook names the host when it changes."""

    host: str
    lines: tuple[str, ...]


def fence(script: str, lang: str = "sh") -> list[str]:
    """A fenced code block that cannot be closed early by backticks inside the script."""
    longest = max((len(m) for m in re.findall(r"`+", script)), default=0)
    mark = "`" * max(3, longest + 1)
    return [f"{mark}{lang}", script, mark]


REPEAT = " Repeat the checks for a while (a joining member can take ~15 s) before giving up."


class GateCheck(Protocol):
    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        """Problems found now (empty: this check holds); fills `state.rows`."""
        ...

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]: ...


@dataclass(frozen=True)
class EtcdDown:
    """No etcd process on the host and its client and peer ports closed."""

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        problems = []
        for name in members:
            m = hosts.inv.member(name)
            ok = hosts.run(name, hosts.inv.platform.pod.down(m.client_host, (m.client_port, m.peer_port)),
                           timeout=15).ok
            state.update(name, up=not ok, detail="" if ok else "etcd still running")
            if not ok:
                problems.append(f"etcd still running on {name}")
        return problems

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        out = []
        for name in members:
            m = inv.member(name)
            script = inv.platform.pod.down(m.client_host, (m.client_port, m.peer_port))
            out.append(Block(name, (*fence(script), "",
                                    "Expected: exit 0 (`echo $?` prints 0): no etcd process, client and peer ports "
                                    "closed.")))
        return out


def _urls(members: tuple[str, ...], inv: Inventory) -> list[str]:
    return [inv.member(n).client_url for n in members]


@dataclass(frozen=True)
class AllHealthy:
    """`endpoint health` of every member, asked through the seed, says healthy."""

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        inv = hosts.inv
        health = {h.endpoint: h for h in hosts.fact(inv.seed.name, endpoint_health(inv.platform.tools,
                                                                                    _urls(members, inv)))}
        problems = []
        for name in members:
            h = health.get(inv.member(name).client_url)
            state.update(name, healthy=bool(h and h.healthy), detail=h.error if h else "no answer")
            if not (h and h.healthy):
                problems.append(f"{name} not healthy ({(h.error if h else 'no answer') or 'unhealthy'})")
        return problems

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        urls = _urls(members, inv)
        return [Block(inv.seed.name, (*fence(endpoint_health(inv.platform.tools, urls).script), "",
                                      f"Expected: every endpoint ({', '.join(urls)}) with `\"health\":true`."))]


@dataclass(frozen=True)
class MembersAsExpected:
    """The member list holds exactly the gate's members, all started, voters; with `peer_urls`, each
    advertising the inventory's peer URL and nothing else.

    `learner`: one more member, the joiner, expected as a (started) learner. `stray_learners`: learners
    that are not the inventory's are left to a later step (`--force-new-cluster` keeps a snapshot's
    learners, and the seed must be healthy before anything can remove them); unknown voters never are.
    """

    peer_urls: bool = False
    learner: str = ""
    stray_learners: bool = False

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        inv = hosts.inv
        try:
            listed = hosts.fact(inv.seed.name, member_list(inv.platform.tools, [inv.seed.client_url]))
        except ParseError:
            listed = []
        if not listed:
            return ["member list unavailable"]
        ours = {m.peer_url for m in inv.members}
        if self.stray_learners:
            listed = [m for m in listed if not (m.is_learner and not set(m.peer_urls) & ours)]
        expected = (*members, self.learner) if self.learner else members
        by_name = {m.name: m for m in listed if m.name}
        problems = []
        extra = sorted(set(by_name) - set(expected))
        if extra:
            problems.append(f"member list has members not expected here: {', '.join(extra)}")
        problems += [f"member {m.hex_id} ({','.join(m.peer_urls)}) not started yet" for m in listed if not m.name]
        for name in expected:
            m = by_name.get(name)
            if m is None:
                problems.append(f"{name} not started in the member list")
                continue
            if self.peer_urls and m.peer_urls != (inv.member(name).peer_url,):
                problems.append(f"{name} advertises peer URL {','.join(m.peer_urls)}")
            if m.is_learner != (name == self.learner):
                problems.append(f"{name} is {'a learner' if m.is_learner else 'a voter'} in the member list")
        return problems

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        expected_names = (*members, self.learner) if self.learner else members
        names = ", ".join(f"`{n}`" for n in expected_names)
        expected = f"Expected: exactly these members, each with its name set (started): {names}."
        if self.peer_urls:
            expected += " Each member's `peerURLs` is its peer URL in the members table, nothing else."
        if self.learner:
            expected += f" `{self.learner}` has `\"isLearner\":true`, no other member has it."
        if self.stray_learners:
            expected += (" Learners whose peer URL is not in the members table may be listed too (the next step "
                         "removes them); an unknown member without `isLearner` means: stop here.")
        return [Block(inv.seed.name, (*fence(member_list(inv.platform.tools, [inv.seed.client_url]).script), "",
                                      expected))]


@dataclass(frozen=True)
class RunsWithout:
    """An etcd runs on each member and none carries `flag`.

    Why health is not enough: a restart is asynchronous (the kubelet acts on its next sync), so a
    healthy answer could be the old process, flag and all, still running.
    """

    flag: str

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        script = hosts.inv.platform.pod.runs_without(self.flag)
        return [f"{name}: etcd not yet running without {self.flag} (restart pending)"
                for name in members if not hosts.run(name, script, timeout=15).ok]

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        script = inv.platform.pod.runs_without(self.flag)
        return [Block(name, (*fence(script), "",
                             f"Expected: exit 0: etcd runs, and no longer with `{self.flag}` (the restart has happened;"
                             " until then the old process still answers the health checks).")) for name in members]


@dataclass(frozen=True)
class ComponentsBack:
    """Each control-plane component restarted on the host runs again, from its manifest as it was."""

    components: tuple[Component, ...]
    stamp: str

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        cp = hosts.inv.platform.control_plane
        return [f"{name}: {c.label} not running again from its unchanged manifest" for name in members
                for c in self.components if not hosts.run(name, cp.back(c, self.stamp), timeout=15).ok]

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        cp = inv.platform.control_plane
        return [Block(name, (*fence(cp.back(c, self.stamp)), "",
                             f"Expected: exit 0: {c.label} runs, and its manifest is byte for byte the copy kept "
                             "before the restart.")) for name in members for c in self.components]


@dataclass(frozen=True)
class OneLeader:
    """`endpoint status`: every member names the same leader; with `caught_up`, every raft index
    has reached the leader's index as first seen by this gate."""

    caught_up: bool = False

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        inv = hosts.inv
        try:
            status = {s.endpoint: s for s in hosts.fact(inv.seed.name, endpoint_status(inv.platform.tools,
                                                                                       _urls(members, inv)))}
        except ParseError:
            status = {}
        leaders = {s.leader for s in status.values()}
        leader_index = max((s.raft_index for s in status.values() if s.is_leader), default=None)
        if leader_index is not None and len(leaders) == 1:
            state.first_target(leader_index)
        problems = []
        for name in members:
            s = status.get(inv.member(name).client_url)
            state.update(name, up=s is not None, leader=bool(s and s.is_leader), raft_index=s.raft_index if s else 0)
            if self.caught_up and state.target_index is not None and s and s.raft_index < state.target_index:
                problems.append(f"{name} catching up (raft index {s.raft_index} < {state.target_index})")
        if len(leaders) != 1 or None in leaders:
            problems.append("no single leader" if leaders else "no status")
        return problems

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        expected = ("Expected: every endpoint reports the same `leader` (exactly one leader)"
                    + (", and every `raftIndex` has reached the leader's (the new member caught up)." if self.caught_up
                       else "."))
        return [Block(inv.seed.name, (*fence(endpoint_status(inv.platform.tools, _urls(members, inv)).script), "",
                                      expected + REPEAT))]


@dataclass(frozen=True)
class LearnerCaughtUp:
    """The learner answers `endpoint status` as a learner and has applied up to the leader's raft index
    as this gate first saw it (health and member list do not work against a learner; status does)."""

    learner: str

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        inv = hosts.inv
        urls = [inv.member(n).client_url for n in (*members, self.learner)]
        try:
            status = {s.endpoint: s for s in hosts.fact(inv.seed.name, endpoint_status(inv.platform.tools, urls))}
        except ParseError:
            status = {}
        leader = max((s.raft_index for s in status.values() if s.is_leader), default=None)
        if leader is not None:
            state.first_target(leader)
        mine = status.get(inv.member(self.learner).client_url)
        if mine is None:
            return [f"{self.learner} does not answer yet"]
        if not mine.is_learner:
            return [f"{self.learner} answers, but not as a learner"]
        if state.target_index is None:
            return ["no leader yet"]
        if mine.raft_applied_index < state.target_index:
            return [f"{self.learner} catching up as a learner (applied {mine.raft_applied_index} < "
                    f"{state.target_index})"]
        return []

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        urls = [inv.member(n).client_url for n in (*members, self.learner)]
        return [Block(inv.seed.name, (*fence(endpoint_status(inv.platform.tools, urls).script), "",
                                      f"Expected: `{inv.member(self.learner).client_url}` reports "
                                      "`\"isLearner\":true` and a `raftAppliedIndex` at or past the leader's "
                                      "`raftIndex` (the learner caught up)." + REPEAT))]


@dataclass(frozen=True)
class EntryGone:
    """The member list has no entry with `member`'s peer URL, but an unstarted learner (its add, taken over).

    Why a check of its own: after a replace removed a dead member's entry, the others must agree it is gone
    before its new etcd is announced; a half-added learner with its peer URL is the one entry that may stay.
    """

    member: str

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        inv = hosts.inv
        try:
            listed = hosts.fact(inv.seed.name, member_list(inv.platform.tools, [inv.seed.client_url]))
        except ParseError:
            listed = []
        if not listed:
            return ["member list unavailable"]
        url = inv.member(self.member).peer_url
        return [f"{self.member}'s old entry {m.hex_id} ({'learner' if m.is_learner else 'voter'}) still listed"
                for m in listed if url in m.peer_urls and (m.started or not m.is_learner)]

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        url = inv.member(self.member).peer_url
        return [Block(inv.seed.name, (*fence(member_list(inv.platform.tools, [inv.seed.client_url]).script), "",
                                      f"Expected: no member with `peerURLs` `{url}`, or only one without a name "
                                      "and with `\"isLearner\":true` (added, never started)."))]



@dataclass(frozen=True)
class Answers:
    """The member's etcd answers `endpoint status`, asked on the member itself.

    Why not health: a member restarted while the others still crash-loop has no leader and is never healthy on its
    own; answering status says its etcd started on its flags and serves its port. Why on the member: the seed may
    be one of those still down."""

    member: str

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        url = hosts.inv.member(self.member).client_url
        try:
            status = hosts.fact(self.member, endpoint_status(hosts.inv.platform.tools, [url]))
        except ParseError:
            status = []
        if self.member in state.rows:
            state.update(self.member, up=bool(status), detail="" if status else "no answer")
        return [] if status else [f"{self.member}: etcd does not answer yet"]

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        url = inv.member(self.member).client_url
        return [Block(self.member, (*fence(endpoint_status(inv.platform.tools, [url]).script), "",
                                    f"Expected: one line of JSON for `{url}` (its etcd answers; a leader may still "
                                    "be missing while other members are down)." + REPEAT))]
