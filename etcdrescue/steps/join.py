"""Phase 3: join the other members one at a time, each behind a health gate.

With learners (the default on etcd 3.4+), a join is two steps: the member is added as a learner and
started, the gate waits until it caught up (a learner does not vote, so a slow one cannot cost the
quorum), then it is promoted through a voter and the usual health gate follows. A step boundary
between the two makes every half-finished add resumable: added but never started (no name in the
member list), started but not promoted, promoted already (each command's probe sees which).
"""

from __future__ import annotations

import json
from typing import Any

from ..command import Check, Command, Raw, Retry, chain, q, sh
from ..inventory.model import Member
from ..model import Context, Step
from .health import healthy_gate, learner_gate
from .seed import keep_settings, restore_settings, set_settings

IN_SYNC = "in sync with leader"
"""etcd refuses to promote a learner that has not caught up ("... which is in sync with leader"): retried."""

ADD_REFUSALS = ("unhealthy cluster", "too many learner members")
PROMOTE = Retry((IN_SYNC, "unhealthy cluster"), 120.0, 1.0,
                "etcd promotes a learner only once its log has caught up with the leader's (90 %)")


def member_add_retry(ctx: Context) -> Retry:
    """`member add`'s refusals that lift by themselves, with the wait the seed's etcd needs.

    Why it differs: up to 3.5.29/3.6.10 (and for an unknown version) the member asked accepts an add only once it
    has been connected to every voter for 5 s, so after each promote or voter restart it refuses for about 5 s,
    and as long as any voter is away: the wait covers a slow voter coming back. From 3.5.30/3.6.11 a quorum
    connected for 5 s is enough, and the gate before the add has just seen every member healthy: a refusal
    that outlasts a few 5 s windows is a cluster losing its quorum, reported rather than waited out.
    """
    v = ctx.etcd or "of unknown version"
    if ctx.release.adds_only_when_all_connected:
        return Retry(ADD_REFUSALS, 60.0, 1.0, f"etcd {v} accepts a member add only once the member asked has been "
                                              "connected to every voting member for 5 s")
    return Retry(ADD_REFUSALS, 20.0, 1.0, f"etcd {v} accepts a member add once a quorum of the voting members "
                                          "has been connected for 5 s")


def added_cluster(output: str, name: str) -> set[str] | None:
    """The cluster `member add -w json` answered, as the `name=peerURL` items etcdctl's table output would print in
    ETCD_INITIAL_CLUSTER (the new member under `name`, an unstarted one under ""); None when it is not that JSON."""
    answer = next((line for line in output.splitlines() if line.startswith("{")), "")
    try:
        data: Any = json.loads(answer)
        added = data["member"]["ID"]
        return {f"{name if m['ID'] == added else m.get('name', '')}={url}"
                for m in data["members"] for url in m.get("peerURLs", [])}
    except (ValueError, KeyError, TypeError):
        return None


def _member_add_check(expected: str, name: str) -> Check:
    want = set(expected.split(","))

    def check(output: str) -> str | None:
        got = added_cluster(output, name)
        if got is None:
            return "member add printed no JSON answer with the member and the member list"
        if got == want:
            return None
        return f"member add returned the cluster {','.join(sorted(got))}, expected {expected}"

    return check


def listed(ctx: Context, member: Member, condition: str = "") -> Raw:
    """Read-only: exit 0 when the seed's member list has `member`'s peer URL (and `condition`, an awk test over
    `EtcdTools.member_rows`: $2 the status, $4 whether a learner)."""
    test = f"$3 == u{' && ' + condition if condition else ''}"
    return Raw(ctx.platform.tools.member_rows([ctx.seed.client_url])
               + f" | awk -F'\\t' -v u={q(member.peer_url)} '{test} {{f = 1}} END {{exit !f}}'")


def member_id(ctx: Context, member: Member) -> Raw:
    """Shell setting $id to `member`'s ID in hex, as `promote` and `remove` take it."""
    return Raw("id=$(" + ctx.platform.tools.member_rows([ctx.seed.client_url])
               + f" | awk -F'\\t' -v u={q(member.peer_url)} '$3 == u {{print $1}}') && test -n \"$id\"")


STUCK_GRACE_MS = 1000
"""How long a joiner may stay silent, after the seed applied its publish and while its own data dir no longer
grows, before it counts as stuck. A joiner whose publish is applied as an entry serves within milliseconds
of the seed applying it; one still receiving a large snapshot is busy, not stuck (restarting it would cost
the whole transfer again, and by its end etcd's own timeout has mostly run out anyway)."""
STUCK_WAIT_S = 10
"""How long the unstick command watches a joiner that neither serves nor is stuck (then the gate judges).
Short, because the engine can only stop a run between commands: an abort waits this long at most."""


def serves(ctx: Context, member: Member) -> Raw:
    """Read-only: exit 0 when `member` answers on its client URL. etcd serves clients only once its own
    publish is applied; `endpoint status` answers on learners too (`endpoint health` does not)."""
    return Raw(ctx.platform.tools.ctl([member.client_url], "endpoint", "status", "--dial-timeout=500ms",
                                      "--command-timeout=500ms") + " >/dev/null 2>&1")


