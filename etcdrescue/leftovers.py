"""What a run left on the masters: everything named with its stamp, read from the hosts when the run ends.

Why read the hosts rather than the scripts: the report must name what really exists (a resumed, failed or
undone run leaves other things than the plan says), and every name the tool gives to what it keeps aside
carries the run's stamp (`Context.aside`: `<path>.<tag>-<stamp>`; the restore's `.complete` marker; the lock
released as `lock.released-<stamp>`). The directories looked in are the platform's own: the data dir, the
manifests' and the settings' directories and the tool's state dir. Read-only; the tool never tidies them: the
report prints the command for the operator, once the cluster has run well for a while.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .command import Raw, q
from .platform import Platform
from .platform.tools import STATE_ROOT
from .probes import Fact, ParseError


@dataclass(frozen=True)
class Leftover:
    path: str
    is_dir: bool
    origin: str = ""
    """The path it was moved or copied from, where it is an aside (`<path>.<tag>-<stamp>`)."""
    tag: str = ""

    def record(self) -> dict[str, object]:
        return {"path": self.path, "dir": self.is_dir, "from": self.origin, "tag": self.tag}


def aside_of(path: str, stamp: str) -> tuple[str, str] | None:
    """(the path the aside names, tag) when `path` is `<path>.<tag>-<stamp>`, the form every aside takes."""
    found = re.fullmatch(rf"(.+)\.([a-z]+)-{re.escape(stamp)}", path)
    return (found.group(1), found.group(2)) if found else None


def origin(platform: Platform, named: str) -> str:
    """Where an aside's content came from: a control-plane manifest's copy and bounce sit in the disabled dir under
    the manifest's name (`ControlPlane.kept`, `.bounced`), every other aside beside what it keeps."""
    cp = platform.control_plane
    head, _, name = named.rpartition("/")
    if head == cp.disabled_dir.rstrip("/"):
        for component in (c for stage in cp.stages for c in stage):
            if component.manifest.rsplit("/", 1)[-1] == name:
                return component.manifest
    return named


def directories(platform: Platform) -> tuple[str, ...]:
    p = platform.paths
    dirs = (p.data_dir, p.disabled_dir, p.pod_dir, platform.settings.file.rsplit("/", 1)[0] or "/",
            platform.control_plane.disabled_dir, STATE_ROOT)
    return tuple(dict.fromkeys(d.rstrip("/") or "/" for d in dirs))


def leftovers_probe(platform: Platform, stamp: str) -> Fact[list[tuple[str, bool]]]:
    """Read-only: one line `d PATH` or `f PATH` per entry of those directories whose name holds the stamp."""
    stamp_q = q(stamp)
    loops = " ".join(q(d) for d in directories(platform))
    script = Raw(f"for d in {loops}; do for e in \"$d\"/*{stamp_q}* \"$d\"/.*{stamp_q}*; do "
                 "if test -d \"$e\" && ! test -L \"$e\"; then echo \"d $e\"; "
                 "elif test -e \"$e\" || test -L \"$e\"; then echo \"f $e\"; fi; done; done; true")
    return Fact("leftovers", script, parse_leftovers)


def parse_leftovers(text: str) -> list[tuple[str, bool]]:
    """(path, is a directory) per line."""
    out = []
    for line in text.splitlines():
        kind, _, path = line.partition(" ")
        if kind not in ("d", "f") or not path.startswith("/"):
            raise ParseError(f"leftovers: unexpected line {line[:80]!r}")
        out.append((path, kind == "d"))
    return out


def leftovers(found: list[tuple[str, bool]], platform: Platform, stamp: str) -> list[Leftover]:
    out = []
    for path, is_dir in dict.fromkeys(found):
        aside = aside_of(path, stamp)
        out.append(Leftover(path, is_dir, origin(platform, aside[0]) if aside else "", aside[1] if aside else ""))
    return out


def tidy_command(paths: Iterable[str]) -> str:
    """For the operator, never run by the tool: removes the listed leftovers once they are not needed."""
    return "rm -r -- " + " ".join(q(p) for p in paths)
