"""End-to-end on kubeadm labs: etcd's flags in the manifest's command list, no etcd tools on the hosts
(`--etcd-tools`), etcd 3.4 to 3.7; every promise the okd3 recovery makes, in kubeadm's terms."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from etcdrescue.lab import Lab
from etcdrescue.lab.versions import release
from etcdrescue.platform.kubeadm import DEFAULT_PATHS as P
from etcdrescue.platform.manifest import command_items, flags

from .conftest import requires_lab
from .helpers import POST, PRE, Broken, break_lab, etcdrescue, hide_image, host_file, image_bins, tree_digest
from .revisions import assert_really_bumped, journal_events, snapshot_revision
from .test_recover import assert_revision_path

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(500)]

LabFactory = Callable[..., Lab]
V35 = release("3.5").full
MANIFESTS = P.pod_dir
OTHERS = ("kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml")
CHANGED = ("--name=", "--initial-cluster=", "--initial-cluster-state=", "--initial-advertise-peer-urls=")


def originals(lab: Lab) -> dict[tuple[int, str], bytes]:
    """Every manifest of every host, as kubeadm left it (before anything broke)."""
    return {(i, p.name): p.read_bytes() for i in range(len(lab.hosts))
            for p in host_file(lab, i, MANIFESTS).iterdir() if p.is_file()}


def recover(b: Broken, journal: Path, *extra: str, tools: bool = True) -> tuple[int, str]:
    args = ["recover", "-i", str(b.lab.inventory_path), "--yes", "--journal", str(journal), *extra]
    if b.backup:
        args += ["--backup", b.backup]
    if tools:
        args += ["--etcd-tools", str(b.lab.bin_dir)]
    res = etcdrescue(*args)
    return res.returncode, res.stdout + res.stderr


def assert_kubeadm_recovered(b: Broken, before: dict[tuple[int, str], bytes], *, keys: int, post: int,
                             forced: bool) -> None:
    lab = b.lab
    members = lab.member_list()
    assert sorted((m["name"], tuple(m["peer_urls"])) for m in members) == sorted(
        (h.name, (h.peer_url,)) for h in lab.hosts)
    for h in lab.hosts:
        assert lab.healthy(h), f"{h.name} not healthy"
    assert len({lab.leader(h) for h in lab.hosts}) == 1
    assert len(lab.read_prefix(PRE, host=lab.hosts[-1])) == keys
    assert len(lab.read_prefix(POST, host=lab.hosts[1])) == post
    inventory = {h.name: h.peer_url for h in lab.hosts}
    for i, h in enumerate(lab.hosts):
        pod_dir = host_file(lab, i, MANIFESTS)
        assert sorted(p.name for p in pod_dir.iterdir()) == sorted(["etcd.yaml", *OTHERS]), \
            "no manifest file left where the kubelet reads it twice"
        for other in OTHERS:
            assert (pod_dir / other).read_bytes() == before[(i, other)], f"{h.name}: {other} changed"
        text = (pod_dir / "etcd.yaml").read_text()
        assert "--force-new-cluster" not in text
        got, old = flags(text), command_items(before[(i, "etcd.yaml")].decode())
        assert [c for c in command_items(text) if not c.startswith(CHANGED)] == [
            c for c in old if not c.startswith(CHANGED)], f"{h.name}: other command items changed"
        if i == 0 and forced:
            assert text.encode() == before[(0, "etcd.yaml")], "the seed gets its original manifest back"
        elif i > 0:
            assert got["initial-cluster-state"] == "existing" and got["name"] == h.name
            listed = dict(part.split("=", 1) for part in got["initial-cluster"].split(","))
            assert listed == {n: inventory[n] for n in list(inventory)[: i + 1]}
        assert not host_file(lab, i, P.disabled_manifest).exists()
        kept = [p for p in host_file(lab, i, P.data_dir).iterdir() if p.name.startswith("member.etcdrescue-")]
        assert kept, f"{h.name}: old data not kept aside"


MATRIX = {"3.5": 222, "3.6": 223, "3.7": 224}
"""etcd minor -> subnet of its module-scoped lab for the method matrix below."""


@pytest.fixture(scope="module", params=list(MATRIX))
def matrix_lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One 3-member kubeadm lab per etcd minor, shared by the matrix's methods (`ready` resets it between them)."""
    minor: str = request.param
    lab = Lab(tmp_path_factory.mktemp(f"kubeadm{minor}") / "lab", 3, subnet=MATRIX[minor], profile="kubeadm",
              etcd=minor)
    try:
        lab.up(timeout=60)
        yield lab
    finally:
        lab.down()


