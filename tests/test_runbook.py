"""The runbook renders the very commands the engine runs, in order, and the docs copy is current."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from runbook_reader import expected, read

from etcdrescue import cli
from etcdrescue.checks import RunsWithout
from etcdrescue.documents.helpers import Shelf
from etcdrescue.documents.runbook import fence, render_html, render_markdown
from etcdrescue.inventory.model import load_inventory
from etcdrescue.model import DOWN_SETTLE_ENV, BackupKind, Context, Method
from etcdrescue.plan import Plan, build_plan
from etcdrescue.platform.pod import StaticPod
from etcdrescue.probes import backup_survey, endpoint_health, host_survey

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "example-inventory.yaml"
DOC_BACKUP = "/var/lib/etcd/openshift-backup-pre-upgrade-20240301110000"
DOC_STAMP = "20240301T120000Z"

FIVE = """\
cluster: five
ssh: {user: core, sudo: true}
members:
""" + "".join(
    f"  - {{name: m{i}.example.com, host: 10.1.0.{i}, peer_url: https://10.1.0.{i}:2380, "
    f"client_url: https://10.1.0.{i}:2379}}\n" for i in range(1, 6)
)


def plans() -> list[Plan]:
    """Every shape of plan: both restore methods, file/dir backups, quorum restore, 3 and 5 members."""
    inv3 = load_inventory(EXAMPLE)
    out = [
        build_plan(Context(inv3, DOC_BACKUP, Method.SNAPSHOT_RESTORE, DOC_STAMP)),
        build_plan(Context(inv3, "/root/snap.db", Method.SNAPSHOT_RESTORE, DOC_STAMP, backup_kind=BackupKind.FILE)),
        build_plan(Context(inv3, DOC_BACKUP, Method.FORCE_NEW_CLUSTER, DOC_STAMP)),
        build_plan(Context(inv3.with_seed("master02.example.com"), None, Method.FORCE_NEW_CLUSTER, DOC_STAMP)),
    ]
    return out


@pytest.fixture
def five(tmp_path: Path) -> Path:
    p = tmp_path / "five.yaml"
    p.write_text(FIVE)
    return p


def assert_runs_the_plan(doc: str, plan: Plan) -> None:
    """Read as an operator would (references to a command printed once expanded), the runbook is the engine's
    commands, host for host and in order, each behind its own skip check; the same for every undo."""
    steps, undos = read(doc), read(doc, undo=True)
    for i, step in enumerate(plan.steps, 1):
        assert steps[i] == expected(step.commands, plan.ctx.stamp), f"step {i} {step.key}"
        assert undos[i] == expected(step.undo, plan.ctx.stamp), f"undo of step {i} {step.key}"


@pytest.mark.parametrize("index", range(4))
def test_every_engine_command_appears_in_order(index: int) -> None:
    plan = plans()[index]
    assert_runs_the_plan(render_markdown(plan, date="2024-03-01"), plan)


def test_five_members_with_sudo(five: Path) -> None:
    inv = load_inventory(five)
    plan = build_plan(Context(inv, None, Method.FORCE_NEW_CLUSTER, DOC_STAMP))
    doc = render_markdown(plan, date="2024-03-01")
    assert_runs_the_plan(doc, plan)
    assert "sudo -i" in doc
    assert doc.count("- [ ] Step ") == len(plan.steps) == 16
    for m in inv.members[1:]:
        assert f"| `{m.name}` | `{m.host}:22` | `{m.peer_url}` | `{m.client_url}` | joiner" in doc


def test_structure_gates_undo_and_signoff() -> None:
    plan = plans()[0]
    doc = render_markdown(plan, date="2024-03-01")
    inv = plan.ctx.inv
    assert doc.startswith("# etcd recovery runbook: okd-prod\n")
    assert "- Date: 2024-03-01" in doc
    row = "| 1 | `master01.example.com` | `10.0.0.10:22` | `https://10.0.0.10:2380` | `https://10.0.0.10:2379` | seed"
    assert row in doc
    # pre-flight: the probes of `etcdrescue check`, verbatim
    for m in inv.members:
        assert host_survey(inv.platform, m).script in doc
    # DOWN gate: etcd_down per host with "exit 0"; HEALTHY gate: endpoint health of exactly the gate's members
    stop = doc.split("### Step 1/")[1].split("### Step 2/")[0]
    for m in inv.members:
        assert "\n".join(fence(StaticPod.down(m.client_host, (m.client_port, m.peer_port)))) in stop
    assert "Expected: exit 0" in stop
    learner = doc.split("### Step 6/")[1].split("### Step 7/")[0]
    assert "member add master02.example.com --peer-urls=https://10.0.0.11:2380 --learner" in learner
    assert endpoint_health(inv.platform.tools, [inv.members[0].client_url]).script in learner
    assert '`"isLearner":true` and a `raftAppliedIndex`' in learner
    promoted = doc.split("### Step 7/")[1].split("### Step 8/")[0]
    assert "member promote" in promoted
    assert endpoint_health(inv.platform.tools, [m.client_url for m in inv.members[:2]]).script in promoted
    assert '`"health":true`' in promoted
    for step_no, step in enumerate(plan.steps, 1):
        section = doc.split(f"### Step {step_no}/{len(plan.steps)}: {step.title}\n")[1].split("### Step ")[0]
        assert f"- [ ] Step {step_no} `{step.key}` done" in section
        assert f"Why: {step.why}" in section
        assert f"**Undo step {step_no}:**" in section
        for u in step.undo:  # as printed: a shipped program read from its helper file
            assert "\n".join(fence(Shelf(plan.ctx.stamp).command(u.script))) in section
        if step.undo_note:
            assert step.undo_note in section
    phases = list(dict.fromkeys(step.phase for step in plan.steps))
    signed = [len(part.split("\n## ")) for part in doc.split("Signed off by: ____")]
    assert len(signed) - 1 == 1 + len(phases) + 1, "pre-flight, each phase and the end are signed off"
    assert [h for h in re.findall(r"^## (Phase .*)$", doc, re.M)] == [
        "Phase 1: Stop etcd everywhere", "Phase 2: Rebuild the seed", "Phase 3: Join the other members",
        "Phase 4: Verify"]


def test_restart_gate_checks_the_flag_is_gone() -> None:
    """After dropping --force-new-cluster, health alone could be the old process: the runbook checks the flag."""
    plan = plans()[2]
    step = plan.step("seed-drop-flag")
    assert step.gate is not None and RunsWithout("--force-new-cluster") in step.gate.checks
    doc = render_markdown(plan, date="2024-03-01")
    section = doc.split(f": {step.title}\n")[1].split("### Step ")[0]
    assert "\n".join(fence(StaticPod.runs_without("--force-new-cluster"))) in section
    assert "no longer with `--force-new-cluster`" in section


def test_fence_survives_backticks() -> None:
    block = fence("echo ```x``` `y`")
    assert block[0] == "````sh" and block[-1] == "````"


DOCS = {
    "okd3": (EXAMPLE, DOC_BACKUP, "dir", "runbook", ()),
    "kubeadm": (ROOT / "docs" / "example-inventory-kubeadm.yaml", "/var/lib/etcd/snapshot-20240301.db", "file",
                "runbook-kubeadm", ("--bump-revision", "1000000000")),
}
"""The okd3 example shows the path without a revision bump (3.4.23's etcdctl has none), the kubeadm one the bump."""


def regenerate(fmt: str, profile: str = "okd3") -> tuple[str, dict[str, str]]:
    inventory, backup, kind, name, extra = DOCS[profile]
    args = cli.build_parser().parse_args(
        ["runbook", "-i", str(inventory), "--backup", backup, "--backup-kind", kind, "--stamp", DOC_STAMP,
         "--format", fmt, "-o", str(ROOT / "docs" / f"{name}.{fmt}"), *extra])
    from etcdrescue.commands.runbook import build

    text, book = build(args)
    return text, book.helpers


@pytest.mark.parametrize("profile", list(DOCS))
def test_docs_runbook_is_current(monkeypatch: pytest.MonkeyPatch, profile: str) -> None:
    """Fails when a docs runbook or its helper files are stale: regenerate them with the command in its example
    inventory."""
    monkeypatch.delenv(DOWN_SETTLE_ENV, raising=False)  # the documented default, not the lab's
    name = DOCS[profile][3]
    md, helpers = regenerate("md", profile)
    assert (ROOT / "docs" / f"{name}.md").read_text() == md
    assert (ROOT / "docs" / f"{name}.html").read_text() == regenerate("html", profile)[0]
    shipped = ROOT / "docs" / f"{name}-helpers"
    assert helpers and {p.name: p.read_text() for p in shipped.iterdir()} == helpers


def test_cli_writes_file_and_is_reproducible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rb.md"
    argv = ["runbook", "-i", str(EXAMPLE), "--stamp", DOC_STAMP, "--date", "2030-01-02", "-o", str(out)]
    assert cli.main(argv) == 0
    first = out.read_text()
    assert cli.main(argv) == 0
    assert out.read_text() == first
    assert "- Date: 2030-01-02" in first
    assert "quorum restore from the seed's own data" in first
    assert cli.main(["runbook", "-i", str(EXAMPLE), "--method", "force-new-cluster"]) == 2
    assert "--method applies to a backup" in capsys.readouterr().err


SNAPSHOT = "/var/lib/etcd/snapshot-latest"


def no_ssh(*_: object, **__: object) -> None:
    raise AssertionError("the runbook connected over SSH although --backup-kind was given")


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_backup_kind_decides_the_restore_not_the_name(kind: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot file named without `.db` was rendered with the data-dir restore (`member/snap/db
    --skip-hash-check`), which a run would not execute: the kind now comes from --backup-kind (or the seed)."""
    from etcdrescue.ssh.transport import SSHHost

    monkeypatch.setattr(SSHHost, "connect", no_ssh)
    out = tmp_path / "rb.md"
    argv = ["runbook", "-i", str(EXAMPLE), "--backup", SNAPSHOT, "--backup-kind", kind, "--stamp", DOC_STAMP,
            "-o", str(out)]
    assert cli.main(argv) == 0
    doc = out.read_text()
    plan = build_plan(Context(load_inventory(EXAMPLE), SNAPSHOT, Method.SNAPSHOT_RESTORE, DOC_STAMP,
                              backup_kind=BackupKind(kind)))
    assert_runs_the_plan(doc, plan)
    (restore,) = [c.script for c in plan.step("stop-etcd").commands if "snapshot restore" in c.script]
    survey = "\n".join(fence(backup_survey(SNAPSHOT).script))
    beyond_survey = doc.replace(survey, "")
    if kind == "file":
        assert f"etcdctl snapshot restore {SNAPSHOT} --name master01.example.com" in restore
        assert "--skip-hash-check" not in doc
        assert "member/snap/db" not in beyond_survey
    else:
        assert f"snapshot restore {SNAPSHOT}/member/snap/db --skip-hash-check" in restore
        assert f"snapshot status {SNAPSHOT}/member/snap/db" in beyond_survey


def unreachable_inventory(tmp_path: Path, port: int) -> Path:
    known = tmp_path / "known_hosts"
    known.write_text("")
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"""\
cluster: gone
ssh: {{user: root, port: {port}, known_hosts: {known}}}
members:
""" + "".join(f"  - {{name: m{i}, host: 127.0.159.{i}, peer_url: https://127.0.159.{i}:2380, "
              f"client_url: https://127.0.159.{i}:2379}}\n" for i in range(1, 4)))
    return inv


def test_unreachable_seed_refuses_without_backup_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --backup-kind the seed must answer what the backup is; a guess could print the wrong restore."""
    with socket.socket() as held:  # bound, never listening: a connection to it is refused at once
        held.bind(("127.0.159.1", 0))
        port = held.getsockname()[1]
        inv = unreachable_inventory(tmp_path, port)
        out = tmp_path / "rb.md"
        rc = cli.main(["runbook", "-i", str(inv), "--backup", SNAPSHOT, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.splitlines() == [f"etcdrescue: cannot probe the backup {SNAPSHOT} on m1 (cannot reach "
                                f"127.0.159.1:{port}: Connection refused): give --backup-kind dir|file"]
    assert not out.exists()


def test_backup_kind_needs_a_backup(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["runbook", "-i", str(EXAMPLE), "--backup-kind", "file"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "etcdrescue: --backup-kind describes a backup: give --backup PATH too, or drop --backup-kind"]


class PreCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.pres: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in ("input", "meta", "br", "hr"):
            self.stack.append(tag)
        if tag == "pre":
            self.pres.append("")

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> (open: {self.stack[-3:]})"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "pre" in self.stack:
            self.pres[-1] += data
        if self.stack and self.stack[-1] == "style":
            self.style += data


def test_html_structure_every_command_in_a_pre() -> None:
    plan = plans()[2]
    page = render_html(plan, date="2024-03-01")
    p = PreCollector()
    p.feed(page)
    p.close()
    assert p.stack == [], "unclosed tags"
    pres = {t.rstrip("\n") for t in p.pres}
    for e in expected(plan.commands(), plan.ctx.stamp):
        assert e.script in pres, f"not in a <pre>: {e.script[:100]}"
    for needed in ("@page", "white-space: pre-wrap", "word-break: break-all", "h2.phase", "counter(page)"):
        assert needed in p.style
    assert sum(1 for t, a in p.tags if t == "h2" and a.get("class") == "phase") == 4
    checkboxes = [a for t, a in p.tags if t == "input" and a.get("type") == "checkbox"]
    assert len(checkboxes) >= len(plan.steps)
    assert not [a for t, a in p.tags if t in ("script", "link", "img")], "HTML must be self-contained"


def pdf_pages(pdfinfo: str) -> int:
    found = re.search(r"^Pages:\s+(\d+)", pdfinfo, re.M)
    assert found, pdfinfo
    return int(found.group(1))


PRINTED = {
    "okd3": [str(EXAMPLE), "--backup", DOC_BACKUP, "--backup-kind", "dir"],
    "okd3-force-new-cluster": [str(EXAMPLE), "--backup", DOC_BACKUP, "--backup-kind", "dir", "--method",
                               "force-new-cluster"],
    "kubeadm-bump": [str(DOCS["kubeadm"][0]), "--backup", DOCS["kubeadm"][1], "--backup-kind", "file",
                     "--bump-revision", "1000000000"],
    "kubeadm-control-plane-restart": [str(DOCS["kubeadm"][0]), "--backup", DOCS["kubeadm"][1], "--backup-kind", "file"],
    "kubeadm-force-new-cluster": [str(DOCS["kubeadm"][0]), "--backup", "/var/lib/etcd/copy", "--backup-kind", "dir",
                                  "--method", "force-new-cluster"],
    "okd3-replace": [str(EXAMPLE), "--procedure", "replace", "--member", "master03.example.com"],
    "kubeadm-replace": [str(DOCS["kubeadm"][0]), "--procedure", "replace", "--member", "cp3.example.com"],
    "okd3-reclaim-space": [str(EXAMPLE), "--procedure", "reclaim-space"],
    "kubeadm-reclaim-space": [str(DOCS["kubeadm"][0]), "--procedure", "reclaim-space", "--quota", "8589934592"],
}
"""3-master plans on both platforms; the longest: kubeadm from a data-dir copy with --force-new-cluster (the flag
added and dropped by manifest edits) and six control-plane restarts (revisions go back)."""


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("pdfinfo") and shutil.which("pdftotext")),
                    reason="chromium/poppler-utils not installed")
@pytest.mark.parametrize("shape", list(PRINTED))
def test_printed_runbook_fits_ten_numbered_pages(shape: str, tmp_path: Path) -> None:
    """The PDF of a 3-master runbook is at most 10 A4 pages, each numbered "page N of M" in its footer (CSS
    `@page` margin boxes, which this Chromium prints), and its helper files lie beside it."""
    pdf = tmp_path / "runbook.pdf"
    res = subprocess.run([sys.executable, "-m", "etcdrescue", "runbook", "-i", *PRINTED[shape], "--stamp", DOC_STAMP,
                          "--format", "pdf", "-o", str(pdf)], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    assert "A4" in info
    pages = pdf_pages(info)
    assert 3 <= pages <= 10
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    per_page = text.split("\f")[:pages]
    for n, page in enumerate(per_page, 1):
        assert f"page {n} of {pages}" in page, f"page {n} has no page number"
    title = {"replace": "etcd member replacement", "reclaim-space": "etcd reclaim-space"}
    kind = next((v for k, v in title.items() if shape.endswith(k)), "etcd recovery")
    assert f"{kind} runbook: " in per_page[0] and "Helper files" in per_page[0], per_page[0][:300]
    helpers = tmp_path / "runbook-helpers"
    assert (helpers / "SHA256SUMS").is_file() and any(helpers.glob("host-survey-*.sh"))


def test_ssh_settings_left_to_the_ssh_config_are_named(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(EXAMPLE.read_text().replace("  user: root\n", "").replace("  port: 22\n", "")
                    + "  # (no user or port: the ssh config's)\n")
    inv = load_inventory(path)
    doc = render_markdown(build_plan(Context(inv, None, Method.FORCE_NEW_CLUSTER, DOC_STAMP)), date="2024-03-01")
    assert (f"where the inventory sets no port, user, your ssh config `{inv.ssh.config}` decides them (and any "
            "ProxyJump), as it does for etcdrescue") in doc
    explicit = render_markdown(build_plan(Context(load_inventory(EXAMPLE), None, Method.FORCE_NEW_CLUSTER, DOC_STAMP)),
                               date="2024-03-01")
    assert "your ssh config" not in explicit
