"""etcd's flags as `ETCD_*` lines of a shell-sourced env file (OKD's /etc/etcd/etcd.conf), edited safely and
idempotently on a remote host.

The file is read by `set -o allexport; source /etc/etcd/etcd.conf`, so the setting that counts is the LAST
assignment of a key, and an assignment may be indented or written `export KEY=...`; `#` lines are comments.
Real hosts hand us files without a final newline, with commented-out defaults, with a key set twice, with
quoted values, behind a symlink: `set_env` and `env_has` agree on what an assignment is, so that the probe
("already done?") and the edit can never disagree.

Duplicate keys: `set_env` rewrites EVERY assignment of the key to the new value, in place, instead of
collapsing them into one line. Each line stays where it was, so the diff against the backup shows exactly the
lines that changed, no line that was an assignment silently disappears, and a rerun finds nothing to do. The
effective value is right whichever assignment the shell reads last.

Both scripts use only bash, awk (POSIX: gawk, mawk and busybox all do), GNU sed, tail and printf.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..command import Command, Raw, chain, q, sh


def env_key(flag: str) -> str:
    """etcd reads every flag from its env var: `initial-cluster` is `ETCD_INITIAL_CLUSTER`."""
    return "ETCD_" + flag.upper().replace("-", "_")


def flag_of(key: str) -> str:
    return key.removeprefix("ETCD_").lower().replace("_", "-")


KEY_RE = re.compile(r"[A-Z][A-Z0-9_]*")
VALUE_RE = re.compile(r"[A-Za-z0-9._/+@=:,%\[\]-]*")
"""Characters that stay literal in an unquoted bash assignment and inside a sed `s|||` replacement.

It covers every value an accepted inventory produces (names, paths, URLs with IPv6 literals and scope ids,
`name=url,name=url` member lists) and nothing that the shell would expand or split (`$`, backtick, `~`,
blanks, quotes, `;`), that sed would interpret (`|`, `&`, backslash, newline) or `awk -v` would unescape.
"""

_CLASSIFY = (
    'line = $0; sub(/^[ \\t]+/, "", line); '
    'if (line ~ /^export[ \\t]/) { line = substr(line, 7); sub(/^[ \\t]+/, "", line) } '
    'if (index(line, k "=") != 1) next; '
    'n++; last = substr(line, length(k) + 2); if (last != v) stale = 1'
)
"""Reads every assignment of `k` (awk variable) the way bash does: leading blanks, an optional `export`.

Leaves `n` (how many), `last` (the raw right-hand side of the last one) and `stale` (some assignment is not
exactly `k=v`). Comparing with index() rather than a regex keeps the key and value out of any pattern.
"""

_STATE = "{ " + _CLASSIFY + ' } END { print (n == 0 ? "absent" : stale ? "stale" : "current") }'
_HAS = "{ " + _CLASSIFY + """ } END { exit !(n > 0 && (last == v || last == "\\"" v "\\"" || last == "'" v "'")) }"""
PROGRAMS = {"envfile-state.awk": _STATE, "envfile-has.awk": _HAS}
"""The programs by file name: the runbook ships each once as a file instead of printing it in every command."""


def _check(path: str, key: str, value: str) -> None:
    """Refuse anything the generated script could misread; inventory validation should have stopped it already.

    ValueError, not assert: a wrong etcd.conf on a recovering master is worse than a crash, even under -O.
    """
    if not path.startswith("/"):
        raise ValueError(f"env file path must be absolute (awk would read 'a=b' as an assignment): {path!r}")
    if not KEY_RE.fullmatch(key):
        raise ValueError(f"env key must match [A-Z][A-Z0-9_]*: {key!r}")
    if not VALUE_RE.fullmatch(value):
        raise ValueError(f"env value must be literal when written unquoted (no blanks, quotes, $, |, &, \\): "
                         f"{value!r}")


def _awk(program: str, path: str, key: str, value: str) -> Raw:
    """awk under LC_ALL=C: every byte is a character, so an invalid UTF-8 sequence cannot hide a line's tail."""
    return sh(Raw("LC_ALL=C"), "awk", "-v", f"k={key}", "-v", f"v={value}", program, path)


