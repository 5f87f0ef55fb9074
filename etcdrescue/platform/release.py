"""What an etcd version can do: the one place that knows which tool serves which minor and which flags it has.

Read at etcd's source for 3.4 to 3.7 (the project's research notes on etcd versions): `etcdutl` exists from
3.5; from 3.6 snapshot restore and status live only there; 3.6 etcdctl lists members serializably
(`--consistency=s`), which a member without quorum needs; `--force-new-cluster` keeps members recorded in
the data on every 3.4, up to 3.5.24 and 3.6.0 to 3.6.5; 3.7 refuses the `--experimental-*` flags and 3.5 the
names 3.6 gave them. Whether a restore tool bumps revisions is asked of the binary itself (`snapshot restore
--help`), not read from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class EtcdRelease:
    version: str
    """As a binary or an image tag says it: `3.5.15`, `v3.6.17`, `3.5.15-0`."""

    @property
    def minor(self) -> tuple[int, int] | None:
        """`3.5.1` -> (3, 5); None when it is not a version."""
        parts = self.version.lstrip("v").split(".")
        try:
            return int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            return None

    @property
    def patch(self) -> tuple[int, int, int] | None:
        """`3.5.15-0` -> (3, 5, 15); None when it is not a whole version."""
        parts = self.version.lstrip("v").split("-", 1)[0].split(".")
        try:
            major, minor, patch = (int(p) for p in parts)
        except ValueError:
            return None
        return major, minor, patch

    def at_least(self, minor: tuple[int, int]) -> bool:
        return (self.minor or (0, 0)) >= minor

    @property
    def has_etcdutl(self) -> bool:
        return self.at_least((3, 5))

    @property
    def etcdctl_restores(self) -> bool:
        """etcdctl still has `snapshot restore` and `snapshot status` (removed in 3.6); unknown counts as old."""
        return not self.at_least((3, 6))

    @property
    def lists_members_serializably(self) -> bool:
        """etcdctl has `member list --consistency=s`: a member's own view, answered without a quorum."""
        return self.at_least((3, 6))

    @property
    def force_flag_keeps_members(self) -> bool:
        """`--force-new-cluster` can keep members recorded in the data (etcd PRs 20896, 20339)."""
        p = self.patch
        return p is not None and (p < (3, 5, 25) or (3, 6, 0) <= p < (3, 6, 6))

    @property
    def adds_only_when_all_connected(self) -> bool:
        """`member add` is refused ("unhealthy cluster") until the member asked has been connected to every voter
        for 5 s: all 3.4, 3.5 up to 3.5.29, 3.6 up to 3.6.10; from 3.5.30/3.6.11 (and in 3.7) a quorum is enough
        (etcd PRs 21641, 21667, 21669). Unknown counts as old: its wait is the longer one."""
        p = self.patch
        return p is None or p < (3, 5, 30) or (3, 6, 0) <= p < (3, 6, 11)

    def starts_on(self, storage: EtcdRelease) -> bool:
        """This etcd starts on data of `storage`'s version: not on a newer minor's (unknown: assumed yes)."""
        mine, theirs = self.minor, storage.minor
        return mine is None or theirs is None or theirs <= mine

    def same_minor(self, other: EtcdRelease) -> bool:
        return self.minor == other.minor

    @property
    def refuses_experimental_flags(self) -> bool:
        return self.at_least((3, 7))

    @property
    def lacks_36_flag_names(self) -> bool:
        """3.5 and older know only the `--experimental-*` forms of the flags 3.6 renamed."""
        return self.minor is not None and not self.at_least((3, 6))


FEATURE_GATES_36 = {
    "experimental-initial-corrupt-check": "InitialCorruptCheck",
    "experimental-compact-hash-check-enabled": "CompactHashCheck",
    "experimental-enable-lease-checkpoint": "LeaseCheckpoint",
    "experimental-enable-lease-checkpoint-persist": "LeaseCheckpointPersist",
    "experimental-stop-grpc-service-on-defrag": "StopGRPCServiceOnDefrag",
    "experimental-txn-mode-write-with-shared-buffer": "TxnModeWriteWithSharedBuffer",
}
"""The 3.5 flags that became feature gates in 3.6 (etcd's `ExperimentalFlagToFeatureMap` @v3.6.14); every other
`--experimental-X` became `--X`. 3.7 knows only the new forms."""


def flags_for_36(flags: dict[str, str]) -> list[str]:
    """The 3.6+ command items for the `--experimental-*` ones among `flags` (name -> value): renamed, and the
    feature gates merged into one `--feature-gates` (setting a flag and its gate both is an error in 3.6)."""
    new = {FEATURE_GATES_36[n]: v for n, v in flags.items() if n in FEATURE_GATES_36}
    items = [f"--{n.removeprefix('experimental-')}={v}" for n, v in flags.items()
             if n.startswith("experimental-") and n not in FEATURE_GATES_36]
    if not new:
        return items
    gates = dict(g.split("=", 1) for g in flags.get("feature-gates", "").split(",") if "=" in g)
    return [*items, "--feature-gates=" + ",".join(f"{k}={v}" for k, v in {**gates, **new}.items())]


