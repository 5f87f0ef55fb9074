"""etcd's backend space: the quota, what a defragmentation gives back, and the gate checks that measure them.

Why one module: the pre-flight (in Python), the "already done?" probes (in shell, on a host) and the gates judge
the same numbers by the same rules, so the constants and both spellings of each rule sit side by side here.

etcd raises the NOSPACE alarm when its db file (`dbSize`) would grow past `--quota-backend-bytes`; from then on
it refuses every write until the alarm is disarmed. `dbSizeInUse` is what the keys and their old revisions use:
a compaction frees the old revisions' pages, a defragmentation gives the free pages back to the file system.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .checks import Block, Prober, Round, fence
from .command import Raw, q
from .inventory.model import Inventory
from .platform.tools import EtcdTools
from .probes import ALARM_ERROR, Fact, ParseError, alarm_list, endpoint_health, endpoint_status

DEFAULT_QUOTA = 2 * 1024**3
"""etcd's quota when `--quota-backend-bytes` is unset or 0."""
MAX_RECOMMENDED_QUOTA = 8 * 1024**3
"""etcd warns above this at start ("exceeds maximum recommended quota")."""
FREE_SHARE = 5
"""A db whose free pages are under 1/FREE_SHARE of its size is as defragmented as it gets on a live cluster."""
FREE_FLOOR = 64 * 1024
"""...and so is one with less free than this: too little to be worth a defragmentation."""
NEAR_SHARE = 0.8
"""Space in use past this share of the quota leaves no room: defragmenting cannot help, a larger quota can."""
WRITE_PROBE_KEY = "/etcdrescue/write-probe"


def effective_quota(raw: str | None) -> int:
    """The quota etcd runs with for a `--quota-backend-bytes` setting: the default when unset or 0; negative
    disables the quota (returned as it is)."""
    try:
        value = int(raw or 0)
    except ValueError:
        return DEFAULT_QUOTA
    return DEFAULT_QUOTA if value == 0 else value


