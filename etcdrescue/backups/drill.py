"""What a drill judges, apart from the lab that runs it: which lab a backup needs, whether every member hashes
the same, how many keys each Kubernetes resource has, and the drill the sidecar records.

Exit codes (`etcdrescue drill`): 0 the backup restored and every member serves the same data; 2 bad input
(no such file, not an etcd snapshot at all, a plain copy of a member's db rather than a `snapshot save` file,
an unreadable sidecar, a lab that cannot be built here); 3 the backup does not restore: its sha256 differs from
the recorded one, it is corrupt or truncated, its database is another cluster's than its sidecar says, the
recovery failed, or the members disagree.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, StepFailed
from .files import UNHASHED, CorruptSnapshot, NotASnapshot, SnapshotFacts, inspect, recorded_sha256, sha256_file
from .sidecar import Sidecar, load

GROUPED = ("registry", "kubernetes.io", "openshift.io")
"""Top-level prefixes under which Kubernetes (and OKD 3's) API servers keep resources."""


class DrillFailed(StepFailed):
    """The backup does not restore (exit 3)."""


def resource_of(key: str) -> str:
    """The resource a key belongs to, as Kubernetes lays its keys out in etcd.

    `/registry/<resource>/<namespace>/<name>` for the core group and the groups stored without their name
    (`/registry/pods`, `/registry/deployments`), `/registry/<group>/<resource>/...` for groups stored under
    their dotted name (`/registry/apiregistration.k8s.io/apiservices`), and services split in `specs` and
    `endpoints`. OKD 3 uses `/kubernetes.io/` and `/openshift.io/` the same way. Anything else counts under
    its first path segment.
    """
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "" or not parts[1]:
        return "(not a path)"
    top, seg = parts[1], parts[2]
    if top not in GROUPED:
        return f"/{top}"
    if "." in seg and len(parts) > 4:
        return f"/{top}/{seg}/{parts[3]}"
    if seg == "services" and len(parts) > 4 and parts[3] in ("specs", "endpoints"):
        return f"/{top}/services/{parts[3]}"
    return f"/{top}/{seg}"


def count_resources(keys: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(resource_of(k) for k in keys).items()))


def parse_keys(text: str) -> list[str]:
    """`etcdctl get "" --prefix --keys-only -w json`: the keys (base64 in JSON)."""
    data = json.loads(text) if text.strip() else {}
    return [base64.b64decode(kv["key"]).decode("utf-8", errors="replace") for kv in data.get("kvs", ())]


@dataclass(frozen=True)
class MemberHash:
    endpoint: str
    hash: int
    revision: int


def parse_hashkv(text: str) -> list[MemberHash]:
    """`etcdctl endpoint hashkv -w json` (3.4 has no `hash_revision`: the header's revision is the same)."""
    out = []
    for entry in json.loads(text):
        kv = entry["HashKV"]
        out.append(MemberHash(entry["Endpoint"], int(kv.get("hash", 0)),
                              int(kv.get("hash_revision") or kv.get("header", {}).get("revision", 0))))
    return out


def agreement_problem(hashes: list[MemberHash], members: int) -> str | None:
    """None when every member answered with the same hash at the same revision."""
    if len(hashes) != members:
        return f"{len(hashes)} of {members} members answered hashkv"
    if len({(h.hash, h.revision) for h in hashes}) != 1:
        return "members disagree: " + ", ".join(f"{h.endpoint} hash {h.hash} at {h.revision}" for h in hashes)
    return None


@dataclass(frozen=True)
class Checked:
    """A backup file checked here before any lab: its facts, its sidecar, and the lab it needs."""

    path: Path
    facts: SnapshotFacts
    sidecar: Sidecar | None
    profile: str
    etcd: str
    members: int
    sha256_checked: bool


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def check_file(path: Path, *, profile: str | None, etcd: str | None, releases: tuple[str, ...]) -> Checked:
    """`InputError` for bad input, `DrillFailed` for a backup that cannot restore, before any lab is built."""
    if not path.is_file():
        raise InputError(f"--backup: {path} is not a file")
    try:
        side = load(path)
    except ValueError as exc:
        raise InputError(f"--backup: {exc}") from None
    try:
        recorded = recorded_sha256(path) or (side.sha256 if side else None)
    except CorruptSnapshot as exc:
        raise InputError(f"--backup: {exc}") from None
    try:
        facts = inspect(path)
    except NotASnapshot as exc:
        raise InputError(str(exc)) from None
    except CorruptSnapshot as exc:
        raise DrillFailed(f"{path} is corrupt or truncated: {exc}") from None
    if not facts.hashed:
        raise InputError(f"{path} is {UNHASHED}")
    if side is not None:
        theirs = sorted({u for m in side.members for u in m.peer_urls})
        if not set(facts.peer_urls) & set(theirs):
            raise DrillFailed(f"{path} is another cluster's backup than its sidecar says: its members' peer URLs "
                              f"are {', '.join(facts.peer_urls)}; the sidecar's ({side.cluster}) are "
                              f"{', '.join(theirs)}")
        if side.revision != facts.revision:
            raise DrillFailed(f"{path} is at revision {facts.revision}, its sidecar says {side.revision}: not the "
                              "file the sidecar describes")
    if recorded is not None and sha256_file(path) != recorded:
        raise DrillFailed(f"{path} is corrupt: its sha256 differs from the recorded {recorded[:16]}…")
    chosen_profile = profile or (side.profile if side else "okd3")
    chosen = etcd or (minor(side.etcd_version) if side and side.etcd_version else "3.4")
    if chosen not in releases:
        raise InputError(f"no lab for etcd {chosen} (the lab has {', '.join(releases)}): give --etcd")
    count = len(facts.members)
    return Checked(path, facts, side, chosen_profile, chosen, 5 if count >= 5 else 3, recorded is not None)