def ready(lab: Lab) -> Lab:
    """The shared lab as the next test needs it: every member healthy and listed, and none of the keys an earlier
    test wrote. A recovered cluster is one to break again (a second incident); one an earlier test left broken
    is built anew."""
    try:
        fine = (all(lab.healthy(h) for h in lab.hosts)
                and sorted(m["name"] for m in lab.member_list()) == sorted(h.name for h in lab.hosts))
    except Exception:  # grpc errors of every kind: a lab that cannot answer is rebuilt
        fine = False
    if not fine:
        lab.destroy()
        lab.up(timeout=60)
    c = lab.client()
    try:
        for prefix in (PRE, POST):
            c.delete_prefix(prefix)
    finally:
        c.close()
    assert not lab.read_prefix("/")
    return lab


@pytest.mark.parametrize(("backup", "method", "post", "source"), [
    ("snapshot", None, 0, "etcd-tools"),
    ("snapshot", None, 0, "image"),
    ("copy", "force-new-cluster", 0, "etcd-tools"),
    (None, None, 100, "etcd-tools"),
], ids=["snapshot-file-real-bump", "snapshot-file-image-binaries", "stopped-member-copy-force-new-cluster",
        "quorum-restore"])
def test_recover_kubeadm_without_host_tools(matrix_lab: Lab, tmp_path: Path, backup: str | None,
                                            method: str | None, post: int, source: str) -> None:
    """kubeadm x {3.5, 3.6, 3.7} x the three ways to a seed, with the lab release's tools via --etcd-tools; and a
    snapshot restore with no tools given at all: each node's own etcd image's binaries, where containerd unpacked
    them (a different layer on each node, beside the previous minor's image), copied into place by the plan."""
    lab = ready(matrix_lab)
    full = lab.release.full
    assert lab.exec(1, "command -v etcdctl etcdutl").stdout.strip() == "", "the hosts have no etcd tools"
    image = source == "image"
    if image:
        for i in range(3):  # no copies an earlier test's --etcd-tools left: the image's binaries are all there is
            uploads = host_file(lab, i, "/var/lib/etcdrescue/tools")
            if uploads.exists():
                uploads.rename(tmp_path / f"uploads-{i}")
        assert_check_asks_the_image(lab)
    before = originals(lab)
    b = break_lab(lab, backup)
    backup_revision = snapshot_revision(lab, b.backup) if backup == "snapshot" and b.backup else 0
    if image:
        assert b.backup
        assert_runbook_names_the_image(lab, b.backup, tmp_path)
    code, out = recover(b, tmp_path / "j", *(["--method", method] if method else []), tools=not image)
    assert code == 0, out
    tools = f"/var/lib/etcdrescue/tools/{full}"
    assert f"etcd tools: {tools}/etcdctl, snapshots with {tools}/etcdutl" in out
    assert image == (f"(copies of each master's etcd image binaries {full}, made by the plan's first step)" in out)
    assert_kubeadm_recovered(b, before, keys=500, post=post, forced=backup != "snapshot")
    if backup == "snapshot":
        assert_really_bumped(lab, tmp_path / "j", backup_revision, 1_000_000_000)
    else:
        assert_revision_path(b, tmp_path / "j")
    events = journal_events(tmp_path / "j")
    scripts = [e["script"] for e in events if e["event"] == "command" and e.get("exit") == 0]
    if backup == "snapshot":
        assert any(f"{tools}/etcdutl snapshot restore" in s for s in scripts)
        assert not any("--skip-hash-check" in s for s in scripts), "a snapshot file keeps its hash check"
    adds = [s for s in scripts if " member add " in s]
    promotes = [s for s in scripts if " member promote " in s]
    assert len(adds) == 2 and all("--learner" in s for s in adds) and len(promotes) == 2
    assert_adds_retried_as_the_version_needs(events, out, full)
    for i in range(3):
        assert host_file(lab, i, f"{tools}/etcdctl").exists(), "tools on every host"
    if image:
        assert_copied_from_the_image(lab, events, tools)


