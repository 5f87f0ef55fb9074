"""What a platform is: the parts that steps, probes, gates, pre-flight, runbook and lab ask.

Why parts and not one class per platform: two platforms share most answers (both run etcd as a
static pod that stops when its manifest leaves the kubelet's directory) and differ in one or two
(where the flags live). A platform module composes the parts it needs; nothing outside
`platform/` knows which platform it talks to.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..command import Command, Raw
from .controlplane import ControlPlane
from .paths import Paths
from .release import FlagRewrite
from .tools import EtcdTools


class Settings(Protocol):
    """Where etcd's flags live on a host and how one is set, checked and kept aside.

    Keys are etcd's own flag names without dashes in front (`name`, `initial-cluster`), so a step
    says what it wants and each platform spells it its own way.
    """

    @property
    def file(self) -> str: ...

    @property
    def label(self) -> str:
        """How the runbook and the purposes name the file ("etcd.conf")."""
        ...

    @property
    def where(self) -> str:
        """Where the flags live, in one line of the runbook's paths list."""
        ...

    def keep_copy(self, host: str, aside: str) -> Command: ...

    def set(self, host: str, values: Mapping[str, str], drop: Sequence[str] = ()) -> tuple[Command, ...]:
        """Commands that set each flag of `values` and remove every setting of each flag named in `drop` (a
        platform whose settings cannot drop refuses a non-empty `drop` with ValueError)."""
        ...

    def put_back(self, host: str, aside: str, rewritten: str) -> Command: ...

    def readable_script(self) -> str:
        """Read-only: exit 0 when the settings can be read (wherever a recovery may have put them)."""
        ...

    def values_script(self) -> str:
        """Read-only: print the current settings, parsed by `parse_values`."""
        ...

    def parse_values(self, text: str) -> dict[str, str]:
        """Flag name -> value, from what `values_script` printed."""
        ...


class PodControl(Protocol):
    """How etcd is stopped, started and restarted on a master, and how to see that it is down: each a command
    with its read-only "already done?" probe, or a script that exits 0 when the state holds. The steps ask
    this and never name a manifest's place or what moving it does."""

    def stop(self, host: str) -> Command: ...
    def start(self, host: str) -> Command: ...
    def stop_again(self, host: str, to: str, purpose: str) -> Command: ...
    def restart(self, host: str, ports: Iterable[int], wait: int = 60) -> Raw: ...
    def restart_without(self, host: str, flag: str) -> tuple[Command, ...]: ...
    def down(self, host: str, ports: Iterable[int]) -> Raw: ...
    def runs_without(self, flag: str) -> Raw: ...
    def runs_with(self, flag: str, value: str) -> Raw: ...
    def enabled(self) -> Raw: ...
    def logs(self, lines: int = 20) -> Raw: ...
    def copies_script(self) -> str: ...


class FlagEdit(Protocol):
    """How the seed gets `--force-new-cluster` for one start (and the original back afterwards)."""

    @property
    def flag(self) -> str: ...

    def add(self, host: str, pristine: str) -> tuple[Command, ...]:
        """Commands that add the flag to the disabled manifest, keeping its original bytes at `pristine`; the
        last verifies the edit."""
        ...

    def drop(self, host: str, pristine: str, kept: str) -> tuple[Command, ...]:
        """Commands that put the original bytes back over the live manifest, the edited one kept at `kept`."""
        ...

    def absent(self) -> Raw:
        """Exit 0 when the live manifest does not carry the flag (the verify of `drop`)."""
        ...


class Severity(enum.Enum):
    ALWAYS = "always"
    """The manifest cannot be used at all (not YAML, not a pod): refused whatever the plan."""
    FLAG_EDIT = "flag-edit"
    """Only a plan that edits the manifest (`--force-new-cluster`) is refused."""


@dataclass(frozen=True)
class ManifestProblem:
    text: str
    severity: Severity
    flags: bool = False
    """The problem is only that the manifest's flags do not suit its etcd: `fix-flags` rewrites them, so that
    procedure is not refused for it."""


@dataclass(frozen=True)
class Platform:
    name: str
    paths: Paths
    settings: Settings
    pod: PodControl
    tools: EtcdTools
    force_flag: FlagEdit
    manifest_problem: Callable[[str], ManifestProblem | None]
    """Pre-flight rule over the etcd manifest's text: what makes it unusable for this platform."""
    control_plane: ControlPlane
    server_version: Callable[[str], str | None] = field(default=lambda _text: None)
    """The etcd version the manifest runs (its image tag), where the platform's manifests say it."""
    restarts: str = ""
    """Read-only: prints how often the kubelet restarted etcd's container (its restart count), "" when unknown."""
    renew_certs: tuple[str, ...] = ()
    flag_rewrite: Callable[[str], FlagRewrite | None] = field(default=lambda _text: None)
    """What the etcd manifest's flags need for the etcd its image runs (`release.rewrite_for`); None: nothing, or
    a platform whose flags never mismatch their etcd (okd3 ships both together)."""
    """How the platform's own tooling renews etcd's certificates: by hand, never run by this tool (`diagnose`
    prints it when a certificate expired)."""

    def settled(self, host: str) -> Command:
        """Read-only: etcd's manifest back in the pod directory, none left aside, and without the force flag."""
        return Command(host, Raw(f"{self.pod.enabled()} && {self.force_flag.absent()}"),
                       f"manifest enabled, none left in {self.paths.disabled_dir}, no {self.force_flag.flag}",
                       mutates=False)
