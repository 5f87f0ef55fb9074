"""Replace one member while the quorum holds: a dead, corrupt or wiped member is stopped, its entry removed
(or its half-added learner entry taken over), its data moved aside, and it is added back as a learner with
empty data, started with `existing` state, caught up, promoted and verified, behind a gate at every step.

Why remove before adding: a wiped member restarted under its old entry panics (`tocommit(N) is out of range
[lastIndex(0)]`) at every start, and etcd up to 3.5.29/3.6.10 refuses `member add` ("unhealthy cluster")
while any voter it lists is unreachable. A learner added then cannot vote, so a slow sync cannot cost the
quorum.
"""

from __future__ import annotations

from ..checks import AllHealthy, EntryGone, EtcdDown, OneLeader
from ..command import Command, Raw, Retry, chain, q
from ..inventory.model import Member
from ..model import Context, Gate, Step
from ..probes import endpoint_health
from ..space import NoAlarm
from ..steps.join import join_member
from ..steps.verify import final_check
from .base import HandCheck, Procedure
from .replace_rules import judge


def target(ctx: Context) -> Member:
    if ctx.target is None:
        raise ValueError("a replace needs its target member (Context.target)")
    return ctx.inv.member(ctx.target)


def others(ctx: Context) -> tuple[str, ...]:
    return tuple(m.name for m in ctx.inv.members if m.name != ctx.target)


HALF_ADDED = '$2 == "unstarted" && $4 == "true"'
REMOVE = Retry(("unhealthy cluster",), 60.0, 1.0,
               "etcd removes a member only while the members left keep a quorum connected for 5 s")
"""awk over `EtcdTools.member_rows`: an added learner that never started (taken over, not removed)."""


def old_entry(ctx: Context, member: Member, program: str, *, negate: bool = False) -> Raw:
    """awk over the seed's member rows: `program` runs on the entry with `member`'s peer URL, unless it is a
    half-added learner (`negate`: the awk's exit status inverted). The member list is read first (`pipefail`:
    etcdctl's own failure, not the rows'), so a failed read fails the whole script and never looks like "no
    entry"."""
    listing = ctx.platform.tools.member_rows([ctx.seed.client_url])
    awk = f"awk -F'\\t' -v u={q(member.peer_url)} '$3 == u && !({HALF_ADDED}) {program}'"
    return Raw(f"out=$(set -o pipefail; {listing}) && {'! ' if negate else ''}printf '%s\\n' \"$out\" | {awk}")


def stop_key(member: str) -> str:
    """The first step's key: a journal's steps name the member its replace acts on (a resume must act on it)."""
    return f"stop-{member}"


def stop(ctx: Context) -> Step:
    t = target(ctx)
    pod = ctx.platform.pod
    return Step(
        key=stop_key(t.name), title=f"Stop etcd on {t.name}", phase="stop-member",
        why="Its etcd must stay down while its entry goes and its data moves aside: a crash-looping member "
            "restarted by the kubelet would start on what is left.",
        commands=(pod.stop(t.name),),
        gate=Gate(f"etcd is down on {t.name} (no process, ports closed)", (t.name,), ctx.down_timeout,
                  (EtcdDown(),), settle=ctx.down_settle),
        undo=(pod.start(t.name),),
        destructive=f"Stop etcd on {t.name}? The other members keep the quorum.",
    )


def remove(ctx: Context) -> Step:
    t, seed = target(ctx), ctx.seed
    tools = ctx.platform.tools
    gone = old_entry(ctx, t, "{f = 1} END {exit !f}", negate=True)
    find_id = Raw(f"id=$({old_entry(ctx, t, '{print $1}')}) && test -n \"$id\"")
    return Step(
        key=f"remove-{t.name}", title=f"Remove {t.name}'s old entry from the member list", phase="remove",
        why="A wiped member under its old entry panics at every start, and a listed voter that does not answer "
            "makes etcd refuse the next member add. A half-added learner with its peer URL is kept: the new "
            "etcd starts as it.",
        commands=(Command(seed.name, chain(find_id, tools.ctl([seed.client_url], "member", "remove", Raw('"$id"'))),
                          f"remove {t.name}'s entry (by the ID listed for {t.peer_url}) through {seed.name}",
                          skip_if=gone, retry=REMOVE),),
        gate=Gate(f"{t.name}'s old entry gone; the others healthy with one leader", others(ctx), ctx.gate_timeout,
                  (AllHealthy(), EntryGone(t.name), OneLeader())),
        undo_note=f"A removed member does not come back under its old ID: go on (--resume) to add {t.name} back, "
                  "or add it by hand (`member add`, then start it with empty data).",
        destructive=f"Remove {t.name} from the member list of {ctx.inv.cluster}?",
    )


def steps(ctx: Context) -> tuple[Step, ...]:
    t = target(ctx)
    initial = ",".join(f"{m.name}={m.peer_url}" for m in ctx.inv.members)
    aside = ctx.aside(ctx.paths.member_dir)
    rejoin = join_member(ctx, t, others(ctx), initial, f"Add {t.name} back as a learner, with empty data",
                         f"Add {t.name} back? Its old data moves aside to {aside} and it syncs from {ctx.seed.name}.",
                         phase="rejoin")
    return (stop(ctx), remove(ctx), *rejoin, final_check(ctx, extra=(NoAlarm(),)))


def mode(ctx: Context) -> str:
    return (f"replace {ctx.target}: stopped, its old entry removed, added back as a learner with empty data "
            f"synced from {ctx.seed.name}, promoted once caught up")


def condition(ctx: Context) -> HandCheck:
    t, inv = target(ctx), ctx.inv
    need = (len(inv.members) - 1) // 2 + 1
    return HandCheck(
        f"The quorum holds without `{t.name}`",
        f"The cluster keeps its quorum without `{t.name}`: every other member healthy (at least {need} needed), "
        f"`{t.name}` not",
        ctx.seed.name, str(endpoint_health(ctx.platform.tools, [m.client_url for m in inv.members]).script),
        f"`\"health\":true` for every endpoint but `{t.client_url}`. Fewer than {need} others healthy: **stop "
        f"here**, removing it would cost the quorum; another one unhealthy too: bring it back first. `{t.name}` "
        "healthy: there is nothing to replace.")


REPLACE = Procedure(name="replace", title="etcd member replacement", done="REPLACED", judge=judge, steps=steps,
                    mode=mode, needs_cluster=True, takes_options=True, condition=condition,
                    outcome="every member healthy and a voter, one leader, no alarm")
