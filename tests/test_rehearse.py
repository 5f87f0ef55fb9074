"""`etcdrescue rehearse`: the README's main job, end to end on real labs (subnets 74, 75, 234, 235), plus
the verdict logic and the wizard hand-off on fakes.

The headless rehearsal runs a real `recover` with `--journal`, so the run report's end-to-end
check (every step key of the plan and every gate) lives here too.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from conftest_lab import requires_lab

from etcdrescue.commands import rehearse
from etcdrescue.documents.report import render_markdown
from etcdrescue.errors import InputError
from etcdrescue.inventory.model import load_inventory, parse_inventory
from etcdrescue.journal import read_journal
from etcdrescue.lab import Lab
from etcdrescue.model import Context, Method, RevisionPath, Revisions
from etcdrescue.plan import build_plan


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    # stdin is not a terminal here, so even without --headless the wizard must not open
    return subprocess.run([sys.executable, "-m", "etcdrescue", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def expected_plan(names: list[str], cluster: str, backup: str, subnet: int) -> Any:
    """The plan the rehearsal must have run, built independently of the journal."""
    inv = parse_inventory({"cluster": cluster, "members": [
        {"name": n, "host": f"127.0.{subnet}.{i}", "peer_url": f"https://127.0.{subnet}.{i}:2380",
         "client_url": f"https://127.0.{subnet}.{i}:2379"} for i, n in enumerate(names, 1)]})
    # The lab's etcdctl 3.4.23 has no --bump-revision: revisions go back, the control plane is restarted.
    revisions = Revisions(RevisionPath.BACKWARDS, restart_control_plane=True)
    return build_plan(Context(inv, backup, Method.SNAPSHOT_RESTORE, "x", revisions=revisions))


@pytest.mark.lab
@requires_lab
@pytest.mark.timeout(200)
def test_headless_rehearsal_then_report(tmp_path: Path) -> None:
    root, journals = tmp_path / "rehearsal", tmp_path / "journals"
    res = run_cli("rehearse", "--headless", "--subnet", "74", "--root", str(root), "--journal", str(journals))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "REHEARSAL PASSED" in out
    assert "members healthy: 3/3" in out
    assert "pre-backup keys back: 500/500" in out
    assert "post-backup keys gone (expected from a restore): yes" in out
    assert "lab torn down" in out and not root.exists()
    assert "restart by hand, in this order:\n  - the kubelet on every node" in out

    [journal] = journals.glob("rehearsal-*.jsonl")
    events = read_journal(journal)
    backup = next(e for e in events if e["event"] == "run_start")["mode"].split("backup ")[1].split(" (")[0]
    plan = expected_plan([f"master{i:02d}.lab.example" for i in (1, 2, 3)], "rehearsal", backup, 74)
    doc = render_markdown(events, str(journal))
    assert "- Result: **RECOVERED**" in doc
    for i, step in enumerate(plan.steps, 1):
        assert f"| {i} | `{step.key}` |" in doc, step.key
        assert f"### {i}. `{step.key}`: {step.title}" in doc
        if step.gate is not None:
            assert f"Gate **passed**: {step.gate.title}" in doc
    assert doc.count("Gate **passed**") == sum(1 for s in plan.steps if s.gate is not None)
    assert "Gate **FAILED**" not in doc
    assert "## Restart by hand" in doc
    after = doc.split("## Members after")[1]
    assert "Not recorded" not in after and "unavailable" not in after
    for i in (1, 2, 3):  # the engine's `members` event, or else the final gate's table
        assert f"| master0{i}.lab.example |" in after


@pytest.mark.lab
@requires_lab
@pytest.mark.timeout(200)
@pytest.mark.parametrize(("etcd", "subnet"), [("3.6", 234), ("3.7", 235)])
def test_headless_rehearsal_on_kubeadm(tmp_path: Path, etcd: str, subnet: int) -> None:
    """`rehearse --profile kubeadm --etcd 3.6|3.7`, as the README offers it: no tools given, as on a real kubeadm
    node the plan copies each node's etcd image binaries into place, and the restore bumps revisions for real
    (nothing to restart by hand)."""
    root, journals = tmp_path / "rehearsal", tmp_path / "journals"
    res = run_cli("rehearse", "--headless", "--profile", "kubeadm", "--etcd", etcd, "--subnet", str(subnet),
                  "--root", str(root), "--journal", str(journals))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "REHEARSAL PASSED" in out and "members healthy: 3/3" in out and "pre-backup keys back: 500/500" in out
    full = Lab(root, profile="kubeadm", etcd=etcd).release.full
    assert f"etcd tools: /var/lib/etcdrescue/tools/{full}/etcdctl" in out
    assert f"(copies of each master's etcd image binaries {full}, made by the plan's first step)" in out
    assert "revisions bumped by 1,000,000,000 with --mark-compacted" in out and "restart by hand" not in out
    assert "lab torn down" in out and not root.exists()


@pytest.mark.lab
@requires_lab
@pytest.mark.timeout(200)
def test_rehearsal_shaped_like_an_inventory_and_kept(tmp_path: Path) -> None:
    inv = tmp_path / "prod.yaml"
    inv.write_text("""\
