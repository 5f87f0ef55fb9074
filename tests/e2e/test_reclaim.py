"""`reclaim-space` end to end on real labs: a NOSPACE alarm (a small quota filled with old revisions, or with live
data), then the CLI, ending verified: every member healthy, no alarm, the data intact, writes accepted.

okd3 on Debian's etcd 3.4 (the hosts' own etcdctl), kubeadm on 3.6 with `--etcd-tools` (no tools on the hosts).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcdrescue.lab import Lab
from etcdrescue.lab.nospace import FILL_PREFIX, HISTORY_KEYS, SPACE_EXCEEDED, VALUE, break_nospace, db_sizes
from etcdrescue.space import NEAR_SHARE

from .conftest import requires_lab
from .helpers import PRE, etcdrescue, host_file, tree_digest

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(600)]

SHAPES = {"okd3": ("okd3", "3.4", 198), "kubeadm": ("kubeadm", "3.6", 199)}
"""Lab -> (profile, etcd minor, subnet): one module-scoped lab each."""


def make_lab(tmp_path_factory: pytest.TempPathFactory, which: str) -> Iterator[Lab]:
    profile, minor, subnet = SHAPES[which]
    lab = Lab(tmp_path_factory.mktemp(which) / "lab", 3, subnet=subnet, profile=profile, etcd=minor)
    try:
        lab.up(timeout=90)
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="module")
def okd3_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from make_lab(tmp_path_factory, "okd3")


@pytest.fixture(scope="module")
def kubeadm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from make_lab(tmp_path_factory, "kubeadm")


def ready(lab: Lab) -> Lab:
    """The shared lab as the next test needs it: healthy (etcd's /health fails while an alarm stands), no alarm,
    none of an earlier test's keys, its history compacted and every db defragmented. One left broken is rebuilt."""
    try:
        fine = all(lab.healthy(h) for h in lab.hosts) and not alarms(lab)
    except Exception:  # grpc errors of every kind: a lab that cannot answer is rebuilt
        fine = False
    if not fine:
        lab.destroy()
        lab.up(timeout=90)
    c = lab.client()
    try:
        for prefix in (PRE, FILL_PREFIX, "/post/"):
            c.delete_prefix(prefix)
        c.compact(c.put("/ready", "x").header.revision, physical=True)
    finally:
        c.close()
    for h in lab.hosts:
        c = lab.client(h)
        try:
            c.defragment()
        finally:
            c.close()
    return lab


def alarms(lab: Lab) -> list[Any]:
    c = lab.client()
    try:
        return list(c.list_alarms())
    finally:
        c.close()


def write_refused(lab: Lab) -> bool:
    c = lab.client()
    try:
        c.put("/post/refused", "x")
    except Exception as exc:
        return SPACE_EXCEEDED in f"{exc} {exc.__context__!r}"
    finally:
        c.close()
    return False


def broken(lab: Lab, *, history: bool = True) -> int:
    """500 keys, then the NOSPACE alarm; returns the quota."""
    lab.put_keys(PRE, 500)
    quota = break_nospace(lab, history=history)
    assert alarms(lab) and write_refused(lab)
    return quota


def reclaim(lab: Lab, journal: Path, *extra: str, fault: str | None = None) -> tuple[int, str]:
    tools = ["--etcd-tools", str(lab.bin_dir)] if lab.profile == "kubeadm" else []
    res = etcdrescue("reclaim-space", "-i", str(lab.inventory_path), "--journal", str(journal), *tools, *extra,
                     env={"ETCDRESCUE_FAULT": fault} if fault else None)
    return res.returncode, res.stdout + res.stderr


def events(journal: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(journal.glob("*.jsonl")) for line in path.read_text().splitlines()]


def assert_reclaimed(lab: Lab, journal: Path, quota: int, *, fill: int | None = None) -> None:
    """Every member healthy and listed, no alarm, the data intact, a write accepted, room under the quota."""
    assert sorted(m["name"] for m in lab.member_list()) == sorted(h.name for h in lab.hosts)
    for h in lab.hosts:
        assert lab.healthy(h), f"{h.name} not healthy"
    assert not alarms(lab)
    assert len({lab.leader(h) for h in lab.hosts}) == 1
    pre = lab.read_prefix(PRE, host=lab.hosts[-1])
    assert len(pre) == 500 and pre[f"{PRE}00499"] == "value-00499"
    filled = lab.read_prefix(FILL_PREFIX, host=lab.hosts[1])
    assert set(filled.values()) == {VALUE}
    assert len(filled) == (HISTORY_KEYS if fill is None else fill)
    c = lab.client()
    try:
        c.put("/post/ok", "written")
    finally:
        c.close()
    assert lab.read_prefix("/post/", host=lab.hosts[2]) == {"/post/ok": "written"}
    assert all(size < NEAR_SHARE * quota for size in db_sizes(lab).values()), db_sizes(lab)
    run = events(journal)
    starts = [e for e in run if e["event"] == "run_start"]
    assert starts and all(e["procedure"] == "reclaim-space" for e in starts)
    assert run[-1]["event"] == "run_end" and run[-1]["ok"]


def diagnosed(lab: Lab) -> dict[str, Any]:
    tools = ["--etcd-tools", str(lab.bin_dir)] if lab.profile == "kubeadm" else []
    res = etcdrescue("diagnose", "-i", str(lab.inventory_path), "--json", *tools)
    assert res.returncode == 0, res.stderr
    found: dict[str, Any] = json.loads(res.stdout)
    return found


def test_okd3_reclaims_the_space_old_revisions_took(okd3_lab: Lab, tmp_path: Path) -> None:
    lab = ready(okd3_lab)
    quota = broken(lab)
    leader = lab.leader()
    assert leader is not None
    found = diagnosed(lab)
    assert found["procedure"] == {"name": "reclaim-space", "members": [h.name for h in lab.hosts]}, found
    assert {a["alarm"] for a in found["alarms"]} == {"NOSPACE"}
    code, out = reclaim(lab, tmp_path / "j", "--yes")
    assert code == 0, out
    assert diagnosed(lab)["procedure"]["name"] == "none"
    assert f"seed: {leader.name} is the leader: it is defragmented last" in out
    assert "; nothing was moved or copied aside" in out, out[-500:]
    assert_reclaimed(lab, tmp_path / "j", quota)
    defragged = [e["host"] for e in events(tmp_path / "j") if e["event"] == "command" and e.get("exit") == 0
                 and str(e["step"]).startswith("defrag-")]
    assert len(defragged) == 3 and defragged[-1] == leader.name, "followers first, the leader last"


def test_nothing_to_reclaim_is_refused_unless_forced(okd3_lab: Lab, tmp_path: Path) -> None:
    lab = ready(okd3_lab)
    lab.put_keys(PRE, 500)
    c = lab.client()
    try:
        c.put(FILL_PREFIX + "00000", VALUE)
    finally:
        c.close()
    before = tree_digest(lab)
    code, out = reclaim(lab, tmp_path / "j", "--yes")
    assert code == 2, out
    assert "no NOSPACE alarm and nothing worth reclaiming" in out and "--force" in out
    assert tree_digest(lab) == before
    assert not list((tmp_path / "j").glob("*.jsonl")), "a refusal before the plan writes no journal"
    code, out = reclaim(lab, tmp_path / "j", "--yes", "--force")
    assert code == 0, out
    assert "compacting and defragmenting anyway (--force)" in out
    assert_reclaimed(lab, tmp_path / "j", 2 * 1024**3, fill=1)


def test_a_dry_run_changes_nothing_then_a_killed_run_resumes(okd3_lab: Lab, tmp_path: Path) -> None:
    lab = ready(okd3_lab)
    quota = broken(lab)
    before = tree_digest(lab)
    sizes = db_sizes(lab)
    code, out = reclaim(lab, tmp_path / "j", "--dry-run")
    assert code == 0, out
    assert "DRY RUN done, nothing changed: 1 would run" in out and "[4/7] Defragment" in out
    assert tree_digest(lab) == before and db_sizes(lab) == sizes and alarms(lab)
    leader = lab.leader()
    assert leader is not None
    first = next(h.name for h in lab.hosts if h.name != leader.name)
    code, out = reclaim(lab, tmp_path / "j", "--yes", fault=f"after-command:defrag-{first}:1")
    assert code == -9, out
    assert alarms(lab), "killed before the disarm"
    refused, out = reclaim(lab, tmp_path / "j", "--yes")
    assert refused == 2 and "--resume" in out
    code, out = reclaim(lab, tmp_path / "j", "--yes", "--resume")
    assert code == 0, out
    assert_reclaimed(lab, tmp_path / "j", quota)
    ran = Counter((e["step"], e["host"]) for e in events(tmp_path / "j")
                  if e["event"] == "command" and e.get("mutates") and e.get("exit") == 0)
    assert ran[("compact", leader.name)] == 1 and ran[(f"defrag-{first}", first)] == 1, ran


def test_kubeadm_36_reclaims_with_uploaded_tools(kubeadm_lab: Lab, tmp_path: Path) -> None:
    """Broken through the CLI (`etcdrescue lab break --mode nospace`), as an operator would rehearse it."""
    lab = ready(kubeadm_lab)
    assert lab.exec(1, "command -v etcdctl etcdutl").stdout.strip() == "", "the hosts have no etcd tools"
    lab.put_keys(PRE, 500)
    res = etcdrescue("lab", "break", "--mode", "nospace", "--root", str(lab.root))
    assert res.returncode == 0, res.stderr
    quota = int(re.search(r"--quota-backend-bytes=(\d+)", res.stderr).group(1))  # type: ignore[union-attr]
    assert alarms(lab) and write_refused(lab)
    found = diagnosed(lab)
    assert found["procedure"]["name"] == "reclaim-space", found
    assert all(m["quota"] == quota for m in found["members"].values())
    refused = etcdrescue("check", "-i", str(lab.inventory_path), "--etcd-tools", str(lab.bin_dir))
    assert refused.returncode == 2 and "members serving" in refused.stderr + refused.stdout, refused.stdout
    assert "diagnose says: reclaim-space" in refused.stdout, refused.stdout
    code, out = reclaim(lab, tmp_path / "j", "--yes")
    assert code == 0, out
    assert_reclaimed(lab, tmp_path / "j", quota)


def test_kubeadm_data_filling_the_quota_needs_a_larger_one(kubeadm_lab: Lab, tmp_path: Path) -> None:
    """Defragmenting cannot help when the data itself fills the quota: the run stops before the disarm and says
    so; resumed with `--quota`, it raises every member's quota (the manifest kept aside first) and ends verified."""
    lab = ready(kubeadm_lab)
    broken(lab, history=False)
    filled = len(lab.read_prefix(FILL_PREFIX))
    code, out = reclaim(lab, tmp_path / "j", "--yes")
    assert code == 3, out
    assert "defragmenting could not help" in out and "--quota BYTES" in out
    assert alarms(lab), "not disarmed without room"
    manifests = {i: host_file(lab, i, "/etc/kubernetes/manifests/etcd.yaml").read_text() for i in range(3)}
    bigger = 16 * 1024**2
    code, out = reclaim(lab, tmp_path / "j", "--yes", "--resume", "--quota", str(bigger))
    assert code == 0, out
    assert_reclaimed(lab, tmp_path / "j", bigger, fill=filled)
    for i in range(3):
        now = host_file(lab, i, "/etc/kubernetes/manifests/etcd.yaml").read_text()
        assert f"- --quota-backend-bytes={bigger}\n" in now
        kept = list(host_file(lab, i, "/etc/kubernetes/manifests-disabled").glob("etcd.yaml.etcdrescue-*"))
        assert [p.read_text() for p in kept] == [manifests[i]], "the manifest as it was, kept aside"
        assert [line for line in now.splitlines() if "quota" not in line] == [
            line for line in manifests[i].splitlines() if "quota" not in line], "only the quota changed"


def test_okd3_raises_the_quota_in_etcd_conf(okd3_lab: Lab, tmp_path: Path) -> None:
    """`--quota` from the start on okd3: `ETCD_QUOTA_BACKEND_BYTES` in every etcd.conf (kept aside first), one
    restart at a time, then the disarm. Killed right after a member's etcd was stopped for it, `--resume` finishes
    the job without doing anything twice."""
    lab = ready(okd3_lab)
    broken(lab, history=False)
    filled = len(lab.read_prefix(FILL_PREFIX))
    conf = "/etc/etcd/etcd.conf"
    before = {i: host_file(lab, i, conf).read_text() for i in range(3)}
    bigger = 16 * 1024**2
    leader = lab.leader()
    assert leader is not None
    first = next(h.name for h in lab.hosts if h.name != leader.name)
    code, out = reclaim(lab, tmp_path / "j", "--yes", "--quota", str(bigger), fault=f"after-command:quota-{first}:1")
    assert code == -9, out
    code, out = reclaim(lab, tmp_path / "j", "--yes", "--quota", str(bigger), "--resume")
    assert code == 0, out
    ran = Counter((e["step"], e["host"], e["script"]) for e in events(tmp_path / "j")
                  if e["event"] == "command" and e.get("mutates") and e.get("exit") == 0)
    assert ran and max(ran.values()) == 1, [k for k, n in ran.items() if n > 1]
    assert "raise the quota to 16.0 MiB" in out
    assert "3 paths kept beside the originals with the suffix .etcdrescue-" in out, out[-500:]
    assert_reclaimed(lab, tmp_path / "j", bigger, fill=filled)
    for i in range(3):
        now = host_file(lab, i, conf).read_text().splitlines()
        assert [line for line in now if line.startswith("ETCD_QUOTA_BACKEND_BYTES=")] == [
            f"ETCD_QUOTA_BACKEND_BYTES={bigger}"]
        assert [line for line in now if "QUOTA" not in line] == [
            line for line in before[i].splitlines() if "QUOTA" not in line], "only the quota changed"
        kept = list(host_file(lab, i, "/etc/etcd").glob("etcd.conf.etcdrescue-*"))
        assert [p.read_text() for p in kept] == [before[i]], "etcd.conf as it was, kept aside"
    steps = [e["step"] for e in events(tmp_path / "j") if e["event"] == "step_end" and e["status"] == "done"]
    assert [s for s in steps if s.startswith("quota-")] == [f"quota-{h}" for h in (
        *(h.name for h in lab.hosts if h.name != steps_leader(tmp_path / "j")), steps_leader(tmp_path / "j"))]


def steps_leader(journal: Path) -> str:
    """The leader the run planned around: its seed, defragmented and restarted last."""
    return str(next(e["seed"] for e in events(journal) if e["event"] == "run_start"))