NEW_IN_36 = ("feature-gates", "watch-progress-notify-interval", "max-learners", "compact-hash-check-time",
             "corrupt-check-time", "compaction-batch-limit", "snapshot-catchup-entries",
             "warning-unary-request-duration")
"""Flags etcd 3.6 added (most renamed from `--experimental-*`): etcd 3.5 exits 2 on them (each checked against
3.5.36). kubeadm 1.34+ writes the first two for an etcd 3.6+ image."""

GATES = "feature-gates"
NO_35_FORM = ("max-learners", "warning-unary-request-duration")
"""3.6 names without an `--experimental-*` form in 3.5 (etcd 3.5.36 exits 2 on both spellings)."""
NOT_IN_34 = ("experimental-compact-hash-check-time", "experimental-snapshot-catchup-entries",
             "experimental-compact-hash-check-enabled", "experimental-stop-grpc-service-on-defrag",
             "experimental-txn-mode-write-with-shared-buffer")
"""The `--experimental-*` forms the back-mapping writes that 3.5 added: etcd 3.4.23 exits 2 on each (every form it
could write was tried on that binary; `--help` hides some that both take)."""


@dataclass(frozen=True)
class FlagRewrite:
    """What a manifest's command list needs so that `release`'s etcd starts on it: items to set (name -> value) and
    flag names whose items go; or, where no item of that release says the same, why not (`problem`)."""

    release: str
    set: tuple[tuple[str, str], ...] = ()
    drop: tuple[str, ...] = ()
    problem: str = ""

    @property
    def words(self) -> str:
        """`--experimental-x=1 -> --x=1`-style summary for the plan's mode line and the pre-flight."""
        gone = " ".join(f"--{n}" for n in self.drop)
        new = " ".join(f"--{n}={v}" for n, v in self.set)
        return f"{gone} -> {new}" if new else f"without {gone}"

    def record(self) -> dict[str, object]:
        return {"release": self.release, "set": [list(kv) for kv in self.set], "drop": list(self.drop)}

    @classmethod
    def from_record(cls, raw: Mapping[str, object]) -> FlagRewrite:
        pairs = raw.get("set") or []
        drop = raw.get("drop") or []
        assert isinstance(pairs, list) and isinstance(drop, list)
        return cls(str(raw.get("release", "")), tuple((str(k), str(v)) for k, v in pairs),
                   tuple(str(n) for n in drop))


def _gates(raw: str) -> dict[str, str]:
    return dict(g.split("=", 1) for g in raw.split(",") if "=" in g)


def rewrite_for(release: EtcdRelease, flags: Mapping[str, str]) -> FlagRewrite | None:
    """The rewrite that makes `flags` (a command list's, name -> value) suit `release`; None when they already do.

    3.7+ knows only the 3.6 names: every `--experimental-*` item renamed as `flags_for_36` does (the feature gates
    merged into one `--feature-gates`, the existing gates kept). 3.5 and older know only the `--experimental-*`
    forms: the 3.6 names back, and each known gate of `--feature-gates` back to its flag; a gate without such a
    flag has no 3.5 spelling, so there is no rewrite (a `problem`). 3.6 takes both forms: nothing to do."""
    if release.refuses_experimental_flags:
        old = {n: v for n, v in flags.items() if n.startswith("experimental-")}
        if not old:
            return None
        items = [i[2:].split("=", 1) for i in flags_for_36(dict(flags))]
        return FlagRewrite(release.version, tuple((n, v) for n, v in items), tuple(old))
    if not release.lacks_36_flag_names:
        return None
    new = [n for n in flags if n in NEW_IN_36]
    if not new:
        return None
    back = {f"experimental-{n}": v for n, v in flags.items() if n in NEW_IN_36 and n not in (GATES, *NO_35_FORM)}
    flag_of = {g: f for f, g in FEATURE_GATES_36.items()}
    unknown = [f"--{n}" for n in new if n in NO_35_FORM]
    for gate, value in _gates(flags.get(GATES, "")).items():
        if gate in flag_of:
            back[flag_of[gate]] = value
        else:
            unknown.append(f"the feature gate {gate}")
    if unknown:
        return FlagRewrite(release.version, problem=f"etcd {release.version} has no flag for {', '.join(unknown)}: "
                           "take it out by hand or run an etcd 3.6+ image")
    if not release.has_etcdutl:
        unknown = [f"--{n}" for n in back if n in NOT_IN_34]
        if unknown:
            return FlagRewrite(release.version, problem=f"etcd {release.version} has no flag for "
                               f"{', '.join(unknown)} (3.5 added them): take them out by hand or run an etcd 3.5+ "
                               "image")
    return FlagRewrite(release.version, tuple(back.items()), tuple(new))
