"""Rewriting etcd's flags for the etcd its image runs, one member at a time: stop, keep a copy, rewrite, start.

Why stop first: the flags are the manifest's `command:` items, edited only while the manifest sits out of the
kubelet's sight (`Settings.set`), so a half-made edit can never start. Why one member at a time, each behind its
gate: a member that starts on the rewritten flags proves the rewrite before the next member gets it.
"""

from __future__ import annotations

from ..checks import Answers, RunsWithout
from ..command import Command, Raw, q
from ..inventory.model import Member
from ..model import Context, Gate, Step
from ..platform.release import FlagRewrite
from ..space import RunsWith
from .health import healthy_gate
from .seed import keep_settings, restore_settings


def fixed_script(ctx: Context, rewrite: FlagRewrite) -> Raw:
    """Exit 0 when a running etcd carries every rewritten item and none of the dropped flags: the member is done."""
    pod = ctx.platform.pod
    parts = [str(pod.runs_with(n, v)) for n, v in rewrite.set] + [str(pod.runs_without(f"--{n}"))
                                                                    for n in rewrite.drop]
    return Raw(" && ".join(f"{{ {p}; }}" for p in parts))


def fix_member(ctx: Context, member: Member, rewrite: FlagRewrite, index: int, count: int) -> Step:
    p, pod, settings = ctx.paths, ctx.platform.pod, ctx.platform.settings
    name = member.name
    stop = pod.stop(name)
    ports = (member.client_port, member.peer_port)
    wait_down = Raw(f"n=0; until {pod.down(member.client_host, ports)}; do test $n -ge 240 && exit 1; "
                    "n=$((n+1)); sleep 0.5; done")
    refused = ", ".join(f"--{n}" for n in rewrite.drop)
    return Step(
        key=f"flags-{name}",
        title=f"Rewrite {name}'s etcd flags for etcd {rewrite.release} and start it ({index} of {count})",
        phase="flags",
        why=f"etcd {rewrite.release} refuses {refused} and exits at start: the manifest gets the items it takes "
            f"instead ({rewrite.words}), edited while out of the kubelet's sight, a copy of it kept first.",
        commands=(
            Command(name, stop.script, stop.purpose, skip_if=Raw(f"{{ {fixed_script(ctx, rewrite)}; }} || "
                                                                 f"{{ {stop.skip_if}; }}")),
            Command(name, wait_down, "wait until etcd is down (no process, ports closed)", mutates=False,
                    skip_if=Raw(f"test -e {q(p.manifest)}"), timeout=150),
            keep_settings(ctx, name),
            *settings.set(name, dict(rewrite.set), rewrite.drop),
            pod.start(name),
        ),
        gate=Gate(f"{name} runs etcd without {refused}, on the rewritten flags, and answers", (name,),
                  ctx.gate_timeout, (*(RunsWith(n, v, name) for n, v in rewrite.set),
                                     *(RunsWithout(f"--{n}") for n in rewrite.drop), Answers(name))),
        undo=(stop, restore_settings(ctx, name), pod.start(name)),
        undo_note=f"The manifest as it was is kept at {ctx.aside(settings.file)} (its etcd refused those flags: "
                  "putting it back stops that member again).",
        destructive=f"Rewrite {name}'s etcd flags ({rewrite.words})? Its etcd stops and starts once.",
    )


def verify(ctx: Context) -> Step:
    names = tuple(m.name for m in ctx.inv.members)
    return Step(
        key="verify", title="Verify the whole cluster", phase="verify",
        why="Done means: every manifest back in place and none aside, every member started and healthy, the member "
            "list as the inventory's, one leader, caught up.",
        commands=tuple(ctx.platform.settled(n) for n in names),
        gate=healthy_gate(ctx, "all members healthy and listed, one leader, caught up", names, caught_up=True),
    )


def fix_flags_steps(ctx: Context) -> tuple[Step, ...]:
    fixes = dict(ctx.fixes)
    members = [m for m in ctx.inv.members if m.name in fixes]
    return (*(fix_member(ctx, m, fixes[m.name], i, len(members)) for i, m in enumerate(members, 1)), verify(ctx))