def assert_adds_retried_as_the_version_needs(events: list[dict[str, Any]], out: str, full: str) -> None:
    """Every refused `member add` was refused for what the retry waits out, its why names the version the
    pre-flight read from the manifest (these patches need a connected quorum, not every voter), the tries are
    a second apart, and the console says how many it took."""
    tries: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e["event"] == "command" and " member add " in e["script"] and "exit" in e:
            tries.setdefault(e["step"], []).append(e)
    assert len(tries) == 2 and all(runs[-1]["exit"] == 0 for runs in tries.values()), tries
    for runs in tries.values():
        for e in runs[:-1]:
            assert "unhealthy cluster" in e["stderr"] or "too many learner members" in e["stderr"], e
            assert e["refused"] == (f"etcd {full} accepts a member add once a quorum of the voting members has "
                                    "been connected for 5 s"), e
        for a, b in itertools.pairwise(runs):
            assert (b["ts"] - b["duration"]) - a["ts"] >= 0.9, (a, b)
        if len(runs) > 1:
            assert f"after {len(runs)} tries in " in out, out


def assert_check_asks_the_image(lab: Lab) -> None:
    """`check` on the healthy cluster asks each member's health with its image's binaries: all three healthy
    (never "health unknown"), and nothing on a host changed (no copy in a read-only check)."""
    before = tree_digest(lab)
    res = etcdrescue("check", "-i", str(lab.inventory_path))
    out = res.stdout + res.stderr
    assert out.count(" healthy (id ") == 3, out
    assert "health unknown" not in out and "no etcdctl" not in out, out
    assert tree_digest(lab) == before
    assert not any(host_file(lab, i, "/var/lib/etcdrescue/tools").exists() for i in range(3)), "check copies nothing"


def assert_runbook_names_the_image(lab: Lab, backup: str, tmp_path: Path) -> None:
    """The runbook names the copies every command runs and, per host, the image layer each comes from."""
    res = etcdrescue("runbook", "-i", str(lab.inventory_path), "--backup", backup, "-o", str(tmp_path / "rb.md"))
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "rb.md").read_text()
    tools = f"/var/lib/etcdrescue/tools/{lab.release.full}"
    assert f"{tools}/etcdutl snapshot restore" in text and f"{tools}/etcdctl" in text
    for i in range(3):
        layer = image_bins(lab, i)[lab.release.full]
        inside = "/" + str(layer.relative_to(lab.hosts[i].dir))
        assert f"cp {inside}/etcdctl " in text and f"cp {inside}/etcdutl " in text, (i, inside)


def assert_copied_from_the_image(lab: Lab, events: list[dict[str, Any]], tools: str) -> None:
    """The plan's first step copied each host's own layer of the version etcd runs (never the previous minor's),
    and the copies are those very binaries."""
    copies = [e for e in events if e["event"] == "command" and e.get("step") == "etcd-tools"]
    assert copies and all(e.get("exit") == 0 for e in copies), copies
    for i, h in enumerate(lab.hosts):
        layer = image_bins(lab, i)[lab.release.full]
        inside = "/" + str(layer.relative_to(h.dir))
        mine = [e["script"] for e in copies if e["host"] == h.name]
        assert len(mine) == 2 and all(f"cp {inside}/etcd" in s for s in mine), mine
        for name in ("etcdctl", "etcdutl"):
            assert host_file(lab, i, f"{tools}/{name}").read_bytes() == (layer / name).read_bytes()


