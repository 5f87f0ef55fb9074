"""Long generated scripts ship once, as files beside the runbook, instead of once per host and step on paper.

Two kinds, both exact forms of what the engine runs:
- a program a command passes as one quoted argument (the kubeadm manifest editor's awk, `platform.manifest`):
  the runbook prints the command with `"$(cat FILE)"` in place of the quoted text. The shell hands awk the same
  argument read from the file (less trailing newlines, which awk ignores), and each per-host command stays
  visible with its own flags and paths;
- a read-only probe longer than `LONG_PROBE` characters (the host survey): the whole script goes to one file per
  host, printed as `bash FILE`.

On the masters the files live in `host_dir` (under the tool's own root-only state dir, never in /tmp, because
root runs them); the runbook tells the operator how to copy them there and check their digests.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from ..command import q
from ..platform import envfile, manifest, tools
from ..platform.tools import STATE_ROOT

LONG_PROBE = 600
"""Characters: a read-only probe longer than this is shipped as a file (a one-liner fits a few printed lines)."""
SUMS = "SHA256SUMS"
PROGRAMS = {**manifest.PROGRAMS, **envfile.PROGRAMS, **tools.PROGRAMS}
"""Every program a platform passes to awk (or bash) as one quoted argument, by the file name it ships under."""


def host_dir(stamp: str) -> str:
    return f"{STATE_ROOT}/runbook-{stamp}"


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class Shelf:
    """The helper files a runbook needs, collected while it renders: each written once, however often referred to."""

    def __init__(self, stamp: str, programs: Mapping[str, str] | None = None) -> None:
        self.dir = host_dir(stamp)
        self.programs = dict(programs if programs is not None else PROGRAMS)
        self.files: dict[str, str] = {}

    def path(self, name: str) -> str:
        return f"{self.dir}/{name}"

    def command(self, script: str) -> str:
        """`script` with each shipped program's quoted text read from its file instead."""
        for name, text in self.programs.items():
            quoted = q(text)
            if quoted in script:
                script = script.replace(quoted, f'"$(cat {q(self.path(name))})"')
                self.files[name] = text
        return script

    def probe(self, script: str, name: str) -> str:
        """A long read-only probe as `bash FILE`; a short one as it is."""
        if len(script) <= LONG_PROBE:
            return script
        self.files[name] = script + "\n"
        return f"bash {q(self.path(name))}"

    def shipped(self) -> dict[str, str]:
        """Every file to write beside the runbook, digests last (`sha256sum -c` reads them)."""
        if not self.files:
            return {}
        files = dict(sorted(self.files.items()))
        return {**files, SUMS: "".join(f"{digest(text)}  {name}\n" for name, text in files.items())}

    def check_script(self) -> str:
        """On a master, read-only: exit 0 when every file is in place with the digest printed in the runbook."""
        sums = "".join(f"{digest(text)}  {name}\\n" for name, text in sorted(self.files.items()))
        return f"cd {q(self.dir)} && printf {q(sums)} | sha256sum --check --strict"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
