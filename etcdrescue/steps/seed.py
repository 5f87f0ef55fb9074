"""Phase 2: rebuild the seed as a one-member cluster from the backup or its own surviving data.

Why snapshot restore is the default for backups: an openshift-ansible backup is
`etcdctl backup` (v2) plus a copy of `member/snap/db`; the v2 backup drops the
v3 entries from the WAL, so starting on it with --force-new-cluster is
unreliable (NOTES.md). `etcdctl snapshot restore` of the db alone always worked.
"""

from __future__ import annotations

import re

from ..command import Command, Raw, chain, conf_has, etcdctl, q, set_conf, sh
from ..probes import ETCD_CMDLINES
from .base import Context, Gate, GateKind, Method, Step
from .stop import enable_manifest

FLAG = "--force-new-cluster"
EXEC_LINE = re.compile(r"exec etcd(?:[ \t]*$|(?=\\n))", re.M)
"""The `exec etcd` of the pod's shell script, as a block scalar line or inside a quoted scalar."""

SED_ADD_FLAG = r"s/(exec etcd)([[:space:]]*)$/\1 --force-new-cluster\2/; s/(exec etcd)(\\n)/\1 --force-new-cluster\2/"


def partial_aside(path: str) -> Raw:
    """A leftover of an interrupted copy or restore is moved aside: never reused, never deleted."""
    return Raw(f"if test -e {q(path)}; then mv {q(path)} {q(path)}.partial-$(date +%s); fi")


def copy_then_rename(host: str, src: str, dst: str, purpose: str, chown_like: str | None = None) -> Command:
    """Copy under a temporary name and rename at the end, so `dst` existing means the copy is whole.

    Why: a cut connection does not stop the remote `cp`; a check on `dst` alone would confirm a
    half-written copy.
    """
    tmp = f"{dst}.etcdrescue-copying"
    parts = [partial_aside(tmp), sh("cp", "-a", src, tmp)]
    if chown_like:
        parts.append(sh("chown", "-R", f"--reference={chown_like}", tmp))
    parts.append(sh("mv", tmp, dst))
    return Command(host, chain(*parts), purpose, skip_if=sh("test", "-e", dst), timeout=1800)


def seed_data(ctx: Context) -> Step:
    p, seed = ctx.paths, ctx.seed
    member, aside = p.member_dir, ctx.aside(p.member_dir)
    move_aside = Command(
        seed.name, sh("mv", member, aside), "keep the seed's old data aside",
        skip_if=Raw(f"test -e {q(aside)} || test ! -e {q(member)}"),
    )
    if ctx.quorum_restore:
        commands: tuple[Command, ...] = (
            copy_then_rename(seed.name, member, aside,
                             "copy the seed's surviving data aside before --force-new-cluster rewrites its membership"),
        )
        title = f"Keep {seed.name}'s own data (copy aside)"
        undo_note = f"The untouched copy is {aside}."
    elif ctx.method is Method.SNAPSHOT_RESTORE:
        restore_dir = f"{p.data_dir.rstrip('/')}/etcdrescue-restore-{ctx.stamp}"
        complete = f"{restore_dir}.complete"
        restore = [
            "snapshot", "restore", ctx.backup_db,
            "--name", seed.name, "--initial-cluster", f"{seed.name}={seed.peer_url}",
            "--initial-cluster-token", ctx.cluster_token, "--initial-advertise-peer-urls", seed.peer_url,
            "--data-dir", restore_dir,
        ]
        if ctx.backup_kind == "dir":
            restore.insert(3, "--skip-hash-check")
        commands = (
            move_aside,
            Command(seed.name, chain(partial_aside(restore_dir), sh(Raw("ETCDCTL_API=3"), "etcdctl", *restore),
                                     sh("touch", complete)),
                    "restore the backup's db into a fresh one-member data dir",
                    skip_if=Raw(f"test -e {q(member)} || test -e {q(complete)}"), timeout=1800),
            Command(seed.name, chain(sh("mv", f"{restore_dir}/member", member), sh("rmdir", restore_dir),
                                     sh("chown", "-R", f"--reference={p.data_dir}", member)),
                    "put the restored data in place", skip_if=sh("test", "-e", member)),
        )
        title = f"Restore the backup into {seed.name} (etcdctl snapshot restore)"
        undo_note = ""
    else:
        assert ctx.backup is not None
        commands = (
            move_aside,
            copy_then_rename(seed.name, ctx.backup.rstrip("/") + "/member", member,
                             "copy the backup's member dir in place", chown_like=p.data_dir),
        )
        title = f"Copy the backup into {seed.name}'s data dir"
        undo_note = ""
    undo = () if ctx.quorum_restore else (
        Command(seed.name, chain(sh("mv", member, ctx.aside(member, "restored")), sh("mv", aside, member)),
                "put the seed's original data back"),
    )
    return Step(
        key="seed-data", title=title, phase="seed",
        why="The seed is the member every other member will copy its data from.",
        commands=commands, undo=undo, undo_note=undo_note,
        destructive="" if ctx.quorum_restore else f"Replace the data of {seed.name} with the backup {ctx.backup}?",
    )