@pytest.mark.parametrize(("members", "etcd", "backup", "method", "post", "subnet"), [
    (5, "3.4", "snapshot", None, 0, 103),
    (3, "3.4", "copy", "force-new-cluster", 0, 113),
    (3, "3.4", None, None, 100, 114),
    (5, "3.6", "snapshot", None, 0, 229),
], ids=["etcd34-five-members-snapshot-file", "etcd34-stopped-member-copy-force-new-cluster", "etcd34-quorum-restore",
        "etcd36-five-members-snapshot-file"])
def test_recover_kubeadm_with_host_tools(lab_factory: LabFactory, tmp_path: Path, members: int, etcd: str,
                                         backup: str | None, method: str | None, post: int, subnet: int) -> None:
    lab = lab_factory(members, subnet=subnet, profile="kubeadm", etcd=etcd, host_tools=True)
    before = originals(lab)
    b = break_lab(lab, backup)
    backup_revision = snapshot_revision(lab, b.backup) if etcd != "3.4" and b.backup else 0
    code, out = recover(b, tmp_path / "j", *(["--method", method] if method else []), tools=False)
    assert code == 0, out
    assert_kubeadm_recovered(b, before, keys=500, post=post, forced=backup != "snapshot")
    if etcd == "3.4":
        assert "etcd tools: etcdctl\n" in out, "the hosts' own etcdctl 3.4, restore with etcdctl"
        assert_revision_path(b, tmp_path / "j")
    else:
        assert "etcd tools: etcdctl, snapshots with etcdutl\n" in out, "the hosts' own etcdctl and etcdutl"
        assert_really_bumped(lab, tmp_path / "j", backup_revision, 1_000_000_000)


def test_dry_run_on_kubeadm_changes_nothing(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=104, profile="kubeadm", etcd="3.5"), "snapshot")
    before = tree_digest(b.lab)
    code, out = recover(b, tmp_path / "j", "--dry-run")
    assert code == 0, out
    assert tree_digest(b.lab) == before, "etcd's manifests, certificates and data untouched"
    assert not (tmp_path / "j").exists()
    for h in b.lab.hosts:
        assert f"{h.name}$ mkdir -p {P.disabled_dir}" in out, "every host's commands shown"
    assert "would run" in out and "depends on an earlier change" in out