def reclaimable(db_size: int, in_use: int) -> int:
    """Bytes a defragmentation would give back, or 0 when too few to be worth one (`defragmented_script`'s rule)."""
    free = max(0, db_size - in_use)
    return free if free >= max(db_size // FREE_SHARE, FREE_FLOOR) else 0


def near_quota(size: int, quota: int) -> bool:
    return quota > 0 and size >= NEAR_SHARE * quota


def human(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _status_numbers(tools: EtcdTools, url: str) -> str:
    """Shell setting $size and $inuse to the member's `dbSize` and `dbSizeInUse` (its own `endpoint status`)."""
    status = tools.ctl([url], "endpoint", "status", "-w", "json", "--command-timeout=5s")
    return (f"st=$({status}) && size=$(printf '%s' \"$st\" | sed -n 's/.*\"dbSize\":\\([0-9]*\\).*/\\1/p') && "
            "inuse=$(printf '%s' \"$st\" | sed -n 's/.*\"dbSizeInUse\":\\([0-9]*\\).*/\\1/p') && "
            'test -n "$size" && test -n "$inuse"')


def defragmented_script(tools: EtcdTools, url: str) -> Raw:
    """Read-only: exit 0 when the member at `url` has nothing worth defragmenting (`reclaimable` is 0)."""
    return Raw(f"{_status_numbers(tools, url)} && free=$((size - inuse)) && "
               f"{{ test $free -lt $((size / {FREE_SHARE})) || test $free -lt {FREE_FLOOR}; }}")


def revision_script(tools: EtcdTools, url: str) -> str:
    """Shell setting $rev to the cluster's current revision, as the member at `url` reports it."""
    status = tools.ctl([url], "endpoint", "status", "-w", "json", "--command-timeout=5s")
    return f"rev=$({status} | sed -n 's/.*\"revision\":\\([0-9]*\\).*/\\1/p') && test -n \"$rev\""


def compacted_script(tools: EtcdTools, url: str) -> Raw:
    """Read-only: exit 0 when the history is compacted up to the current revision (a read just before it is
    refused as compacted). `--keys-only --limit=1`: etcdctl 3.4 has no `--count-only`."""
    before = tools.ctl([url], "get", WRITE_PROBE_KEY, Raw('--rev=$((rev - 1))'), "--keys-only", "--limit=1")
    return Raw(f"{revision_script(tools, url)} && test \"$rev\" -gt 1 && "
               f"! {before} >/dev/null 2>&1 && {before} 2>&1 | grep -q 'required revision has been compacted'")


def no_alarm_script(tools: EtcdTools, url: str) -> Raw:
    """Read-only: exit 0 when `alarm list` answers and lists nothing."""
    return Raw(f"alarms=$({tools.ctl([url], 'alarm', 'list')}) && test -z \"$alarms\"")


def write_probe(tools: EtcdTools, url: str) -> Raw:
    """A transaction that would write, guarded by a comparison that never holds: etcd accepts it (and writes
    nothing: `FAILURE` is the comparison's answer) only where writes are allowed; under the NOSPACE alarm it is
    refused with `database space exceeded`, like any write."""
    txn = f'version("{WRITE_PROBE_KEY}") = "-1"\n\nput {WRITE_PROBE_KEY} x\n\n\n'
    return Raw(f"printf '%s' {q(txn)} | {tools.ctl([url], 'txn')}")


def _url(inv: Inventory, name: str) -> str:
    return inv.member(name).client_url


@dataclass(frozen=True)
class ServesDespiteAlarm:
    """`endpoint health` of every member says healthy, or healthy but for a NOSPACE alarm: while the alarm
    stands (until the disarm), etcd 3.5+ calls every member unhealthy, yet each serves reads and defragments."""

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        inv = hosts.inv
        health = {h.endpoint: h for h in hosts.fact(inv.seed.name, endpoint_health(
            inv.platform.tools, [_url(inv, n) for n in members]))}
        problems = []
        for name in members:
            h = health.get(_url(inv, name))
            ok = bool(h and (h.healthy or only_nospace(h.error)))
            state.update(name, healthy=ok, detail=h.error if h else "no answer")
            if not ok:
                problems.append(f"{name} not healthy ({(h.error if h else 'no answer') or 'unhealthy'})")
        return problems

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        urls = [_url(inv, n) for n in members]
        return [Block(inv.seed.name, (*fence(endpoint_health(inv.platform.tools, urls).script), "",
                                      f"Expected: every endpoint ({', '.join(urls)}) with `\"health\":true`, or "
                                      f"with `\"error\":\"{ALARM_ERROR} NOSPACE \"` and nothing else."))]


def only_nospace(error: str) -> bool:
    words = error.removeprefix(ALARM_ERROR).split()
    return error.startswith(ALARM_ERROR) and bool(words) and all(w == "NOSPACE" for w in words)


@dataclass(frozen=True)
class Defragmented:
    """The member's db has nothing left worth defragmenting (`reclaimable`), as its own status reports it."""

    member: str

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        inv = hosts.inv
        try:
            status = hosts.fact(inv.seed.name, endpoint_status(inv.platform.tools, [_url(inv, self.member)]))
        except ParseError:
            status = []
        if not status:
            return [f"{self.member} does not report its status"]
        s = status[0]
        free = reclaimable(s.db_size, s.db_size_in_use)
        return [f"{self.member}: {human(free)} of its {human(s.db_size)} db still free, not given back"] if free else []

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        script = defragmented_script(inv.platform.tools, _url(inv, self.member))
        return [Block(inv.seed.name, (*fence(script), "",
                                      f"Expected: exit 0: `dbSize` less `dbSizeInUse` is under a {FREE_SHARE}th of "
                                      f"`dbSize` (or under {human(FREE_FLOOR)})."))]


@dataclass(frozen=True)
class NoAlarm:
    """`alarm list` answers and is empty."""

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        inv = hosts.inv
        try:
            alarms = hosts.fact(inv.seed.name, alarm_list(inv.platform.tools, [inv.seed.client_url]))
        except ParseError as exc:
            return [f"alarm list unavailable ({str(exc)[:120]})"]
        return [f"{a.kind.value} alarm still raised (member {a.hex_id})" for a in alarms]

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        script = inv.platform.tools.ctl([inv.seed.client_url], "alarm", "list")
        return [Block(inv.seed.name, (*fence(script), "", "Expected: no output (no alarm)."))]


@dataclass(frozen=True)
class WritesWork:
    """A write is accepted again (`write_probe`: a transaction that writes nothing)."""

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        inv = hosts.inv
        out = hosts.fact(inv.seed.name, Fact("write probe", write_probe(inv.platform.tools, inv.seed.client_url)
                                             + " 2>&1; true", str))
        if "FAILURE" in out.split():
            return []
        last = (out.strip().splitlines() or ["no answer"])[-1]
        return [f"a write is still refused ({last[:160]})"]

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        script = write_probe(inv.platform.tools, inv.seed.client_url)
        return [Block(inv.seed.name, (*fence(script), "",
                                      "Expected: `FAILURE` (the transaction's comparison never holds, so nothing is "
                                      "written; refused writes say `database space exceeded`)."))]


def room_problem(member: str, status_json: str, quota: int) -> str | None:
    """Why the member's db leaves no room under `quota` after compaction and defragmentation (None: it does)."""
    try:
        data = json.loads(status_json)
        size = int(data[0]["Status"].get("dbSize", 0))
    except (ValueError, LookupError, TypeError):
        return f"{member}: no status to measure its db ({status_json.strip()[:120]!r})"
    if quota > 0 and near_quota(size, quota):
        return (f"defragmenting could not help: the db is {human(size)} of a {human(quota)} quota "
                "after compaction and defragmentation, so the data itself fills it: raise the quota "
                "(--quota BYTES, then --resume)")
    return None


@dataclass(frozen=True)
class RunsWith:
    """The member's running etcd carries `--flag=value` (on its command line or in its environment).

    Why health is not enough: a healthy answer could come from the old process, started with the old value."""

    flag: str
    value: str
    member: str

    def judge(self, members: tuple[str, ...], hosts: Prober, state: Round) -> list[str]:
        script = hosts.inv.platform.pod.runs_with(self.flag, self.value)
        if hosts.run(self.member, script, timeout=15).ok:
            return []
        return [f"{self.member}: etcd not yet running with --{self.flag}={self.value}"]

    def instructions(self, members: tuple[str, ...], inv: Inventory) -> list[Block]:
        script = inv.platform.pod.runs_with(self.flag, self.value)
        return [Block(self.member, (*fence(script), "",
                                    f"Expected: exit 0: etcd runs with `--{self.flag}={self.value}` (or "
                                    "its `ETCD_*` variable)."))]
