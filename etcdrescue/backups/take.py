"""`etcdrescue backup`: a snapshot of a healthy member, brought to the bastion, checked, described, rotated.

Order: this machine's lock; every host surveyed (an unreachable one refuses); the etcd tools chosen exactly as a
recovery chooses them (the hosts' own or `--etcd-tools`, uploaded by the session's `prepare`); a quorum of
healthy members or refuse; no member lock held (a recovery or another change is under way: refuse); then the
snapshot on a follower (the leader only when there is none), its sha256 there, the copy here and its sha256
here, the file read offline (revision, members, storage version), the sidecar, rotation.

Why the member locks are read, not taken: a backup changes nothing etcd owns, and taking them would leave one
`lock.released-<stamp>` per run on every master (hourly backups: thousands). Reading them still refuses a
backup while a recovery holds them, which is the point: a backup then would be of a half-built cluster. A
recovery that starts after the check finds a healthy quorum and refuses itself, or stops etcd under the
snapshot, which then fails.

On the host the snapshot is written under the tool's own state dir, never etcd's data dir: etcdctl writes
`BACKUPS/.taking.db` (itself through a `.part` file), which is renamed to `BACKUPS/<cluster>.db` once whole.
That file is the newest backup and the only one kept there: the next backup's rename replaces it (nothing is
removed otherwise); the bastion holds the history.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..command import Raw, chain, sh
from ..errors import InputError, RescueError, StepFailed, TransportError
from ..inventory.model import Member
from ..journal import Journal
from ..locks import HostLocks
from ..platform.tools import STATE_ROOT, EtcdTools
from ..preflight.survey import survey_host, tool_choice
from ..preflight.verdict import HostFacts
from ..probes import Fact, MemberInfo, ParseError, _json, member_list
from ..session import RecoverySession
from ..steps.seed import partial_aside
from .files import CorruptSnapshot, NotASnapshot, foreign_problem, inspect, sha256_file, sha256_line, writable_dir
from .rotation import rotate
from .sidecar import Sidecar, SidecarMember, backup_name, save, sums_path

BACKUPS = f"{STATE_ROOT}/backups"
TAKING = f"{BACKUPS}/.taking.db"

Say = Callable[[str], None]


@dataclass(frozen=True)
class MemberStatus:
    endpoint: str
    member_id: int
    leader: int
    cluster_id: int
    version: str
    storage_version: str


def parse_cluster_status(text: str) -> list[MemberStatus]:
    """`endpoint status -w json`, with what `probes.parse_endpoint_status` leaves out: the cluster ID and the
    storage version (etcd 3.6+ reports it)."""
    out = []
    for entry in _json(text, "endpoint status"):
        st = entry["Status"]
        header = st.get("header", {})
        out.append(MemberStatus(entry["Endpoint"], int(header.get("member_id", 0)), int(st.get("leader") or 0),
                                int(header.get("cluster_id", 0)), str(st.get("version", "")),
                                str(st.get("storageVersion") or "")))
    return out


def cluster_status(tools: EtcdTools, endpoints: list[str]) -> Fact[list[MemberStatus]]:
    return Fact("endpoint status", tools.ctl(endpoints, "endpoint", "status", "-w", "json", "--command-timeout=5s"),
                parse_cluster_status)


@dataclass(frozen=True)
class BackupResult:
    db: Path
    sidecar: Sidecar
    removed: tuple[Path, ...]
    journal: Path


def host_copy(cluster: str) -> str:
    return f"{BACKUPS}/{cluster}.db"


def snapshot_script(tools: EtcdTools, member: Member, cluster: str) -> Raw:
    """Snapshot `member` into the tool's state dir, rename it whole into place, print its sha256."""
    final = host_copy(cluster)
    return chain(sh("install", "-d", "-m", "0700", STATE_ROOT, BACKUPS), partial_aside(TAKING),
                 Raw(tools.ctl([member.client_url], "snapshot", "save", TAKING) + " >/dev/null"),
                 sh("mv", TAKING, final), sh("sha256sum", final))