def test_refusals_on_kubeadm(lab_factory: LabFactory, tmp_path: Path) -> None:
    """Exit 2, one line naming the problem, no change to etcd's files on any host."""
    lab = lab_factory(3, subnet=105, profile="kubeadm", etcd="3.5")
    b = break_lab(lab, "snapshot")
    manifest = host_file(lab, 2, P.manifest)
    good = manifest.read_bytes()
    doc = yaml.safe_load(good)
    old_tools = tmp_path / "tools-3.4"
    old_tools.mkdir()
    (old_tools / "etcdctl").symlink_to("/usr/bin/etcdctl")

    def edited(change: Callable[[dict[str, Any]], None]) -> bytes:
        d = yaml.safe_load(good)
        change(d)
        return yaml.safe_dump(d).encode()

    cases: list[tuple[str, Callable[[], object], list[str], str]] = [
        ("manifest missing", lambda: manifest.unlink(), [], "etcd manifest missing"),
        ("not a pod", lambda: manifest.write_bytes(b"kind: ConfigMap\ndata: {}\n"), [], "not a pod manifest"),
        ("no etcd container", lambda: manifest.write_bytes(edited(
            lambda d: d["spec"]["containers"][0].update(name="etcd-old"))), [], "no container named etcd"),
        ("command not a list", lambda: manifest.write_bytes(edited(
            lambda d: d["spec"]["containers"][0].update(command="etcd --name=x"))), [], "command is not a list"),
        ("second manifest", lambda: host_file(lab, 2, f"{MANIFESTS}/etcd.yaml.bak").write_bytes(good), [],
         "etcd.yaml.bak also define the etcd pod"),
        ("a flag its etcd lacks", lambda: manifest.write_bytes(edited(
            lambda d: d["spec"]["containers"][0]["command"].append("--feature-gates=InitialCorruptCheck=true"))), [],
         f"its image runs etcd {V35}, which refuses --feature-gates"),
        ("no tools, and a node's image of another version", lambda: hide_image(lab, 2, V35), ["no-tools"],
         f"etcd {V35} runs there, its image layers hold etcdctl 3.4.23: give --etcd-tools DIR with etcdctl and "
         "etcdutl of 3.5"),
        ("uploaded tool of the wrong version", lambda: None, ["--etcd-tools", str(old_tools)],
         f"the uploaded etcdctl is 3.4.23, but etcd there runs {V35}"),
    ]
    for what, damage, extra, expected in cases:
        damage()
        before = tree_digest(lab)
        args = ["recover", "-i", str(lab.inventory_path), "--backup", str(b.backup), "--yes"]
        if extra != ["no-tools"]:
            args += extra or ["--etcd-tools", str(lab.bin_dir)]
        res = etcdrescue(*args, "--journal", str(tmp_path / "j"), timeout=90)
        assert res.returncode == 2, (what, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (what, res.stderr)
        assert tree_digest(lab) == before, what
        assert not list((tmp_path / "j").glob("*.jsonl")), (what, "no journal: only the lock dir")
        for p in host_file(lab, 2, MANIFESTS).iterdir():
            if p.name == "etcd.yaml.bak":
                p.unlink()
        manifest.write_bytes(good)
    assert doc["spec"]["containers"][0]["name"] == "etcd"


def test_kill_and_resume_on_kubeadm(lab_factory: LabFactory, tmp_path: Path) -> None:
    """On etcd 3.6: SIGKILL at every step boundary and inside every mutating step (the manifest edit after the temp file
    is written and after it is verified, before the rename); every `--resume` finishes the job, and no
    half-edited manifest is ever where the kubelet reads it."""
    from etcdrescue.inventory.model import load_inventory
    from etcdrescue.model import Context, Method
    from etcdrescue.plan import build_plan

    lab = lab_factory(3, subnet=107, profile="kubeadm", etcd="3.6")
    before = originals(lab)
    b = break_lab(lab, "snapshot")
    assert b.backup
    plan = build_plan(Context(load_inventory(lab.inventory_path), b.backup, Method.SNAPSHOT_RESTORE, "x"))
    edit = ("write the manifest", "verify the edit")
    faults: list[str] = []
    for s in plan.steps[:-1]:  # in plan order: a point already passed would never be reached
        faults += [f"after-command:{s.key}:{n}" for n, c in enumerate(s.commands, 1) if c.purpose.startswith(edit)]
        faults.append(f"after-step:{s.key}")
    journal = tmp_path / "j"
    for i, fault in enumerate(faults):
        args = ["recover", "-i", str(lab.inventory_path), "--backup", b.backup, "--yes", "--journal", str(journal),
                "--etcd-tools", str(lab.bin_dir), *(["--resume"] if i else [])]
        res = etcdrescue(*args, env={"ETCDRESCUE_FAULT": fault})
        assert res.returncode == -9, (fault, res.stdout[-2000:], res.stderr)
        for h in range(3):
            live = host_file(lab, h, P.manifest)
            if live.exists():
                assert command_items(live.read_text())[0] == "etcd", (fault, "a broken manifest reached the kubelet")
    code, out = recover(b, journal, "--resume")
    assert code == 0, out
    assert_kubeadm_recovered(b, before, keys=500, post=0, forced=False)
    (path,) = journal.glob("*.jsonl")
    events = [json.loads(line) for line in path.read_text().splitlines()]
    ran = Counter((e["step"], e["host"], e["script"]) for e in events
                  if e["event"] == "command" and e.get("mutates") and not e.get("skipped") and e.get("exit") == 0)
    again = {k: n for k, n in ran.items() if n > 1}
    # Only the edit into the hidden temp file runs again after a kill before its rename: it is not in place
    # until renamed, and writing it again touches nothing the kubelet reads.
    assert again and all(script.startswith("if test -f") and ".etcdrescue-edit" in script
                         for _, _, script in again), again
    assert len({e["stamp"] for e in events if e["event"] == "run_start"}) == 1
