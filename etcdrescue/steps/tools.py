"""Phase 0, on kubeadm nodes without etcd tools: the etcd image's own binaries copied to one place on every master.

Why a copy, and why here: the runtime unpacks the image under a layer directory whose number differs from node
to node, while every command of the plan (and the runbook, which prints one command line for all) must name
one path. `TOOLS_ROOT/<version>/` is the same private directory `--etcd-tools` uploads to. A copy, not a link:
while etcd is stopped its image is unused, and the kubelet's image garbage collection may remove it mid-run.
The read-only pre-flight runs the binaries where they are; this is the plan's first change.
"""

from __future__ import annotations

import posixpath

from ..command import Command, Raw, chain, q, sh
from ..model import Context, Step
from ..platform.tools import TOOLS_ROOT


def installed(path: str, version: str) -> Raw:
    """Read-only: exit 0 when `path` is in place and reports `version` (a copy made before, or uploaded)."""
    name = posixpath.basename(path)
    return Raw(f"test -x {q(path)} && {q(path)} version 2>/dev/null | grep -qx {q(f'{name} version: {version}')}")


def image_copies(ctx: Context) -> list[Step]:
    """The step copying each node's image binaries into place; none when the tools are not the image's."""
    tools = ctx.platform.tools
    if not tools.copied_from:
        return []
    targets = [t for t in (tools.etcdctl, tools.etcdutl) if t]
    home = posixpath.dirname(tools.etcdctl)
    commands, undo = [], []
    for host, source in tools.copied_from:
        for target in targets:
            name = posixpath.basename(target)
            tmp = posixpath.join(home, f".{name}.etcdrescue-{ctx.stamp}")
            commands.append(Command(
                host, chain(sh("install", "-d", "-m", "0700", TOOLS_ROOT), sh("install", "-d", "-m", "0755", home),
                            sh("cp", posixpath.join(source, name), tmp), sh("chmod", "0755", tmp),
                            sh("mv", tmp, target), installed(target, tools.version)),
                f"copy the etcd image's {name} {tools.version} to {home}",
                skip_if=installed(target, tools.version)))
            undo.append(Command(host, sh("mv", target, ctx.aside(target)), f"move the copied {name} aside",
                                skip_if=Raw(f"test ! -e {q(target)}")))
    return [Step(
        key="etcd-tools", title=f"Copy the etcd image's {' and '.join(posixpath.basename(t) for t in targets)} "
                                f"{tools.version} to {home} on every master",
        phase="tools",
        why=(f"The masters have no etcd tools of their own; their etcd image {tools.version} has them, under a layer "
             "directory that differs per node. One copy at one place lets every command name one path."),
        commands=tuple(commands), undo=tuple(undo))]