def set_env(path: str, key: str, value: str) -> Raw:
    """A bash script that makes KEY=VALUE the setting a `source` of the file ends up with; a rerun changes no byte.

    - Every assignment of KEY (indented or `export`ed too) not already exactly KEY=VALUE is rewritten to it,
      keeping its indent and `export`, dropping quotes; comments and all other lines stay byte for byte.
    - No assignment at all: KEY=VALUE is appended, after a newline when the file does not end with one (else
      the new line would be glued onto the last one, and never be found again).
    - Already current: nothing is written, so the inode and mtime stay too.

    `sed -i --follow-symlinks` edits the link's target and leaves the symlink in place; GNU sed gives its
    temporary file the original's mode, owner and SELinux context and renames it over, so a reader never sees a
    half-written file (a second hard link, if any, keeps the old text). The file must exist: creating an
    etcd.conf that holds one key would hide a wrong path.
    """
    _check(path, key, value)
    line = f"{key}={value}"
    append = Raw(f"{{ [ -z \"$(tail -c 1 {q(path)})\" ] || printf '\\n'; printf '%s\\n' {q(line)}; }} >> {q(path)}")
    rewrite = sh(Raw("LC_ALL=C"), "sed", "-i", "--follow-symlinks", "-E",
                 f"s|^([[:blank:]]*(export[[:blank:]]+)?){key}=.*$|\\1{line}|", "--", path)
    missing = sh("printf", "%s\\n", f"{path}: not a regular file", Raw(">&2"))
    return Raw(
        f"if test -f {q(path)}; then envfile_state=$({_awk(_STATE, path, key, value)}) && "
        f"case $envfile_state in absent) {append} ;; stale) {rewrite} ;; current) ;; *) false ;; esac; "
        f"else {missing}; false; fi"
    )


def env_has(path: str, items: dict[str, str]) -> Raw:
    """A read-only bash script: exit 0 iff, for every key, the last assignment in the file is the value.

    The value may be written bare, "double-" or 'single-quoted': bash reads all three the same, so the setting
    is in place. Anything else (another value, trailing blanks or a comment after it, no assignment, no file)
    answers no, and set_env then rewrites the line: a false "no" costs one idempotent edit, a false "yes"
    would skip a needed one. After set_env it answers yes, since every assignment is then exactly KEY=VALUE.
    """
    if not items:
        raise ValueError("env_has needs at least one key: an empty probe would call any step already done")
    for key, value in items.items():
        _check(path, key, value)
    return chain(*(_awk(_HAS, path, k, v) for k, v in items.items()))


@dataclass(frozen=True)
class EnvFile:
    file: str

    @property
    def label(self) -> str:
        return self.file.rsplit("/", 1)[-1]

    @property
    def where(self) -> str:
        return f"{self.label}: `{self.file}`"

    def keep_copy(self, host: str, aside: str) -> Command:
        return Command(host, sh("cp", "-p", self.file, aside), f"keep a copy of {self.label}",
                       skip_if=sh("test", "-e", aside))

    def set(self, host: str, values: Mapping[str, str], drop: Sequence[str] = ()) -> tuple[Command, ...]:
        """Only sets: a variable dropped from a sourced file could still come from the environment, and the one
        rewrite that drops flags (`fix-flags`, etcd's flag names against its version) is kubeadm's alone."""
        if drop:
            raise ValueError(f"{self.label} settings are only set, never dropped: {', '.join(drop)}")
        return tuple(
            Command(host, set_env(self.file, env_key(flag), v), f"set {env_key(flag)} in {self.label}",
                    skip_if=env_has(self.file, {env_key(flag): v}))
            for flag, v in values.items()
        )

    def put_back(self, host: str, aside: str, rewritten: str) -> Command:
        return Command(host, chain(sh("cp", "-p", self.file, rewritten), sh("cp", "-p", aside, self.file)),
                       f"put the original {self.label} back")

    def readable_script(self) -> str:
        return sh("test", "-r", self.file)

    def values_script(self) -> str:
        return sh("cat", self.file)

    def parse_values(self, text: str) -> dict[str, str]:
        out = {}
        for line in text.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key.startswith("ETCD_"):
                out[flag_of(key)] = value.strip().strip('"')
        return out
