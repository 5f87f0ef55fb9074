"""Reclaiming etcd's space after the NOSPACE alarm: compact, defragment one member at a time, (raise the quota,)
check the room won, disarm, verify.

Why this order: compaction frees the old revisions' pages on every member at once (a raft entry); each member's
defragmentation then gives them back to the file system, and blocks that member while it rewrites its db, so one
member at a time keeps the quorum, and the leader goes last (a blocked leader stalls the whole cluster's writes
and may cost an election). The alarm is disarmed only once every member has room again: disarmed any earlier,
the next write would raise it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..checks import AllHealthy, OneLeader
from ..command import Command, Raw, chain, q, sh
from ..inventory.model import Member
from ..model import Context, Gate, Step
from ..platform.tools import STATE_ROOT
from ..space import (
    Defragmented,
    NoAlarm,
    RunsWith,
    ServesDespiteAlarm,
    WritesWork,
    compacted_script,
    effective_quota,
    human,
    no_alarm_script,
    revision_script,
    room_problem,
)
from .health import healthy_gate
from .seed import keep_settings, restore_settings

QUOTA_FLAG = "quota-backend-bytes"
SEPARATOR = "#etcdrescue: status follows#"
LONG = 1800
"""Seconds a compaction or a defragmentation may take (a multi-GiB db is rewritten page by page)."""


def order(ctx: Context) -> tuple[Member, ...]:
    """The members one at a time: followers first, the leader last (the pre-flight made the leader the seed)."""
    return (*ctx.inv.members[1:], ctx.seed)


def compact(ctx: Context) -> Step:
    seed, tools = ctx.seed, ctx.platform.tools
    url = seed.client_url
    run = tools.ctl([url], "compact", Raw('"$rev"'), "--physical", f"--command-timeout={LONG}s")
    script = Raw(f"{revision_script(tools, url)} && out=$({run} 2>&1); rc=$?; printf '%s\\n' \"$out\"; "
                 "test $rc = 0 || printf '%s' \"$out\" | grep -q 'required revision has been compacted'")
    return Step(
        key="compact", title="Compact etcd's history up to the current revision", phase="reclaim",
        why="Old revisions hold most of the space a full etcd uses; compacting frees their pages on every member "
            "(a defragmentation then gives them back). Compacted by someone else meanwhile counts as done.",
        commands=(Command(seed.name, script, "compact to the current revision (--physical: wait until applied)",
                          skip_if=compacted_script(tools, url), timeout=LONG + 60),),
        undo_note="A compaction cannot be undone: the revisions before it are gone (the keys' current values stay).",
    )


def defragmented_mark(ctx: Context) -> str:
    """Touched once this run's defragmentation of a member returned: its "already done?" probe.

    Why not the sizes: right after a compaction under the NOSPACE alarm, etcd 3.4 reports `dbSizeInUse` equal to
    `dbSize` (the freed pages stay pending while no write commits), so the sizes would call the db defragmented.
    After a defragmentation the sizes are right again: the gate measures them."""
    return f"{STATE_ROOT}/defragmented-{ctx.stamp}"


def defrag(ctx: Context, member: Member, index: int) -> Step:
    tools, names = ctx.platform.tools, tuple(m.name for m in ctx.inv.members)
    leader = member.name == ctx.seed.name
    mark = defragmented_mark(ctx)
    return Step(
        key=f"defrag-{member.name}",
        title=f"Defragment {member.name} ({index} of {len(names)}{', the leader, last' if leader else ''})",
        phase="reclaim",
        why="A member rewrites its db while it defragments and answers nobody meanwhile: one member at a time "
            "keeps the quorum, and the leader goes last.",
        commands=(Command(member.name, chain(tools.ctl([member.client_url], "defrag", f"--command-timeout={LONG}s"),
                                             sh("mkdir", "-p", STATE_ROOT), sh("touch", mark)),
                          f"defragment {member.name}'s db (gives the free pages back)",
                          skip_if=sh("test", "-e", mark), timeout=LONG + 60),),
        gate=Gate(f"{member.name} defragmented; every member serving (a NOSPACE alarm aside), one leader", names,
                  ctx.gate_timeout, (ServesDespiteAlarm(), Defragmented(member.name), OneLeader())),
        undo_note="A defragmentation cannot be undone, nor does it need to be: it changes no key, only the file.",
    )


def raise_quota(ctx: Context, member: Member, index: int) -> Step:
    """The new quota in the member's settings, through a stop and start of its etcd (the settings are read only
    at start; kubeadm's manifest is edited while out of the kubelet's sight)."""
    assert ctx.quota is not None
    p, pod, tools = ctx.paths, ctx.platform.pod, ctx.platform.tools
    value = str(ctx.quota)
    names = tuple(m.name for m in ctx.inv.members)
    runs = pod.runs_with(QUOTA_FLAG, value)
    stop = pod.stop(member.name)
    ports = (member.client_port, member.peer_port)
    wait_down = Raw(f"n=0; until {pod.down(member.client_host, ports)}; do test $n -ge 240 && exit 1; "
                    "n=$((n+1)); sleep 0.5; done")
    return Step(
        key=f"quota-{member.name}",
        title=f"Raise {member.name}'s quota to {human(ctx.quota)} and restart its etcd ({index} of {len(names)})",
        phase="quota",
        why="When the data itself fills the quota, only a larger one makes room. etcd reads it at start: one "
            "member at a time keeps the quorum, each healthy again before the next.",
        commands=(
            Command(member.name, stop.script, stop.purpose, skip_if=Raw(f"{runs} || {{ {stop.skip_if}; }}")),
            Command(member.name, wait_down, "wait until etcd is down (no process, ports closed)", mutates=False,
                    skip_if=Raw(f"test -e {q(p.manifest)}"), timeout=150),
            keep_settings(ctx, member.name),
            *ctx.platform.settings.set(member.name, {QUOTA_FLAG: value}),
            pod.start(member.name),
        ),
        gate=Gate(f"{member.name} runs with --{QUOTA_FLAG}={value}; every member serving, one leader", names,
                  ctx.gate_timeout, (ServesDespiteAlarm(), RunsWith(QUOTA_FLAG, value, member.name),
                                     OneLeader(caught_up=True))),
        undo=(stop, restore_settings(ctx, member.name), pod.start(member.name)),
        undo_note=f"The settings as they were are kept at {ctx.aside(ctx.platform.settings.file)}; "
                  f"check with: {tools.ctl([member.client_url], 'endpoint', 'status')}",
        destructive=f"Raise the quota of {member.name} to {ctx.quota} bytes ({human(ctx.quota)})? Its etcd "
                    "restarts once.",
    )


@dataclass(frozen=True)
class RoomCheck:
    """`Command.check` for `room`'s output: the member's settings, a separator, its own status. Judged against
    the quota this run ends with: `--quota` where given, else the one the settings give etcd."""

    parse: Callable[[str], dict[str, str]]
    quota: int | None
    member: str

    def __call__(self, output: str) -> str | None:
        settings, sep, status = output.partition(f"{SEPARATOR}\n")
        if not sep:
            return f"{self.member}: its settings or status could not be read"
        try:
            quota = self.quota or effective_quota(self.parse(settings).get(QUOTA_FLAG))
        except ValueError as exc:  # a manifest changed since the pre-flight into one that does not parse
            return f"its settings could not be read: {exc}"
        return room_problem(self.member, status, quota)


def room(ctx: Context) -> Step:
    tools, settings = ctx.platform.tools, ctx.platform.settings
    quota = f"the new quota ({human(ctx.quota)})" if ctx.quota else "its quota (as its settings give it)"
    return Step(
        key="room", title="Check that every member has room under its quota", phase="reclaim",
        why="Disarmed without room, the alarm comes back with the next write: when the data itself fills the quota, "
            "defragmenting cannot help and only a larger quota does (--quota BYTES).",
        commands=tuple(Command(m.name, Raw(f"{settings.values_script()} && printf '%s\\n' {q(SEPARATOR)} && "
                                           + tools.ctl([m.client_url], "endpoint", "status", "-w", "json")),
                               f"measure {m.name}'s db against {quota}", mutates=False,
                               check=RoomCheck(settings.parse_values, ctx.quota, m.name),
                               expect=f"`dbSize` under 80% of {quota}") for m in order(ctx)),
    )


def disarm(ctx: Context) -> Step:
    seed, tools = ctx.seed, ctx.platform.tools
    names = tuple(m.name for m in ctx.inv.members)
    return Step(
        key="disarm", title="Disarm the NOSPACE alarm", phase="reclaim",
        why="etcd refuses every write while the alarm stands, even with room again.",
        commands=(Command(seed.name, tools.ctl([seed.client_url], "alarm", "disarm"), "disarm every alarm",
                          skip_if=no_alarm_script(tools, seed.client_url)),),
        gate=Gate("no alarm; every member healthy, one leader; a write is accepted", names, ctx.gate_timeout,
                  (AllHealthy(), NoAlarm(), OneLeader(), WritesWork())),
        undo_note="Nothing to undo: an alarm that still applies is raised again by etcd itself.",
    )


def verify(ctx: Context) -> Step:
    names = tuple(m.name for m in ctx.inv.members)
    return Step(
        key="verify", title="Verify the whole cluster", phase="verify",
        why="Done means: every member started and healthy, the member list as the inventory's, one leader, caught "
            "up, no alarm, and writes accepted.",
        commands=tuple(ctx.platform.settled(n) for n in names),
        gate=healthy_gate(ctx, "all members healthy and listed, one leader, caught up; no alarm; a write is accepted",
                          names, caught_up=True, extra=(NoAlarm(), WritesWork())),
    )


def reclaim_steps(ctx: Context) -> tuple[Step, ...]:
    members = order(ctx)
    out = [compact(ctx), *(defrag(ctx, m, i) for i, m in enumerate(members, 1)), room(ctx)]
    if ctx.quota is not None:
        out += [raise_quota(ctx, m, i) for i, m in enumerate(members, 1)]
    return (*out, disarm(ctx), verify(ctx))