def survey(session: RecoverySession) -> tuple[HostFacts, ...]:
    hosts, inv = session.hosts, session.inv
    uploaded = session.uploaded is not None
    with cf.ThreadPoolExecutor(min(8, len(inv.members))) as pool:
        return tuple(pool.map(lambda m: survey_host(hosts, m, uploaded=uploaded), inv.members))


def choose_member(inv_members: tuple[Member, ...], facts: tuple[HostFacts, ...],
                  status: list[MemberStatus]) -> tuple[Member, MemberStatus]:
    """A serving follower in inventory order (healthy, or healthy but for an alarm); the leader only when no
    follower serves."""
    by_url = {s.endpoint.rstrip("/"): s for s in status}
    healthy = {f.name for f in facts if f.serves}
    candidates = [(m, by_url[m.client_url.rstrip("/")]) for m in inv_members
                  if m.name in healthy and m.client_url.rstrip("/") in by_url]
    if not candidates:
        raise InputError("no healthy member answered its status: nothing to take a snapshot from; nothing changed")
    followers = [c for c in candidates if c[1].member_id != c[1].leader]
    return (followers or candidates)[0]


@dataclass(frozen=True)
class Source:
    """The member the snapshot comes from, as the cluster saw it when it was chosen."""

    member: Member
    status: MemberStatus
    members: list[MemberInfo]
    """The cluster's member list (for the sidecar)."""

    @property
    def leader(self) -> bool:
        return self.status.member_id == self.status.leader


def choose_source(session: RecoverySession) -> Source:
    """Every refusal before the snapshot (`InputError`, nothing changed), then the member to take it from."""
    inv = session.inv
    session.lock_here()
    try:
        session.prepare()
    except RescueError as exc:
        raise InputError(f"cannot put the etcd tools on the hosts: {exc}") from None
    facts = survey(session)
    for f in facts:
        if not f.reachable:
            raise InputError(f"{f.name} is unreachable ({f.error}); nothing changed")
    choice = tool_choice(session.hosts, facts, uploaded=session.uploaded, restores=False)
    if choice.tools is None:
        raise InputError(f"{choice.problems[0] if choice.problems else 'no etcd tools'}; nothing changed")
    session.use_tools(choice.tools)
    tools = session.inv.platform.tools
    serving = [f.name for f in facts if f.serves]  # an alarm (NOSPACE) still serves reads: a snapshot works
    if len(serving) < inv.quorum:
        why = "; ".join(f"{f.name}: {f.health_error or 'unhealthy'}" for f in facts if not f.serves)
        raise InputError(f"{inv.cluster} has no quorum ({len(serving)}/{len(facts)} healthy, {inv.quorum} needed: "
                         f"{why}): a snapshot now would not be of the cluster; nothing changed")
    held = HostLocks(session.hosts, session.stamp).read()
    if held:
        name, holder = next(iter(held.items()))
        raise InputError(f"{name}: {holder.describe()} holds the lock of this cluster (a recovery or another "
                         "change is under way): a backup now would be of a half-built cluster; nothing changed")
    asker = serving[0]
    try:
        status = session.hosts.fact(asker, cluster_status(tools, [m.client_url for m in inv.members
                                                                   if m.name in serving]))
        listed = session.hosts.fact(asker, member_list(tools, [inv.member(asker).client_url]))
    except (ParseError, TransportError) as exc:
        raise InputError(f"cannot read the cluster's status from {asker}: {exc}; nothing changed") from None
    member, st = choose_member(inv.members, facts, status)
    return Source(member, st, listed)


