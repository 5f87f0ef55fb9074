"""etcd's flags as `ETCD_*` lines of an env file that the pod's shell sources (OKD's etcd.conf)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..command import Command, Raw, chain, q, sh


def env_key(flag: str) -> str:
    """etcd reads every flag from its env var: `initial-cluster` is `ETCD_INITIAL_CLUSTER`."""
    return "ETCD_" + flag.upper().replace("-", "_")


def flag_of(key: str) -> str:
    return key.removeprefix("ETCD_").lower().replace("_", "-")


def set_env(path: str, key: str, value: str) -> Raw:
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


def env_has(path: str, items: Mapping[str, str]) -> Raw:
    return chain(*(sh("grep", "-qx", f"{k}={v}", path) for k, v in items.items()))


@dataclass(frozen=True)
class EnvFile:
    file: str

    @property
    def label(self) -> str:
        return self.file.rsplit("/", 1)[-1]

    def keep_copy(self, host: str, aside: str) -> Command:
        return Command(host, sh("cp", "-p", self.file, aside), f"keep a copy of {self.label}",
                       skip_if=sh("test", "-e", aside))

    def set(self, host: str, values: Mapping[str, str]) -> tuple[Command, ...]:
        return tuple(
            Command(host, set_env(self.file, env_key(flag), v), f"set {env_key(flag)} in {self.label}",
                    skip_if=env_has(self.file, {env_key(flag): v}))
            for flag, v in values.items()
        )

    def put_back(self, host: str, aside: str, rewritten: str) -> Command:
        return Command(host, chain(sh("cp", "-p", self.file, rewritten), sh("cp", "-p", aside, self.file)),
                       f"put the original {self.label} back")

    def values_script(self) -> str:
        return sh("cat", self.file)

    def parse_values(self, text: str) -> dict[str, str]:
        out = {}
        for line in text.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key.startswith("ETCD_"):
                out[flag_of(key)] = value.strip().strip('"')
        return out
