"""Property tests on whole plans: from any VALID inventory, every script is valid bash and every
inventory value reaches a script only where the shell cannot read its characters as syntax."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcdrescue.command import Command
from etcdrescue.inventory import Inventory, parse_inventory
from etcdrescue.model import BackupKind, Context, Method
from etcdrescue.plan import Plan, build_plan

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
        paths["disabled_dir"] = paths.get("disabled_dir", "/etc/origin/node/pod/disabled") + "/off"
    data: dict[str, Any] = {"cluster": draw(cluster), "paths": paths, "members": members}
    return parse_inventory(data, "generated")  # raises (and fails the test) if the generator drifts


def plans(inv: Inventory, backup: str) -> list[Plan]:
    out = [build_plan(Context(inv, None, Method.FORCE_NEW_CLUSTER, "20240101T000000Z"))]
    for method, kind in ((Method.SNAPSHOT_RESTORE, BackupKind.DIR), (Method.SNAPSHOT_RESTORE, BackupKind.FILE),
                         (Method.FORCE_NEW_CLUSTER, BackupKind.DIR)):
        out.append(build_plan(Context(inv, backup, method, "20240101T000000Z", backup_kind=kind)))
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
    values = {inv.cluster, backup, *(v for v in inv.paths.__dict__.values())}
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
@given(inventories(), abs_path)
def test_every_plan_script_is_valid_bash_with_values_quoted(inv: Inventory, backup: str) -> None:
    scripts: list[str] = []
    values = inventory_values(inv, backup)
    for plan in plans(inv, backup):
        assert plan.steps[0].key == "stop-etcd"
        for script in scripts_of(plan):
            check_values_quoted(script, values)
            scripts.append(script)
    bash_n(sorted(set(scripts)))


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