def take_backup(session: RecoverySession, out_dir: Path, keep: int, say: Say) -> BackupResult:
    """The whole backup; `InputError` (nothing changed) for every refusal before the snapshot."""
    problem = writable_dir(out_dir)
    if problem:
        raise InputError(f"-o: {problem}; nothing changed")
    source = choose_source(session)
    inv = session.inv  # with the tools it chose
    final = out_dir / backup_name(inv.cluster, session.stamp)
    if final.exists():
        raise InputError(f"{final} exists already; nothing changed")
    role = "the leader (no serving follower)" if source.leader else "a follower"
    journal = Journal.create(session.journal_dir, f"{inv.cluster}-backup", session.stamp, session.secrets.values)
    try:
        journal.write("backup_start", cluster=inv.cluster, member=source.member.name, role=role, out=str(out_dir),
                      keep=keep, tools=inv.platform.tools.etcdctl)
        say(f"snapshot of {source.member.name}, {role}, into {host_copy(inv.cluster)} there ...")
        result = _take(session, source, final, journal)
        removed = tuple(rotate(out_dir, inv.cluster, result.cluster_id, keep))
        journal.write("backup_end", ok=True, db=str(final), sha256=result.sha256, revision=result.revision,
                      seconds=result.seconds, removed=[str(p) for p in removed])
    except RescueError as exc:
        journal.write("backup_end", ok=False, error=str(exc))
        raise
    finally:
        journal.close()
    return BackupResult(final, result, removed, journal.path)


def _take(session: RecoverySession, source: Source, final: Path, journal: Journal) -> Sidecar:
    inv, hosts = session.inv, session.hosts
    member, st = source.member, source.status
    tools = inv.platform.tools
    started = time.time()
    script = snapshot_script(tools, member, inv.cluster)
    res = hosts.run(member.name, script, timeout=1800)
    journal.write("command", host=member.name, script=script, exit=res.exited, stdout=res.stdout[-2000:],
                  stderr=res.stderr[-2000:])
    if not res.ok:
        last = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise StepFailed(f"{member.name}: snapshot save failed (exit {res.exited}): {last[0][:300]}")
    remote_sha = res.stdout.split()[0] if res.stdout.split() else ""
    part = final.with_name(f".{final.name}.part")
    try:
        part.touch(mode=0o600)
        fetch(session, member.name, host_copy(inv.cluster), part)
        local_sha = sha256_file(part)
        if local_sha != remote_sha:
            raise StepFailed(f"the copy of {host_copy(inv.cluster)} from {member.name} arrived damaged (sha256 "
                             f"{local_sha[:16]}…, {member.name} has {remote_sha[:16]}…): no backup kept; run again")
        try:
            facts = inspect(part)
        except (NotASnapshot, CorruptSnapshot) as exc:
            raise StepFailed(f"the snapshot from {member.name} does not read back: {exc}") from None
        foreign = foreign_problem(facts, [m.peer_url for m in inv.members])
        if foreign:
            raise StepFailed(f"the snapshot from {member.name}: {foreign}")
        part.rename(final)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    sums_path(final).write_text(sha256_line(local_sha, final), encoding="utf-8")
    now = time.time()
    sidecar = Sidecar(
        cluster=inv.cluster, cluster_id=f"{st.cluster_id:x}", profile=inv.platform.name,
        members=tuple(SidecarMember(m.hex_id, m.name, tuple(m.peer_urls)) for m in source.members),
        revision=facts.revision, etcd_version=st.version,
        storage_version=facts.storage_version or st.storage_version,
        taken_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), taken_epoch=round(started, 3),
        seconds=round(now - started, 3), taken_from=member.name, taken_from_leader=source.leader,
        size=final.stat().st_size, sha256=local_sha, host_copy=host_copy(inv.cluster))
    save(final, sidecar)
    journal.write("backup_file", sidecar=json.loads(sidecar.to_json()))
    return sidecar


def fetch(session: RecoverySession, name: str, remote: str, local: Path) -> None:
    """SFTP on the host's connection; through sudo (SFTP runs as the login user, who cannot read the tool's
    root-only state dir) the bytes come through the root shell instead, held in memory."""
    host = session.hosts[name]
    if session.inv.ssh.sudo:
        local.write_bytes(host.read_file(remote))
        return
    host.get_file(remote, local)
