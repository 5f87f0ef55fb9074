"""The member list (and `member add`) as the steps read them: etcdctl's JSON, never its table; the list turned
into rows on the host by plain bash (hosts have no jq). Run here on `member list -w json` as etcd 3.4.23, 3.5.36,
3.6.17 and 3.7.4 print it (tests/data/member_list/, recorded with a started voter and an unstarted learner with two
peer URLs; some IDs above 2^63), and checked against the table the same etcdctl printed for the same cluster."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from etcdrescue.inventory.model import parse_inventory
from etcdrescue.model import Context, Method
from etcdrescue.platform.tools import MEMBER_ROWS, EtcdTools
from etcdrescue.steps.join import _member_add_check, added_cluster, listed, member_id
from etcdrescue.steps.seed import member_id_of_single, stray_learners

DATA = Path(__file__).parent / "data" / "member_list"
VERSIONS = ("3.4.23", "3.5.36", "3.6.17", "3.7.4")


def bash(script: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], input=stdin, capture_output=True, text=True, timeout=20,
                          check=False)


def table(version: str) -> list[list[str]]:
    """etcdctl's own table: ID, STATUS, NAME, PEER ADDRS, CLIENT ADDRS, IS LEARNER."""
    return [line.split(", ") for line in (DATA / f"{version}.txt").read_text().splitlines() if line]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_rows_say_what_etcdctls_table_says(version: str) -> None:
    res = bash(MEMBER_ROWS, (DATA / f"{version}.json").read_text())
    assert res.returncode == 0, res.stderr
    rows = [line.split("\t") for line in res.stdout.splitlines()]
    assert rows == [[t[0], t[1], t[3], t[5]] for t in table(version)]


def test_the_recordings_hold_ids_above_2_63() -> None:
    """Decimal in the JSON, beyond bash's signed range: the rows must still give the hex etcdctl gives."""
    assert sum(int(t[0], 16) >= 2**63 for v in VERSIONS for t in table(v)) >= 3


def lab(version: str, tmp_path: Path, only_voter: bool = False) -> Context:
    """A context whose etcdctl prints the recording: the steps' own scripts run, etcd's answer is real
    (`only_voter`: the same answer without the learner, as compact as etcdctl prints it)."""
    text = (DATA / f"{version}.json").read_text()
    if only_voter:
        data = json.loads(text)
        data["members"] = [m for m in data["members"] if not m.get("isLearner")]
        text = json.dumps(data, separators=(",", ":")) + "\n"
    (tmp_path / "list.json").write_text(text)
    fake = tmp_path / "etcdctl"
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'list.json'}\n")
    fake.chmod(0o755)
    started = next(t for t in table(version) if t[1] == "started")
    inv = parse_inventory({"cluster": "c", "profile": "kubeadm", "members": [
        {"name": started[2], "host": "10.0.0.1", "peer_url": started[3], "client_url": started[4]},
        {"name": "joiner", "host": "10.0.0.2", "peer_url": "https://10.0.0.2:2380", "client_url": "https://10.0.0.2:2379"}]})
    inv = replace(inv, platform=replace(inv.platform, tools=EtcdTools(inv.paths, str(fake))))
    return Context(inv, None, Method.FORCE_NEW_CLUSTER, "s")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_steps_decide_from_the_json(version: str, tmp_path: Path) -> None:
    ctx = lab(version, tmp_path)
    voter, learner = sorted(table(version), key=lambda t: t[5] == "true")
    seed, joiner = ctx.inv.members
    assert bash(listed(ctx, seed)).returncode == 0
    assert bash(listed(ctx, seed, '$2 == "started" && $4 == "false"')).returncode == 0
    assert bash(listed(ctx, seed, '$4 == "true"')).returncode == 1
    assert bash(listed(ctx, joiner)).returncode == 1
    assert bash(f"{member_id(ctx, seed)} && echo $id").stdout.strip() == voter[0]
    assert bash(f"{member_id(ctx, joiner)} && echo $id").returncode == 1
    strays = bash(stray_learners(ctx, "print $1")).stdout.split()
    assert strays == [learner[0]], "the learner with the peer URLs the inventory does not name"
    assert bash(stray_learners(ctx, "f = 1", " END {exit f}")).returncode == 1
    assert bash(member_id_of_single(ctx)).returncode == 1, "two members: not the single one"
    alone = lab(version, tmp_path, only_voter=True)
    assert bash(f"{member_id_of_single(alone)} && echo $id").stdout.strip() == voter[0]
    assert bash(stray_learners(alone, "f = 1", " END {exit f}")).returncode == 0, "no stray learner left"


@pytest.mark.parametrize("version", VERSIONS)
def test_member_add_is_read_from_its_json_as_etcdctl_would_print_the_cluster(version: str) -> None:
    """Recorded: a learner `j` added as JSON; then `k` added with the table output, whose ETCD_INITIAL_CLUSTER
    also names `j` (unstarted: no name). The JSON answer of `j`'s add, read for `j`, gives the same items less `k`'s."""
    answer = (DATA.parent / "member_add" / f"{version}.json").read_text()
    printed = (DATA.parent / "member_add" / f"{version}.txt").read_text()
    line = next(x for x in printed.splitlines() if x.startswith("ETCD_INITIAL_CLUSTER="))
    table_items = set(line.partition("=")[2].strip('"').split(","))
    n = VERSIONS.index(version) + 1
    later = f"k{n}=http://127.189.0.{n}:2391"
    unstarted_j = f"=http://127.189.0.{n}:2390"
    assert later in table_items and unstarted_j in table_items
    got = added_cluster(answer, f"j{n}")
    assert got == (table_items - {later, unstarted_j}) | {f"j{n}=http://127.189.0.{n}:2390"}
    check = _member_add_check(",".join(sorted(got)), f"j{n}")
    assert check(answer) is None
    assert check("Member 1 added to cluster 2\n") == (
        "member add printed no JSON answer with the member and the member list")
    assert "expected" in (_member_add_check(f"j{n}=x", f"j{n}")(answer) or "")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_replace_reads_the_old_entry_from_the_json(version: str, tmp_path: Path) -> None:
    """`replace`: the target's entry by peer URL (a half-added learner is not an old entry), and a failed read
    fails the script instead of looking like "no entry"."""
    from etcdrescue.inventory.model import Member
    from etcdrescue.procedures.replace import old_entry

    ctx = lab(version, tmp_path)
    voter, learner = sorted(table(version), key=lambda t: t[5] == "true")
    seed = ctx.inv.members[0]
    assert bash(old_entry(ctx, seed, "{print $1}")).stdout.strip() == voter[0]
    half = Member("half", "10.0.0.9", 22, learner[3], "https://10.0.0.9:2379")
    assert bash(old_entry(ctx, half, "{f = 1} END {exit !f}", negate=True)).returncode == 0, "no old entry"
    (tmp_path / "etcdctl").write_text("#!/bin/sh\necho 'Error: context deadline exceeded' >&2\nexit 1\n")
    failed = bash(old_entry(ctx, seed, "{f = 1} END {exit !f}", negate=True))
    assert failed.returncode != 0, "a failed read is not 'no entry'"