def seed_conf(ctx: Context) -> Step:
    seed = ctx.seed
    values = {
        "ETCD_NAME": seed.name,
        "ETCD_INITIAL_CLUSTER": f"{seed.name}={seed.peer_url}",
        "ETCD_INITIAL_CLUSTER_STATE": "new",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": seed.peer_url,
    }
    return Step(
        key="seed-conf", title=f"Rewrite {seed.name}'s etcd.conf for a one-member cluster", phase="seed",
        why="A new cluster must name only the seed; the old member list would make it wait for peers.",
        commands=(backup_conf(ctx, seed.name), *write_conf(ctx, seed.name, values)),
        undo=(restore_conf(ctx, seed.name),),
    )


def backup_conf(ctx: Context, host: str) -> Command:
    conf = ctx.paths.etcd_conf
    return Command(host, sh("cp", "-p", conf, ctx.aside(conf)), "keep a copy of etcd.conf",
                   skip_if=sh("test", "-e", ctx.aside(conf)))


def write_conf(ctx: Context, host: str, values: dict[str, str]) -> tuple[Command, ...]:
    conf = ctx.paths.etcd_conf
    return tuple(
        Command(host, set_conf(conf, k, v), f"set {k} in etcd.conf", skip_if=conf_has(conf, {k: v}))
        for k, v in values.items()
    )


def restore_conf(ctx: Context, host: str) -> Command:
    conf = ctx.paths.etcd_conf
    keep_rewritten = sh("cp", "-p", conf, ctx.aside(conf, "rewritten"))
    put_back = sh("cp", "-p", ctx.aside(conf), conf)
    return Command(host, chain(keep_rewritten, put_back), "put the original etcd.conf back")


def seed_start(ctx: Context) -> Step:
    p, seed = ctx.paths, ctx.seed
    pristine = ctx.aside(p.disabled_manifest)
    commands: list[Command] = []
    if ctx.uses_flag:
        commands += [
            Command(seed.name, sh("cp", "-p", p.disabled_manifest, pristine),
                    "keep the original manifest (its bytes are restored later)",
                    skip_if=Raw(f"test -e {q(pristine)} || test -e {q(p.manifest)}")),
            Command(seed.name, sh("sed", "-i", "-E", SED_ADD_FLAG, p.disabled_manifest),
                    f"add {FLAG} to the manifest's `exec etcd` line",
                    skip_if=Raw(f"test -e {q(p.manifest)} || grep -q -- {q('exec etcd ' + FLAG)} "
                                f"{q(p.disabled_manifest)}")),
            Command(seed.name, Raw(f"test \"$(diff {q(pristine)} {q(p.disabled_manifest)} | grep -c '^[<>]')\" = 2 "
                                   f"&& grep -c -- {q(FLAG)} {q(p.disabled_manifest)}"),
                    "verify the edit changed exactly one line", mutates=False,
                    skip_if=sh("test", "-e", p.manifest), check=_one_flag, expect="1"),
        ]
    commands.append(enable_manifest(ctx, seed.name))
    return Step(
        key="seed-start",
        title=f"Start {seed.name} as a one-member cluster" + (f" ({FLAG})" if ctx.uses_flag else ""),
        phase="seed",
        why="The seed must be healthy on its own before anyone joins it.",
        commands=tuple(commands),
        gate=Gate(GateKind.HEALTHY, f"{seed.name} healthy as a one-member cluster", (seed.name,), ctx.gate_timeout),
        undo=(Command(seed.name, sh("mv", p.manifest, ctx.aside(p.disabled_manifest, "started")),
                      "stop the seed again"),),
    )


