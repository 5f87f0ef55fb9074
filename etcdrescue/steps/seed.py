"""Phase 2: rebuild the seed as a one-member cluster from the backup or its own surviving data.

Why snapshot restore is the default for backups: an openshift-ansible backup is
`etcdctl backup` (v2) plus a copy of `member/snap/db`; the v2 backup drops the
v3 entries from the WAL, so starting on it with --force-new-cluster is
unreliable (docs/design.md). `etcdctl snapshot restore` of the db alone always worked.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..checks import RunsWithout
from ..command import Command, Raw, chain, q, sh
from ..model import BackupKind, Context, Method, Step
from .health import healthy_gate


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


def restored_dir(ctx: Context) -> str:
    return f"{ctx.paths.data_dir.rstrip('/')}/etcdrescue-restore-{ctx.stamp}"


def restore_backup(ctx: Context) -> Command | None:
    """The backup restored into a fresh one-member data dir, run while the stop gate settles.

    Why then: it reads only the backup and writes only a new directory, so it needs no stopped etcd,
    and the settle's seconds are otherwise idle. None when the recovery does not restore a snapshot.
    """
    if ctx.quorum_restore or ctx.method is not Method.SNAPSHOT_RESTORE:
        return None
    seed, restore_dir = ctx.seed, restored_dir(ctx)
    complete = f"{restore_dir}.complete"
    options = [
        "--name", seed.name, "--initial-cluster", f"{seed.name}={seed.peer_url}",
        "--initial-cluster-token", ctx.cluster_token, "--initial-advertise-peer-urls", seed.peer_url,
        "--data-dir", restore_dir,
    ]
    if ctx.backup_kind is BackupKind.DIR:
        options.insert(0, "--skip-hash-check")
    if ctx.revisions.bump:
        options += ["--bump-revision", str(ctx.revisions.bump), "--mark-compacted"]
    restore = ctx.platform.tools.snapshot_restore(ctx.backup_db, *options)
    return Command(seed.name, chain(partial_aside(restore_dir), restore, sh("touch", complete)),
                   "restore the backup's db into a fresh one-member data dir (while the gate waits: it touches "
                   "nothing live)", skip_if=sh("test", "-e", complete), timeout=1800, while_gate=True)


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
        restore_dir = restored_dir(ctx)
        commands = (
            move_aside,
            Command(seed.name, chain(sh("mv", f"{restore_dir}/member", member), sh("rmdir", restore_dir),
                                     sh("chown", "-R", f"--reference={p.data_dir}", member)),
                    "put the restored data in place (restored while the stop gate waited)",
                    skip_if=sh("test", "-e", member)),
        )
        bumped = f", revisions +{ctx.revisions.bump:,}" if ctx.revisions.bump else ""
        title = f"Put the restored backup in place on {seed.name} ({ctx.platform.tools.restore_tool} snapshot " \
                f"restore{bumped})"
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
    seed, settings = ctx.seed, ctx.platform.settings
    values = {
        "name": seed.name,
        "initial-cluster": f"{seed.name}={seed.peer_url}",
        "initial-cluster-state": "new",
        "initial-advertise-peer-urls": seed.peer_url,
    }
    return Step(
        key="seed-conf", title=f"Rewrite {seed.name}'s {settings.label} for a one-member cluster", phase="seed",
        why="A new cluster must name only the seed; the old member list would make it wait for peers.",
        commands=(keep_settings(ctx, seed.name), *set_settings(ctx, seed.name, values)),
        undo=(restore_settings(ctx, seed.name),),
    )


def set_settings(ctx: Context, host: str, values: Mapping[str, str]) -> tuple[Command, ...]:
    """The member's settings `values`; where the run also rewrites its refused flags (`recover --fix-flags`), in the
    same verified edit: the flags etcd refuses would stop the member at the start that follows."""
    fix = dict(ctx.fixes).get(host)
    if fix is None:
        return ctx.platform.settings.set(host, values)
    return ctx.platform.settings.set(host, {**values, **dict(fix.set)}, fix.drop)


def keep_settings(ctx: Context, host: str) -> Command:
    settings = ctx.platform.settings
    return settings.keep_copy(host, ctx.aside(settings.file))


def restore_settings(ctx: Context, host: str) -> Command:
    settings = ctx.platform.settings
    return settings.put_back(host, ctx.aside(settings.file), ctx.aside(settings.file, "rewritten"))


def seed_start(ctx: Context) -> Step:
    p, seed, platform = ctx.paths, ctx.seed, ctx.platform
    flag = platform.force_flag.flag
    commands: list[Command] = []
    if ctx.uses_flag:
        commands += platform.force_flag.add(seed.name, unforced(ctx))
    commands.append(platform.pod.start(seed.name))
    return Step(
        key="seed-start",
        title=f"Start {seed.name} as a one-member cluster" + (f" ({flag})" if ctx.uses_flag else ""),
        phase="seed",
        why="The seed must be healthy on its own before anyone joins it.",
        commands=tuple(commands),
        gate=healthy_gate(ctx, f"{seed.name} healthy as a one-member cluster", (seed.name,),
                          stray_learners=ctx.uses_flag),
        undo=(platform.pod.stop_again(seed.name, ctx.aside(p.disabled_manifest, "started"), "stop the seed again"),),
    )


def member_id_of_single(ctx: Context) -> Raw:
    """The seed is the only member here, so its ID is the one row of the member list."""
    return Raw(
        "id=$(" + ctx.platform.tools.member_rows([ctx.seed.client_url])
        + " | awk -F'\\t' 'END {if (NR != 1) exit 1} {print $1}') && test -n \"$id\""
    )


def seed_peer_url(ctx: Context) -> Step:
    seed, tools = ctx.seed, ctx.platform.tools
    listing = tools.member_rows([seed.client_url])
    has_url = Raw(f"{listing} | awk -F'\\t' -v u={q(seed.peer_url)} '$3 == u {{f = 1}} END {{exit !f}}'")
    return Step(
        key="seed-peer-url", title=f"Set {seed.name}'s peer URL to {seed.peer_url}", phase="seed",
        why="--force-new-cluster keeps the advertised peer URL of the data (often http://localhost:2380); "
            "joiners must reach the seed at its real address.",
        commands=(Command(
            seed.name,
            chain(member_id_of_single(ctx), tools.ctl([seed.client_url], "member", "update", Raw('"$id"'),
                                                      f"--peer-urls={seed.peer_url}")),
            "update the member's peer URL", skip_if=has_url),),
        gate=healthy_gate(ctx, f"{seed.name} healthy with peer URL {seed.peer_url}", (seed.name,), peer_urls=True,
                          stray_learners=ctx.uses_flag),
        undo_note="Nothing to undo: the peer URL is the inventory's.",
    )


def stray_learners(ctx: Context, action: str, end: str = "") -> Raw:
    """awk over the seed's member rows: `action` for each learner whose peer URL is not the inventory's."""
    ours = " ".join(m.peer_url for m in ctx.inv.members)
    return Raw(ctx.platform.tools.member_rows([ctx.seed.client_url])
               + f" | awk -F'\\t' -v ours={q(ours)} 'BEGIN {{n = split(ours, a, \" \"); for (i = 1; i <= n; i++) "
               f"o[a[i]] = 1}} $4 == \"true\" && !($3 in o) {{{action}}}{end}'")


def seed_strays(ctx: Context) -> Step:
    """`--force-new-cluster` keeps the learners recorded in the data (etcd <= 3.5.24 and <= 3.6.5): one left
    in a snapshot blocks every learner join ("too many learner members") and is not ours to keep."""
    seed, tools = ctx.seed, ctx.platform.tools
    none_left = stray_learners(ctx, "f = 1", " END {exit f}")
    remove = Raw(f"for id in $({stray_learners(ctx, 'print $1')}); do "
                 + tools.ctl([seed.client_url], "member", "remove", Raw('"$id"')) + " || exit 1; done")
    return Step(
        key="seed-strays", title=f"Remove learners that are not in the inventory from {seed.name}'s member list",
        phase="seed",
        why="A learner kept from the old data would block the first join; unknown voters are not removed: the "
            "gates stop on them.",
        commands=(Command(seed.name, remove, "remove stray learners (journaled by ID)", skip_if=none_left),),
        gate=healthy_gate(ctx, f"{seed.name} the only member", (seed.name,), peer_urls=True),
        undo_note="A removed learner cannot be put back; it held no data (learners do not vote).",
    )


def unforced(ctx: Context) -> str:
    """Where the seed's manifest is kept before `--force-new-cluster` goes in, to be put back after that one start:
    the original bytes (the settings' own copy aside, made first), or, where the run rewrites the seed's refused
    flags (`recover --fix-flags`), the manifest as `seed-conf` left it: the original would stop etcd again."""
    if ctx.seed.name in dict(ctx.fixes):
        return ctx.aside(ctx.paths.disabled_manifest, "unforced")
    return ctx.aside(ctx.paths.disabled_manifest)


def seed_drop_flag(ctx: Context) -> Step:
    p, seed, platform = ctx.paths, ctx.seed, ctx.platform
    flag = platform.force_flag.flag
    pristine = unforced(ctx)
    return Step(
        key="seed-drop-flag", title=f"Restore {seed.name}'s original manifest (without {flag}) and restart",
        phase="seed",
        why=f"Left in place, {flag} would wipe the membership again at the next restart.",
        commands=(
            *platform.force_flag.drop(seed.name, pristine, ctx.aside(p.disabled_manifest, "forced")),
            *platform.pod.restart_without(seed.name, flag),
        ),
        gate=healthy_gate(ctx, f"{seed.name} healthy after the restart, running without {flag}", (seed.name,),
                          peer_urls=True, extra=(RunsWithout(flag),)),
    )


def seed_steps(ctx: Context) -> list[Step]:
    steps = [seed_data(ctx), seed_conf(ctx), seed_start(ctx), seed_peer_url(ctx)]
    if ctx.uses_flag:
        steps += [seed_strays(ctx), seed_drop_flag(ctx)]
    return steps
