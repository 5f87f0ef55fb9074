"""The first step of a recovery from a backup kept on the bastion (`--backup bastion:PATH`): copy it to the seed.

The engine sends the file over SFTP (`Command.upload`) to a temporary name the login user may write, then the
command checks its sha256 there and moves it under the tool's state dir, named by its sha256. It counts as a
change: it runs after the locks and the fresh look, like every first change.
"""

from __future__ import annotations

from ..command import Command, Raw, chain, q, sh
from ..model import Context, Step
from ..platform.tools import STATE_ROOT


def sha_is(path: str, sha256: str) -> Raw:
    """Read-only: `path` exists and has this sha256."""
    return Raw(f"test -f {q(path)} && test \"$(sha256sum < {q(path)} | cut -c1-64)\" = {q(sha256)}")


def copy_backup(ctx: Context) -> Step:
    b, seed = ctx.bastion, ctx.seed
    assert b is not None and ctx.backup is not None
    dst = ctx.backup
    tmp = f"/tmp/.etcdrescue-backup-{ctx.stamp}-{b.sha256[:12]}"
    port = f"-P {seed.port} " if seed.port != 22 else ""
    hand = f"# sent first from this machine over SFTP; by hand: scp {port}{q(b.local)} {seed.host}:{tmp}"
    parts = [
        Raw(f"{sha_is(tmp, b.sha256)} || {{ echo 'the copy on {seed.name} differs from the bastion file "
            f"(sha256): damaged in transit' >&2; exit 1; }}"),
        sh("install", "-d", "-m", "0700", STATE_ROOT, f"{STATE_ROOT}/backups", dst.rsplit("/", 1)[0]),
        Raw(f"if test -e {q(dst)}; then mv {q(dst)} {q(ctx.aside(dst))}; fi"),
        sh("mv", tmp, dst), sh("chmod", "0600", dst), sha_is(dst, b.sha256),
    ]
    copy = Command(seed.name, Raw(f"{hand}\n{chain(*parts)}"),
                   f"copy the backup from this machine to {dst} ({b.size / 2**20:.1f} MiB, SFTP) and check its sha256 "
                   "there", skip_if=sha_is(dst, b.sha256), timeout=600, upload=(b.local, tmp))
    return Step(
        key="backup-copy", title=f"Copy the backup from this machine to {seed.name}", phase="prepare",
        why="The restore reads the backup on the seed; the copy is checked against the sha256 checked here.",
        commands=(copy,),
        undo=(Command(seed.name, sh("mv", dst, ctx.aside(dst)), "move the copied backup aside"),),
    )
