"""Property tests on whole plans: from any VALID inventory of either platform, with either kind of backup,
every script is valid bash and every inventory value reaches a script only where the shell cannot read its
characters as syntax; the snapshot restore reads the backup's db with the options its kind needs."""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcdrescue.command import Command
from etcdrescue.inventory import Inventory, parse_inventory
from etcdrescue.model import DEFAULT_BUMP, BackupKind, Context, Method, RevisionPath, Revisions
from etcdrescue.plan import Plan, build_plan
from etcdrescue.platform import PLATFORMS, PROFILES
from etcdrescue.platform.tools import EtcdTools

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters the shell treats as syntax when unquoted (word splitting, globbing, expansion, operators).
META = set("|&;()<> \t\n$`\\\"'*?[]#~!{}")

# -- valid inventories, drawn from the allowed alphabets, edge cases included ---------------------
alnum = st.sampled_from("aZ09")
name = st.one_of(
    alnum,  # one character
    st.builds(lambda a, mid, z: a + mid + z, alnum, st.text(alphabet="aZ09._-", max_size=10), alnum),
    st.just("a" * 253 + "z"),  # the longest NAME_RE allows (254)
)
hostname = st.builds(lambda a, mid, z: a + mid + z, alnum, st.text(alphabet="aZ09.-", max_size=10), alnum)
ipv4 = st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.integers(0, 255)] * 4)
ipv6 = st.one_of(st.just("::1"), st.just("fd00::a:1"),
                 st.builds(lambda s: f"fe80::1%{s}", st.text(alphabet="aZ09_.-", min_size=1, max_size=8)))