def _one_flag(output: str) -> str | None:
    return None if output.strip() == "1" else f"expected exactly one {FLAG} in the manifest, found {output.strip()!r}"


def member_id_of_single(ctx: Context) -> Raw:
    """The seed is the only member here, so its ID is the one line of `member list`."""
    return Raw(
        "id=$(" + etcdctl(ctx.paths, [ctx.seed.client_url], "member", "list")
        + " | awk -F', ' 'END {if (NR != 1) exit 1} {print $1}') && test -n \"$id\""
    )


def seed_peer_url(ctx: Context) -> Step:
    p, seed = ctx.paths, ctx.seed
    listing = etcdctl(p, [seed.client_url], "member", "list")
    has_url = Raw(f"{listing} | awk -F', ' -v u={q(seed.peer_url)} '$4 == u {{f = 1}} END {{exit !f}}'")
    return Step(
        key="seed-peer-url", title=f"Set {seed.name}'s peer URL to {seed.peer_url}", phase="seed",
        why="--force-new-cluster keeps the advertised peer URL of the data (often http://localhost:2380); "
            "joiners must reach the seed at its real address.",
        commands=(Command(
            seed.name,
            chain(member_id_of_single(ctx), etcdctl(p, [seed.client_url], "member", "update", Raw('"$id"'),
                                                    f"--peer-urls={seed.peer_url}")),
            "update the member's peer URL", skip_if=has_url),),
        gate=Gate(GateKind.HEALTHY, f"{seed.name} healthy with peer URL {seed.peer_url}", (seed.name,),
                  ctx.gate_timeout, check_peer_urls=True),
        undo_note="Nothing to undo: the peer URL is the inventory's.",
    )


def seed_drop_flag(ctx: Context) -> Step:
    p, seed = ctx.paths, ctx.seed
    pristine = ctx.aside(p.disabled_manifest)
    tmp = f"{p.pod_dir}/.{p.manifest.rsplit('/', 1)[1]}.etcdrescue"
    return Step(
        key="seed-drop-flag", title=f"Restore {seed.name}'s original manifest (without {FLAG}) and restart",
        phase="seed",
        why=f"Left in place, {FLAG} would wipe the membership again at the next restart.",
        commands=(
            Command(seed.name, sh("cp", "-p", p.manifest, ctx.aside(p.disabled_manifest, "forced")),
                    "keep the edited manifest for the record",
                    skip_if=Raw(f"test -e {q(ctx.aside(p.disabled_manifest, 'forced'))} || cmp -s {q(pristine)} "
                                f"{q(p.manifest)}")),
            Command(seed.name, chain(sh("cp", "-p", pristine, tmp), sh("mv", tmp, p.manifest)),
                    "put the original manifest bytes back (atomic rename; the kubelet restarts the pod)",
                    skip_if=sh("cmp", "-s", pristine, p.manifest)),
            Command(seed.name, sh(*ctx.inv.profile.restart), "restart etcd without the flag",
                    skip_if=Raw(f"! {{ {ETCD_CMDLINES}; }} | grep -q -- {q(FLAG)}")),
        ),
        gate=Gate(GateKind.HEALTHY, f"{seed.name} healthy after the restart, running without {FLAG}",
                  (seed.name,), ctx.gate_timeout, check_peer_urls=True, without_flag=FLAG),
    )


def seed_steps(ctx: Context) -> list[Step]:
    steps = [seed_data(ctx), seed_conf(ctx), seed_start(ctx), seed_peer_url(ctx)]
    if ctx.uses_flag:
        steps.append(seed_drop_flag(ctx))
    return steps
