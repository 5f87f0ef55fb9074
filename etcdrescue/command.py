"""Commands as data.

A step never runs anything itself: it returns `Command` objects. The engine
executes them, the dry run prints them, the runbook renders them — all from the
same objects, so the three can never disagree. Every value that came from the
inventory is quoted by `sh()` before it becomes part of a script.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .profiles import Paths


class Raw(str):
    """Shell syntax that must not be quoted (operators, redirections, $(...))."""


def q(value: object) -> str:
    return value if isinstance(value, Raw) else shlex.quote(str(value))


def sh(*args: object) -> Raw:
    """Join arguments into one shell command line, quoting everything but `Raw` pieces."""
    return Raw(" ".join(q(a) for a in args))


def chain(*parts: str) -> Raw:
    return Raw(" && ".join(parts))


Check = Callable[[str], "str | None"]
"""Inspects a command's output; returns None when it is as expected, else the problem."""


@dataclass(frozen=True)
class Command:
    host: str
    script: str
    purpose: str
    mutates: bool = True
    skip_if: str | None = None
    """Read-only script: exit 0 means this command's effect is already in place."""
    timeout: float = 60.0
    retry_on: tuple[str, ...] = ()
    """Output fragments that mean 'refused for now, try again' (e.g. etcd's 'unhealthy cluster')."""
    retry_for: float = 0.0
    check: Check | None = field(default=None, compare=False)
    expect: str = ""
    """What `check` wants to see in the output, in words (for the runbook and the wizard)."""


def etcdctl(paths: Paths, endpoints: Iterable[str], *args: object) -> Raw:
    """An etcdctl v3 call authenticated with the host's own TLS material."""
    return sh(
        Raw("ETCDCTL_API=3"), "etcdctl",
        "--cacert", paths.ca, "--cert", paths.cert, "--key", paths.key,
        "--endpoints", ",".join(endpoints), *args,
    )


def set_conf(path: str, key: str, value: str) -> Raw:
    """Set KEY=VALUE in a sourced env file, replacing the line if present, appending if not.

    Values come from validated inventory fields (no '|', '&' or backslash can
    reach the sed expression); they are written unquoted, as OKD writes them.
    """
    line = f"{key}={value}"
    return Raw(
        f"if grep -q {q('^' + key + '=')} {q(path)}; "
        f"then sed -i {q('s|^' + key + '=.*|' + line + '|')} {q(path)}; "
        f"else printf '%s\\n' {q(line)} >> {q(path)}; fi"
    )


def conf_has(path: str, items: dict[str, str]) -> Raw:
    return chain(*(sh("grep", "-qx", f"{k}={v}", path) for k, v in items.items()))
