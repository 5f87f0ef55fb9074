"""Phase 3: join the other members one at a time, each behind a health gate."""

from __future__ import annotations

from ..command import Check, Command, Raw, q, sh
from ..inventory import Member
from ..model import Context, Step
from .health import healthy_gate
from .seed import keep_settings, restore_settings


def _member_add_check(expected: str) -> Check:
    want = set(expected.split(","))

    def check(output: str) -> str | None:
        for line in output.splitlines():
            if line.startswith("ETCD_INITIAL_CLUSTER="):
                got = set(line.partition("=")[2].strip().strip('"').split(","))
                if got == want:
                    return None
                return f"member add returned ETCD_INITIAL_CLUSTER={','.join(sorted(got))}, expected {expected}"
        return "member add printed no ETCD_INITIAL_CLUSTER"

    return check


def join(ctx: Context, index: int) -> Step:
    p, seed, platform = ctx.paths, ctx.seed, ctx.platform
    tools = platform.tools
    member: Member = ctx.inv.members[index]
    initial = ctx.initial_cluster(index)
    listing = tools.ctl([seed.client_url], "member", "list")
    in_list = Raw(listing + f" | awk -F', ' -v u={q(member.peer_url)} '$4 == u {{f = 1}} END {{exit !f}}'")
    data_aside = ctx.aside(p.member_dir)
    values = {
        "name": member.name,
        "initial-cluster": initial,
        "initial-cluster-state": "existing",
        "initial-advertise-peer-urls": member.peer_url,
    }
    names = tuple(m.name for m in ctx.inv.members[: index + 1])
    return Step(
        key=f"join-{member.name}",
        title=f"Join {member.name} ({index} of {len(ctx.joiners)})",
        phase="join",
        why="One member at a time: two unstarted members at once would cost the cluster its quorum.",
        commands=(
            Command(seed.name, tools.ctl([seed.client_url], "member", "add", member.name,
                                         f"--peer-urls={member.peer_url}"),
                    f"announce {member.name} to the cluster", skip_if=in_list,
                    retry_on=("unhealthy cluster",), retry_for=60.0, check=_member_add_check(initial),
                    expect=f'ETCD_INITIAL_CLUSTER="{initial}" (any order) and ETCD_INITIAL_CLUSTER_STATE="existing"'),
            keep_settings(ctx, member.name),
            *platform.settings.set(member.name, values),
            Command(member.name, sh("mv", p.member_dir, data_aside),
                    "move the old data aside; the member syncs from the cluster",
                    skip_if=Raw(f"test -e {q(data_aside)} || test ! -e {q(p.member_dir)}")),
            platform.pod.start(member.name),
        ),
        gate=healthy_gate(ctx, f"{member.name} started, healthy and caught up", names, peer_urls=True,
                          caught_up=True),
        undo=(
            Command(member.name, sh("mv", p.manifest, p.disabled_manifest), "stop the member again"),
            Command(seed.name, Raw(
                "id=$(" + listing + f" | awk -F', ' -v u={q(member.peer_url)} '$4 == u {{print $1}}') && "
                "test -n \"$id\" && " + tools.ctl([seed.client_url], "member", "remove", Raw('"$id"'))),
                "remove it from the member list"),
            restore_settings(ctx, member.name),
        ),
        destructive=f"Join {member.name}? Its old data moves aside and it syncs from {seed.name}.",
    )