host = st.one_of(hostname, ipv4, ipv6)
cluster = st.builds(lambda a, rest: a + rest, alnum, st.text(alphabet="aZ09._-", max_size=12))
segment = st.text(alphabet="aZ09._+@=:-", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
abs_path = st.builds(lambda parts: "/" + "/".join(parts), st.lists(segment, min_size=1, max_size=3))


def url_host(h: str) -> str:
    return f"[{h}]" if ":" in h else h


@st.composite
def inventories(draw: st.DrawFn) -> Inventory:
    profile = draw(st.sampled_from(PROFILES))
    n = draw(st.integers(1, 5))
    names = draw(st.lists(name, min_size=n, max_size=n, unique=True))
    hosts = draw(st.lists(host, min_size=n, max_size=n, unique=True))
    scheme = draw(st.sampled_from(["https", "http"]))
    members = []
    for nm, h in zip(names, hosts, strict=True):
        members.append({"name": nm, "host": h, "peer_url": f"{scheme}://{url_host(h)}:2380",
                        "client_url": f"{scheme}://{url_host(h)}:2379"})
    keys = ["manifest", "disabled_dir", "etcd_conf", "data_dir", "ca", "cert", "key"]
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
    paths = {k: draw(abs_path) for k in chosen}
    if "disabled_dir" in paths or "manifest" in paths:  # must differ from the manifest's dir
        paths["disabled_dir"] = paths.get("disabled_dir", PLATFORMS[profile].default_paths.disabled_dir) + "/off"
    data: dict[str, Any] = {"cluster": draw(cluster), "profile": profile, "paths": paths, "members": members}
    inv = parse_inventory(data, "generated")  # raises (and fails the test) if the generator drifts
    assert inv.platform.name == profile
    return inv


@st.composite
def etcd_tools(draw: st.DrawFn) -> tuple[str, str]:
    """(etcdctl, etcdutl) as the hosts run them: the hosts' own on PATH, or copied in by --etcd-tools."""
    uploaded = draw(abs_path)
    etcdctl = draw(st.sampled_from(["etcdctl", f"{uploaded}/etcdctl"]))
    etcdutl = draw(st.sampled_from(["", "etcdutl", f"{uploaded}/etcdutl"]))
    return etcdctl, etcdutl


def with_tools(inv: Inventory, tools: tuple[str, str]) -> Inventory:
    """The inventory whose platform runs these tools (as a session does after --etcd-tools)."""
    etcd_tools = EtcdTools(inv.paths, *tools)
    return replace(inv, platform=replace(inv.platform, tools=etcd_tools))


STAMP = "20240101T000000Z"


def plans(inv: Inventory, backup: str) -> list[Plan]:
    """The quorum restore and every method with every backup kind."""
    out = [build_plan(Context(inv, None, Method.FORCE_NEW_CLUSTER, STAMP))]
    for method in Method:
        for kind in BackupKind:
            out.append(build_plan(Context(inv, backup, method, STAMP, backup_kind=kind)))
    return out


def all_commands(plan: Plan) -> list[Command]:
    return [c for s in plan.steps for c in (*s.commands, *s.undo)]


def scripts_of(plan: Plan) -> list[str]:
    out = []
    for c in all_commands(plan):
        out.append(c.script)
        if c.skip_if is not None:
            out.append(c.skip_if)
    return out


def quoted_mask(script: str) -> list[bool]:
    """For each character: True where bash reads it literally (inside '...', escaped, or inside "..."
    for characters other than $ ` \\ "). The quote characters themselves count as syntax (False)."""
    mask = [False] * len(script)
    i, n = 0, len(script)
    while i < n:
        ch = script[i]
        if ch == "\\" and i + 1 < n:
            mask[i + 1] = True
            i += 2
        elif ch == "'":
            j = script.index("'", i + 1)
            for k in range(i + 1, j):
                mask[k] = True
            i = j + 1
        elif ch == '"':
            i += 1
            while script[i] != '"':
                if script[i] == "\\" and script[i + 1] in '$`"\\\n':
                    mask[i + 1] = True
                    i += 2
                    continue
                mask[i] = script[i] not in "$`"
                i += 1
            i += 1
        else:
            i += 1
    return mask


def inventory_values(inv: Inventory, backup: str) -> set[str]:
    tools = inv.platform.tools
    values = {inv.cluster, backup, tools.etcdctl, tools.etcdutl, *(v for v in inv.paths.__dict__.values())}
    for m in inv.members:
        values |= {m.name, m.host, m.peer_url, m.client_url}
    return values


def check_values_quoted(script: str, values: set[str]) -> None:
    mask = quoted_mask(script)
    for v in values:
        risky = [k for k, ch in enumerate(v) if ch in META]
        if not risky:
            continue
        start = script.find(v)
        while start != -1:
            for k in risky:
                assert mask[start + k], f"{v!r}: {v[k]!r} unquoted at {start + k} in {script!r}"
            start = script.find(v, start + 1)


def bash_n(scripts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for i, s in enumerate(scripts):
            Path(tmp, f"{i:04d}.sh").write_text(s + "\n")
        res = subprocess.run(["bash", "-c", 'for f in "$1"/*.sh; do bash -n "$f" 2>&1 || echo "BAD $f"; done',
                              "x", tmp], capture_output=True, text=True, timeout=120)
    bad = [line for line in res.stdout.splitlines() if line.startswith("BAD ")]
    assert not bad, (res.stdout, [scripts[int(Path(b[4:]).stem)] for b in bad])


@SETTINGS
@given(inventories(), abs_path, etcd_tools())
def test_every_plan_script_is_valid_bash_with_values_quoted(inv: Inventory, backup: str,
                                                            tools: tuple[str, str]) -> None:
    inv = with_tools(inv, tools)
    scripts: list[str] = []
    values = inventory_values(inv, backup)
    for plan in plans(inv, backup):
        assert plan.steps[0].key == "stop-etcd"
        for script in scripts_of(plan):
            check_values_quoted(script, values)
            scripts.append(script)
    bash_n(sorted(set(scripts)))


def words(script: str) -> list[str]:
    """The script as bash splits it into words and operators (`&&`, `;`, `(` stand alone)."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def restore_call(plan: Plan) -> tuple[Command, list[str], list[str]]:
    """The one command of the plan that runs `snapshot restore`: the command, the words naming the
    tool (what precedes `snapshot restore`) and the restore's arguments (up to the next `&&`)."""
    found = []
    for c in all_commands(plan):
        w = words(c.script)
        found += [(c, w[:i], w[i + 2:]) for i in range(len(w) - 1) if w[i:i + 2] == ["snapshot", "restore"]]
    assert len(found) == 1, [c.script for c, _, _ in found]
    command, before, after = found[0]
    args = after[: after.index("&&")] if "&&" in after else after
    tool = before[max((i for i, w in enumerate(before) if w == "&&"), default=-1) + 1:]
    return command, tool, args


def options(args: list[str]) -> tuple[str, dict[str, str], set[str]]:
    """The db path, the options with a value and the bare flags of a `snapshot restore` call."""
    bare = {"--skip-hash-check", "--mark-compacted"}
    db, rest = args[0], args[1:]
    values: dict[str, str] = {}
    flags: set[str] = set()
    i = 0
    while i < len(rest):
        assert rest[i].startswith("--"), rest
        if rest[i] in bare:
            flags.add(rest[i])
            i += 1
        else:
            values[rest[i]] = rest[i + 1]
            i += 2
    return db, values, flags


@SETTINGS
@given(inventories(), abs_path, st.sampled_from(BackupKind), etcd_tools(), st.sampled_from([0, DEFAULT_BUMP]))
def test_snapshot_restore_reads_the_backups_db_and_checks_a_files_hash(
        inv: Inventory, backup: str, kind: BackupKind, tools: tuple[str, str], bump: int) -> None:
    """A snapshot file (`etcdctl snapshot save`) is restored as it is, its integrity hash checked; a
    data-dir backup's `member/snap/db` has no hash to check (`--skip-hash-check`). Either way the seed
    alone restores it, with its own name and peer URL, into a new directory under its data dir."""
    inv = with_tools(inv, tools)
    revisions = Revisions(RevisionPath.BUMPED, bump=bump) if bump else Revisions()
    plan = build_plan(Context(inv, backup, Method.SNAPSHOT_RESTORE, STAMP, backup_kind=kind, revisions=revisions))
    command, tool, args = restore_call(plan)
    db, values, flags = options(args)
    seed = inv.members[0]

    etcdctl, etcdutl = tools
    assert tool == ([etcdutl] if etcdutl else ["ETCDCTL_API=3", etcdctl])
    assert command.host == seed.name and command.while_gate
    assert db == (backup if kind is BackupKind.FILE else backup.rstrip("/") + "/member/snap/db")
    assert ("--skip-hash-check" in flags) == (kind is BackupKind.DIR)
    assert values == {
        "--name": seed.name, "--initial-cluster": f"{seed.name}={seed.peer_url}",
        "--initial-cluster-token": f"{inv.cluster}-{STAMP}", "--initial-advertise-peer-urls": seed.peer_url,
        "--data-dir": f"{inv.paths.data_dir.rstrip('/')}/etcdrescue-restore-{STAMP}",
        **({"--bump-revision": str(bump)} if bump else {}),
    }
    assert ("--mark-compacted" in flags) == bool(bump)


def test_quoted_mask_catches_an_unquoted_bracket() -> None:
    """The checker itself must be able to fail: an unquoted IPv6 URL is a glob pattern."""
    check_values_quoted("mv 'https://[::1]:2380' x", {"https://[::1]:2380"})
    try:
        check_values_quoted("echo https://[::1]:2380", {"https://[::1]:2380"})
    except AssertionError:
        pass
    else:
        raise AssertionError("unquoted '[' not detected")
    try:
        check_values_quoted('echo "a$b"', {"a$b"})
    except AssertionError:
        return
    raise AssertionError("'$' inside double quotes not detected")


def test_bash_n_catches_a_syntax_error() -> None:
    try:
        bash_n(["true", "if true; then"])
    except AssertionError:
        return
    raise AssertionError("bash -n did not report an unterminated if")