cluster: prod-east
members:
  - {name: etcd-a.prod.example, host: 10.9.0.1, peer_url: https://10.9.0.1:2380, client_url: https://10.9.0.1:2379}
  - {name: etcd-b.prod.example, host: 10.9.0.2, peer_url: https://10.9.0.2:2380, client_url: https://10.9.0.2:2379}
  - {name: etcd-c.prod.example, host: 10.9.0.3, peer_url: https://10.9.0.3:2380, client_url: https://10.9.0.3:2379}
""")
    root = tmp_path / "kept"
    try:
        res = run_cli("rehearse", "-i", str(inv), "--keep", "--keys", "50", "--subnet", "75", "--root", str(root),
                      "--journal", str(tmp_path / "j"))
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-3000:]
        assert "REHEARSAL PASSED" in out and "pre-backup keys back: 50/50" in out
        assert "lab kept" in out
        lab = Lab.load(root)
        assert [h.name for h in lab.hosts] == ["etcd-a.prod.example", "etcd-b.prod.example", "etcd-c.prod.example"]
        assert all(h.ip.startswith("127.0.75.") for h in lab.hosts)  # never the inventory's real addresses
        assert load_inventory(lab.inventory_path).cluster == "prod-east"
        assert all(lab.healthy(h) for h in lab.hosts)
        assert list((tmp_path / "j").glob("prod-east-*.jsonl"))
        gone = run_cli("lab", "down", "--root", str(root), "--destroy", timeout=60)
        assert gone.returncode == 0 and not root.exists()
    finally:
        if (root / "lab.json").exists():
            Lab.load(root).destroy()


class FakeLab:
    """Enough of Lab for verify(): which hosts are healthy and what each one holds."""

    def __init__(self, names: list[str], data: dict[str, dict[str, str]], healthy: set[str]) -> None:
        self.hosts = [types.SimpleNamespace(name=n) for n in names]
        self.data, self._healthy = data, healthy

    def healthy(self, h: Any) -> bool:
        return h.name in self._healthy

    def member_list(self) -> list[dict[str, Any]]:
        return [{"name": n} for n in self.data]

    def read_prefix(self, prefix: str, host: Any = None) -> dict[str, str]:
        return {k: v for k, v in self.data[host.name].items() if k.startswith(prefix)}


def keys(n: int, prefix: str = rehearse.PRE) -> dict[str, str]:
    return {f"{prefix}{i:05d}": f"value-{i:05d}" for i in range(n)}


def test_verdict() -> None:
    good = FakeLab(["a", "b"], {"a": keys(5), "b": keys(5)}, {"a", "b"})
    v = rehearse.verify(good, 5)  # type: ignore[arg-type]
    assert v.ok and v.pre_found == 5 and v.post_found == 0
    bad = FakeLab(["a", "b"], {"a": {**keys(5), **keys(2, rehearse.POST)}, "b": keys(4)}, {"a"})
    v = rehearse.verify(bad, 5)  # type: ignore[arg-type]
    assert not v.ok
    assert "b is not healthy" in v.problems
    assert "b: 1 pre-backup keys missing or changed" in v.problems
    assert any("2 post-backup keys still present" in p for p in v.problems)


def test_wizard_handoff(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = types.SimpleNamespace(inventory_path=Path("/x/inventory.yaml"), host_tools=True)
    seen: dict[str, Any] = {}

    class RescueApp:
        def __init__(self, **kw: Any) -> None:
            seen.update(kw)

        def run(self) -> None:
            seen["ran"] = True

    monkeypatch.setitem(sys.modules, "etcdrescue.screens.app", types.SimpleNamespace(RescueApp=RescueApp))
    rehearse.run_wizard(lab, "/b", Path("/j"))  # type: ignore[arg-type]
    assert seen == {"inventory_path": "/x/inventory.yaml", "backup": "/b", "rehearsal": True, "journal_dir": Path("/j"),
                    "etcd_tools": None, "ran": True}


def test_refuses_to_wipe_a_directory_that_is_not_a_lab(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("x")
    with pytest.raises(InputError, match="not a lab"):
        rehearse.fresh_root(tmp_path)
    assert (tmp_path / "precious").exists()