def unstick(ctx: Context, member: Member) -> Command:
    """Restart a joiner whose first publish the seed applied before building the snapshot it sent it.

    The joiner then never applies that entry itself (the snapshot covers it), so the publish's wait ends
    only on etcd's request timeout (5 s + 2 election timeouts, ~7 s) and a retry; a restarted joiner
    publishes again from its own WAL and serves at once. Seen from outside: the seed lists it as started
    (its name is set) while it does not answer and its data dir has stopped growing. Skipped, or left at
    once, when it serves.
    """
    pod = ctx.platform.pod
    started = listed(ctx, member, '$2 == "started"')
    published = f"{{ {started}; }} 2>/dev/null"
    ms = "$(ms)"
    restart = pod.restart(member.client_host, (member.client_port, member.peer_port))
    script = (
        "ms() { echo $(($(date +%s%N) / 1000000)); }; "
        f"t0={ms}; since=; size=; "
        f"while test $(({ms} - t0)) -lt {STUCK_WAIT_S * 1000}; do "
        f"if {serves(ctx, member)}; then echo {q(member.name + ' serves')}; exit 0; fi; "
        f"n=$(du -sk {q(ctx.paths.member_dir)} 2>/dev/null | cut -f1); "
        "if test \"$n\" != \"$size\"; then size=$n; since=; fi; "
        f"if test -z \"$since\" && {published}; then since={ms}; fi; "
        f"if test -n \"$since\" && test $(({ms} - since)) -ge {STUCK_GRACE_MS}; then "
        f"echo {q(member.name + ' is published on ' + ctx.seed.name + ' but does not serve: restarting it')}; "
        f"{restart}; exit $?; fi; "
        "sleep 0.25; done; "
        f"echo {q(member.name + f' neither serves nor is stuck after {STUCK_WAIT_S}s: left to the gate')}")
    return Command(member.name, Raw(script),
                   "if the seed applied its first publish before the snapshot it sent it (published there, not "
                   "serving here), restart it rather than wait out etcd's ~7 s request timeout",
                   skip_if=serves(ctx, member), timeout=STUCK_WAIT_S + 60)


def join(ctx: Context, index: int) -> list[Step]:
    """The quorum recovery's join of the inventory's member `index`: the members before it are in."""
    member: Member = ctx.inv.members[index]
    names = tuple(m.name for m in ctx.inv.members[: index + 1])
    title = f"Join {member.name} ({index} of {len(ctx.joiners)})" + (" as a learner" if ctx.learners else "")
    return join_member(ctx, member, names[:-1], ctx.initial_cluster(index), title,
                       f"Join {member.name}? Its old data moves aside and it syncs from {ctx.seed.name}.")


def join_member(ctx: Context, member: Member, voters: tuple[str, ...], initial: str, title: str,
                destructive: str, phase: str = "join") -> list[Step]:
    """`member` joins the cluster of `voters` (healthy, the seed among them) with `initial` as its initial
    cluster: announced (as a learner by default), its settings set, its old data moved aside, started; then
    promoted. Its etcd must be stopped before (the quorum recovery's stop, a replace's own)."""
    p, seed, platform = ctx.paths, ctx.seed, ctx.platform
    tools = platform.tools
    data_aside = ctx.aside(p.member_dir)
    values = {
        "name": member.name,
        "initial-cluster": initial,
        "initial-cluster-state": "existing",
        "initial-advertise-peer-urls": member.peer_url,
    }
    names = (*voters, member.name)
    add = ["member", "add", member.name, f"--peer-urls={member.peer_url}", *(["--learner"] if ctx.learners else [])]
    as_what = "as a learner" if ctx.learners else "as a voting member"
    start = Step(
        key=f"join-{member.name}",
        title=title,
        phase=phase,
        why=("One member at a time, as a learner: it cannot vote until it caught up, so a slow joiner cannot "
             "cost the quorum." if ctx.learners else
             "One member at a time: two unstarted members at once would cost the cluster its quorum."),
        commands=(
            Command(seed.name, tools.ctl([seed.client_url], *add, "-w", "json"),
                    f"announce {member.name} to the cluster {as_what}",
                    skip_if=listed(ctx, member), retry=member_add_retry(ctx),
                    check=_member_add_check(initial, member.name),
                    expect=f'JSON whose members make ETCD_INITIAL_CLUSTER="{initial}" (any order)'),
            keep_settings(ctx, member.name),
            *set_settings(ctx, member.name, values),
            Command(member.name, sh("mv", p.member_dir, data_aside),
                    "move the old data aside; the member syncs from the cluster",
                    skip_if=Raw(f"test -e {q(data_aside)} || test ! -e {q(p.member_dir)}")),
            platform.pod.start(member.name),
            unstick(ctx, member),
        ),
        gate=(learner_gate(ctx, f"{member.name} started as a learner and caught up", names[:-1], member.name)
              if ctx.learners else
              healthy_gate(ctx, f"{member.name} started, healthy and caught up", names, peer_urls=True,
                           caught_up=True)),
        undo=(
            platform.pod.stop_again(member.name, p.disabled_manifest, "stop the member again"),
            Command(seed.name, chain(member_id(ctx, member),
                                     tools.ctl([seed.client_url], "member", "remove", Raw('"$id"'))),
                    "remove it from the member list"),
            restore_settings(ctx, member.name),
        ),
        destructive=destructive,
    )
    if not ctx.learners:
        return [start]
    promote = Step(
        key=f"promote-{member.name}",
        title=f"Promote {member.name} to a voting member",
        phase=phase,
        why="A learner that caught up becomes a voter; only then does the next member join.",
        commands=(Command(
            seed.name, chain(member_id(ctx, member), tools.ctl([seed.client_url], "member", "promote", Raw('"$id"'))),
            "promote the learner (through a voter)", skip_if=listed(ctx, member, '$4 == "false"'),
            retry=PROMOTE),),
        gate=healthy_gate(ctx, f"{member.name} a healthy voter, caught up", names, peer_urls=True, caught_up=True),
        undo_note="A promoted member is undone with the join's undo (stop it, remove it from the member list).",
    )
    return [start, promote]
