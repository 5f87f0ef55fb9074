"""`etcdrescue diagnose` on real labs: each break mode names the procedure that fits and the member it acts on,
a healthy cluster says `none`, and nothing on any host changes."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcdrescue.lab import Lab
from etcdrescue.lab.breaks import kept, refused_flags

from .conftest import requires_lab
from .helpers import PRE, etcdrescue, hide_image, host_file, tree_digest
from .revisions import journal_events

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def okd3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("diag-okd3") / "lab", 3, subnet=243)
    try:
        lab.up(timeout=60)
        yield lab
    finally:
        lab.down()


def diagnose(lab: Lab, *extra: str) -> dict[str, Any]:
    """The JSON diagnosis; every host's files the same before and after (read-only)."""
    before = tree_digest(lab)
    done = etcdrescue("diagnose", "-i", str(lab.inventory_path), "--json", *extra)
    assert done.returncode == 0, done.stderr
    assert tree_digest(lab) == before, "diagnose changed a host"
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def until(lab: Lab, want: str, *extra: str, timeout: float = 60) -> dict[str, Any]:
    """The diagnosis once it names `want` (a broken member takes a few seconds to show as broken)."""
    deadline = time.monotonic() + timeout
    while True:
        found = diagnose(lab, *extra)
        if found["procedure"]["name"] == want or time.monotonic() > deadline:
            return found
        time.sleep(2)


def test_okd3_healthy_expired_peer_certificate_broken_member_lost_quorum(okd3: Lab) -> None:
    """One lab through four incidents, each diagnosed as it stands (the earlier ones healed or made worse)."""
    lab = okd3
    names = [h.name for h in lab.hosts]
    found = diagnose(lab)
    assert found["procedure"] == {"name": "none", "members": []}
    assert set(found["members"]) == set(names)
    assert all(m["healthy"] and m["certs"] and not any(c["expired"] for c in m["certs"])
               for m in found["members"].values())

    broke = etcdrescue("lab", "break", "--mode", "cert-expired", "--root", str(lab.root))
    assert broke.returncode == 0, broke.stderr
    cert = "/etc/etcd/peer.crt"
    found = until(lab, "renew-certs")
    assert found["procedure"] == {"name": "renew-certs", "members": [names[2]]}
    assert any(c["path"] == cert and c["expired"] for c in found["members"][names[2]]["certs"])
    assert any("redeploy-certificates" in line for line in found["next"])
    for path in (cert, cert.replace(".crt", ".key")):
        real = lab.host_path(2, path)
        kept(real).replace(real)
    lab.stop_etcd(2)
    lab.start_etcd(2)
    lab.wait_healthy(timeout=60)
    assert diagnose(lab)["procedure"]["name"] == "none"

    lab.break_quorum([2])
    found = until(lab, "replace")
    assert found["procedure"] == {"name": "replace", "members": [names[2]]}

    def crashed(found: dict[str, Any]) -> bool:
        """The kubelet restarted it twice, and its newest container logged why it exits: a container only just
        started may not have written its first line yet."""
        member = found["members"][names[2]]
        return member["process"]["restarts"] >= 2 and any(c["cause"] == "WAL/CRC corruption"
                                                          for c in member["causes"])

    deadline = time.monotonic() + 30
    while not crashed(found) and time.monotonic() < deadline:
        time.sleep(2)
        found = diagnose(lab)
    assert found["procedure"] == {"name": "replace", "members": [names[2]]}
    assert any(c["cause"] == "WAL/CRC corruption" for c in found["members"][names[2]]["causes"]), found
    assert found["members"][names[2]]["process"]["restarts"] >= 2, "the kubelet keeps restarting it"
    assert found["members"][names[0]]["process"]["restarts"] == 0
    refused = etcdrescue("check", "-i", str(lab.inventory_path))
    assert refused.returncode == 2
    assert f"not healthy: {names[2]}" in refused.stdout, refused.stdout
    assert f"diagnose says: replace ({names[2]})" in refused.stdout, refused.stdout
    assert found["next"][0].startswith(f"etcdrescue replace -i {lab.inventory_path} {names[2]}")

    lab.break_quorum([1])
    found = until(lab, "recover")
    assert found["procedure"] == {"name": "recover", "members": [names[0]]}, found
    assert any("quorum lost" in line for line in found["evidence"])


def test_kubeadm_37_under_a_35_manifest_needs_its_flags_fixed(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An upgrade that kept the old manifest's `--experimental-*` flags: etcd 3.7 exits at once. Replacing the member
    would start the same binary on the same flags: the verdict is `fix-flags`, naming the flags."""
    lab = Lab(tmp_path_factory.mktemp("diag-kubeadm") / "lab", 3, subnet=244, profile="kubeadm", etcd="3.7")
    try:
        lab.up(timeout=60)
        tools = ("--etcd-tools", str(lab.bin_dir))
        assert diagnose(lab, *tools)["procedure"]["name"] == "none"
        refused_flags(lab, 2)
        found = until(lab, "fix-flags", *tools)
        name = lab.hosts[2].name
        assert found["procedure"] == {"name": "fix-flags", "members": [name]}, found
        causes = found["members"][name]["causes"]
        assert [c["cause"] for c in causes] == ["flag provided but not defined"]
        assert found["members"][name]["process"]["restarts"] >= 1
        assert found["next"][0].startswith(f"etcdrescue fix-flags -i {lab.inventory_path} --dry-run")
        assert "--experimental-initial-corrupt-check" in found["next"][1]
        assert "--watch-progress-notify-interval=5s --feature-gates=InitialCorruptCheck=true" in found["next"][1]
        refused_flags(lab, 0)  # two of three: the quorum is lost, and fix-flags needs none
        both = [lab.hosts[0].name, name]
        deadline = time.monotonic() + 60
        while (found := diagnose(lab, *tools))["procedure"] != {"name": "fix-flags", "members": both}:
            assert time.monotonic() < deadline, found["procedure"]
            time.sleep(2)
        assert "quorum lost" in found["evidence"]
        kill = f"after-command:flags-{lab.hosts[0].name}:6"  # its manifest rewritten out of sight, not yet back
        for fixed in fix_flags(lab, (0, 2), tmp_path_factory.mktemp("fix-37"), *tools, kill=kill):
            assert "- --feature-gates=InitialCorruptCheck=true\n" in fixed and "experimental" not in fixed
    finally:
        lab.down()


def test_kubeadm_35_under_a_36_manifest_gets_its_flags_rewritten(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The other direction: a 3.5 image under the names 3.6 introduced (kubeadm 1.34+ writes them) exits at once;
    fix-flags writes them back as the `--experimental-*` flags 3.5 knows."""
    lab = Lab(tmp_path_factory.mktemp("fix-kubeadm35") / "lab", 3, subnet=236, profile="kubeadm", etcd="3.5")
    try:
        lab.up(timeout=60)
        tools = ("--etcd-tools", str(lab.bin_dir))
        refused_flags(lab, 1, ("--watch-progress-notify-interval=5s", "--feature-gates=InitialCorruptCheck=true"))
        found = until(lab, "fix-flags", *tools)
        assert found["procedure"] == {"name": "fix-flags", "members": [lab.hosts[1].name]}, found
        (fixed,) = fix_flags(lab, (1,), tmp_path_factory.mktemp("fix-35"), *tools)
        assert "- --experimental-watch-progress-notify-interval=5s\n" in fixed
        assert "- --experimental-initial-corrupt-check=true\n" in fixed
        assert "feature-gates" not in fixed and "- --watch-progress" not in fixed
    finally:
        lab.down()


def test_kubeadm_37_recover_fix_flags_rewrites_them_in_its_own_edits(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two of three members on refused flags lost the quorum: `recover` refuses them and names the way out;
    `recover --fix-flags` restores the quorum from the freshest member's data and its settings edits rewrite the
    flags of those members, so every member starts, keys intact."""
    lab = Lab(tmp_path_factory.mktemp("recover-fix") / "lab", 3, subnet=238, profile="kubeadm", etcd="3.7")
    try:
        lab.up(timeout=60)
        lab.put_keys("/pre/", 50)
        tools = ("--etcd-tools", str(lab.bin_dir))
        refused_flags(lab, 1)
        refused_flags(lab, 2)
        both = [lab.hosts[1].name, lab.hosts[2].name]
        deadline = time.monotonic() + 60
        while (found := diagnose(lab, *tools))["procedure"] != {"name": "fix-flags", "members": both}:
            assert time.monotonic() < deadline, found["procedure"]
            time.sleep(2)
        inv = ("-i", str(lab.inventory_path), "--journal", str(tmp_path_factory.mktemp("recover-fix-j")), *tools)
        before = tree_digest(lab)
        refused = etcdrescue("recover", *inv, "--yes")
        assert refused.returncode == 2 and "`etcdrescue fix-flags` rewrites them" in refused.stderr, refused.stdout
        assert tree_digest(lab) == before, "a refused recovery changed a host"
        seed = ("--seed", lab.hosts[2].name, "--accept-older-seed")  # a seed whose flags are rewritten, forced
        done = etcdrescue("recover", *inv, *seed, "--fix-flags", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "--fix-flags rewrites them" in done.stdout and f"seed {lab.hosts[2].name}" in done.stdout
        assert diagnose(lab, *tools)["procedure"]["name"] == "none"
        for i, h in enumerate(lab.hosts):
            assert lab.healthy(h) and len(lab.read_prefix("/pre/", host=h)) == 50
            text = host_file(lab, i, "/etc/kubernetes/manifests/etcd.yaml").read_text()
            assert "experimental" not in text and "- --feature-gates=InitialCorruptCheck=true\n" in text
            assert list(host_file(lab, i, "/etc/kubernetes/manifests-disabled").glob("etcd.yaml.etcdrescue-*"))
    finally:
        lab.down()


def fix_flags(lab: Lab, hosts: tuple[int, ...], journal: Path, *extra: str, kill: str | None = None) -> list[str]:
    """`fix-flags` on a lab whose members `hosts` crash-loop on refused flags: its runbook and its dry run change
    nothing; the run ends with diagnose's `none` and every member healthy, each manifest as it was kept aside, no
    file gone; a second run is refused (exit 2) and changes nothing. With `kill` (an ETCDRESCUE_FAULT point) the
    run dies there like `kill -9` and `--resume` finishes it, no change made twice. Returns their manifests as
    fixed."""
    inv = ("-i", str(lab.inventory_path), "--journal", str(journal), *extra)
    manifests = [host_file(lab, i, "/etc/kubernetes/manifests/etcd.yaml") for i in hosts]
    was = [m.read_text() for m in manifests]
    before = tree_digest(lab)
    book = etcdrescue("runbook", "-i", str(lab.inventory_path), "--procedure", "fix-flags", *extra)
    assert book.returncode == 0, book.stderr
    assert all(f"Rewrite {lab.hosts[i].name}'s etcd flags" in book.stdout for i in hosts)
    dry = etcdrescue("fix-flags", *inv, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would run" in dry.stdout
    assert tree_digest(lab) == before, "the dry run changed a host"
    if kill is not None:
        killed = etcdrescue("fix-flags", *inv, "--yes", env={"ETCDRESCUE_FAULT": kill})
        assert killed.returncode == -9, killed.stdout + killed.stderr
    done = etcdrescue("fix-flags", *inv, "--yes", *(["--resume"] if kill else []))
    assert done.returncode == 0, done.stdout + done.stderr
    ran = Counter((e["step"], e["host"], e["script"]) for e in journal_events(journal)
                  if e["event"] == "command" and e.get("mutates") and e.get("exit") == 0)
    assert ran and max(ran.values()) == 1, [k for k, n in ran.items() if n > 1]
    assert diagnose(lab, *extra)["procedure"]["name"] == "none"
    assert all(lab.healthy(h) for h in lab.hosts)
    after = tree_digest(lab)
    assert set(before) <= set(after), f"removed: {sorted(set(before) - set(after))}"
    new = {k for k in after if k not in before}
    for i, old in zip(hosts, was, strict=True):
        h = lab.hosts[i]
        kept = list(host_file(lab, i, "/etc/kubernetes/manifests-disabled").glob("etcd.yaml.etcdrescue-*"))
        assert [p.read_text() for p in kept] == [old], "the manifest as it was, kept aside with the run's stamp"
        new -= {f"{h.name}:etc/kubernetes/manifests-disabled/", f"{h.name}:{kept[0].relative_to(h.dir)}"}
    assert not new, f"more than the kept manifests: {sorted(new)}"
    again = etcdrescue("fix-flags", *inv, "--yes")
    assert again.returncode == 2 and "every manifest's flags suit its etcd" in again.stdout + again.stderr, again.stdout
    assert tree_digest(lab) == after, "a refused run changed a host"
    return [m.read_text() for m in manifests]


def test_kubeadm_on_cri_o_without_tools_uses_the_image_else_says_health_unknown(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """kubeadm nodes on CRI-O, no etcd tools on the hosts: each member's health is asked with its etcd image's own
    binaries where CRI-O unpacked them (a healthy cluster needs nothing), and a quorum recovery copies and runs
    them; with those gone too (garbage-collected), health is unknown, never "unhealthy"."""
    lab = Lab(tmp_path_factory.mktemp("diag-notools") / "lab", 3, subnet=245, profile="kubeadm", etcd="3.6",
              runtime="crio")
    try:
        lab.up(timeout=60)
        found = diagnose(lab)
        assert found["procedure"]["name"] == "none", found
        assert not any("health unknown" in line for line in found["evidence"]), found["evidence"]
        assert not host_file(lab, 0, "/var/lib/containerd").exists() or not any(
            host_file(lab, 0, "/var/lib/containerd").rglob("etcdctl")), "CRI-O's places only"
        lab.put_keys(PRE, 50)
        time.sleep(0.6)
        lab.break_quorum(lab.hosts[1:])
        res = etcdrescue("recover", "-i", str(lab.inventory_path), "--yes", "--journal", str(tmp_path / "j"))
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-3000:]
        full = lab.release.full
        assert f"(copies of each master's etcd image binaries {full}, made by the plan's first step)" in out, out
        copies = [e["script"] for e in journal_events(tmp_path / "j")
                  if e["event"] == "command" and e.get("step") == "etcd-tools" and e.get("exit") == 0]
        assert copies and all(" /var/lib/containers/storage/overlay/" in c for c in copies), copies
        lab.wait_healthy(timeout=30)
        assert len(lab.read_prefix(PRE)) == 50
        for i in range(3):
            hide_image(lab, i, lab.release.full)
        found = diagnose(lab)
        assert found["procedure"]["name"] == "unknown"
        assert any("--etcd-tools" in line for line in found["evidence"])
    finally:
        lab.down()
