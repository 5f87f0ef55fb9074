"""fix-flags offline: its pre-flight rules on typed facts, its plan (one stop/rewrite/start per member behind a gate,
then the verify), the journal's record of its rewrites for a resume, the kubeadm-only door, and the diagnosis that
names it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_preflight_judge import GOOD

from etcdrescue.errors import InputError
from etcdrescue.inventory.model import load_inventory
from etcdrescue.model import Context, Method
from etcdrescue.plan import build_plan
from etcdrescue.platform import PLATFORMS, ManifestProblem, Severity
from etcdrescue.platform.kubeadm import flag_rewrite, kubeadm_manifest_problem
from etcdrescue.platform.release import FlagRewrite
from etcdrescue.platform.tools import EtcdTools
from etcdrescue.preflight.options import RecoveryOptions
from etcdrescue.preflight.verdict import HostFacts, PreflightReport, ToolChoice
from etcdrescue.procedures.flags import FIX_FLAGS, NOTHING, judge
from etcdrescue.session import RecoverySession

DATA = Path(__file__).parent / "data" / "kubeadm"
TOOLS = ToolChoice(EtcdTools(PLATFORMS["kubeadm"].default_paths))
OLD_ON_37 = (DATA / "v1.29-init.yaml").read_text().replace("etcd:3.5.10-0", "etcd:3.7.4-0")
REWRITE = FlagRewrite("3.7.4",
                      (("watch-progress-notify-interval", "5s"), ("feature-gates", "InitialCorruptCheck=true")),
                      ("experimental-initial-corrupt-check", "experimental-watch-progress-notify-interval"))


def host(name: str, text: str | None = None, **kw: Any) -> HostFacts:
    """A member as the survey sees it, its manifest problem and rewrite read from `text` as the survey reads them."""
    if text is not None:
        kw |= {"manifest_problem": kubeadm_manifest_problem(text), "flag_rewrite": flag_rewrite(text)}
    return HostFacts(name, **{"reachable": True, "survey": GOOD, **kw})


def verdict(*hosts: HostFacts, resuming: bool = False) -> PreflightReport:
    return judge(hosts, seed="m1", quorum=2, data_dir="/var/lib/etcd", backup_path=None, backup=None,
                 method=Method.SNAPSHOT_RESTORE, resuming=resuming, settings="etcd manifest", tools=TOOLS)


def test_the_manifest_and_its_rewrite_as_the_survey_reads_them() -> None:
    found = kubeadm_manifest_problem(OLD_ON_37)
    assert found is not None and found.flags and found.severity is Severity.ALWAYS
    assert flag_rewrite(OLD_ON_37) == REWRITE


def test_the_members_on_refused_flags_are_fixed_and_their_refusal_does_not_stop_it() -> None:
    r = verdict(host("m1"), host("m2", OLD_ON_37), host("m3", OLD_ON_37))
    assert r.ok, r.problems
    assert r.fixes == (("m2", REWRITE), ("m3", REWRITE))
    assert r.tools is not None and r.verdict.startswith("m2, m3: their etcd refuses the manifest's flags")


def test_every_other_host_problem_still_stops_it() -> None:
    r = verdict(host("m1", manifest_problem=ManifestProblem("malformed YAML", Severity.ALWAYS)),
                host("m2", OLD_ON_37), HostFacts("m3", error="m3: unreachable"))
    assert not r.ok and r.tools is None
    assert r.problems[:2] == ("m1: : malformed YAML", "m3: unreachable")


def test_a_flag_problem_without_a_rewrite_stops_it() -> None:
    """A gate 3.5 has no flag for: the refusal stands, with its reason."""
    text = (DATA / "v1.34-init.yaml").read_text().replace("InitialCorruptCheck=true", "SomethingNew=true")
    text = text.replace("registry.k8s.io/etcd:3.6.5-0", "registry.k8s.io/etcd:3.5.36-0")
    h = host("m2", text)
    assert h.flag_rewrite is not None and h.flag_rewrite.problem
    r = verdict(host("m1"), h)
    assert not r.ok and "`etcdrescue fix-flags` cannot: etcd 3.5.36 has no flag for the feature gate" in r.problems[0]


def test_nothing_to_fix_is_refused_unless_resuming() -> None:
    assert verdict(host("m1"), host("m2")).problems == (NOTHING,)
    assert verdict(host("m1"), host("m2"), resuming=True).ok


def context(tmp_path: Path, fixes: tuple[tuple[str, FlagRewrite], ...]) -> Context:
    return Context(load_inventory(kubeadm_inventory(tmp_path)), None, Method.SNAPSHOT_RESTORE, "20260101T000000Z",
                   fixes=fixes)


def kubeadm_inventory(tmp_path: Path) -> Path:
    data = {"cluster": "unit", "profile": "kubeadm", "ssh": {"user": "root"},
            "members": [{"name": f"m{i}.test", "host": f"10.0.0.{i}", "peer_url": f"https://10.0.0.{i}:2380",
                         "client_url": f"https://10.0.0.{i}:2379"} for i in (1, 2, 3)]}
    p = tmp_path / "kubeadm.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def test_one_step_per_member_to_fix_then_the_verify(tmp_path: Path) -> None:
    plan = build_plan(context(tmp_path, (("m3.test", REWRITE), ("m1.test", REWRITE))), FIX_FLAGS)
    assert [s.key for s in plan.steps] == ["flags-m1.test", "flags-m3.test", "verify"], "inventory order"
    assert plan.mode.startswith("fix flags, one member at a time: m3.test (etcd 3.7.4): "
                                "--experimental-initial-corrupt-check --experimental-watch-progress-notify-interval"
                                " -> --watch-progress-notify-interval=5s --feature-gates=InitialCorruptCheck=true")
    step = plan.step("flags-m3.test")
    assert {c.host for c in step.commands} == {"m3.test"}
    assert all(c.skip_if for c in step.commands if c.mutates), "every change has its already-done probe"
    purposes = [c.purpose for c in step.commands]
    assert purposes[0] == "move the etcd manifest out of the kubelet's pod directory"
    assert "keep a copy of the etcd manifest" in purposes
    assert any(p.startswith("write the manifest with --watch-progress-notify-interval=5s, "
                            "--feature-gates=InitialCorruptCheck=true and without --experimental-initial-corrupt"
                            "-check") for p in purposes)
    assert purposes[-1].startswith("move the etcd manifest back")
    assert step.undo and any("put the original etcd manifest back" in c.purpose for c in step.undo)
    assert ".etcdrescue-20260101T000000Z" in step.undo_note
    assert step.gate is not None and step.gate.members == ("m3.test",)
    assert {type(c).__name__ for c in step.gate.checks} == {"RunsWith", "RunsWithout", "Answers"}
    assert not any(c.mutates for c in plan.step("verify").commands)


def test_the_journal_keeps_the_rewrites_for_a_resume(tmp_path: Path) -> None:
    """A resumed survey may find a manifest already rewritten (no rewrite left to find): the plan comes from what
    the run recorded."""
    from etcdrescue.resume import find_unfinished

    ctx = context(tmp_path, (("m2.test", REWRITE),))
    plan = build_plan(ctx, FIX_FLAGS)
    journal = tmp_path / "j"
    journal.mkdir()
    events = [{"event": "run_start", "cluster": "unit", "procedure": "fix-flags", "steps": [s.key for s in plan.steps],
               "mode": plan.mode, "seed": "m1.test", "stamp": ctx.stamp, "backup": None, "method": "snapshot-restore",
               "backup_kind": "dir", "learners": True, "fixes": {"m2.test": REWRITE.record()}},
              {"event": "step_end", "step": "tools", "status": "done"}]
    (journal / f"unit-{ctx.stamp}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    u = find_unfinished(journal, "unit")
    assert u is not None and u.fixes == (("m2.test", REWRITE),)
    session = RecoverySession.open(RecoveryOptions(kubeadm_inventory(tmp_path), procedure="fix-flags"))
    session.resume(u)
    from etcdrescue.model import BackupKind, Revisions

    assert session.context(BackupKind.DIR, Revisions()).fixes == (("m2.test", REWRITE),)


def test_okd3_is_refused_before_any_connection(tmp_path: Path) -> None:
    from test_resume_unit import inventory

    with pytest.raises(InputError, match="fix-flags is for kubeadm control planes; this inventory's profile is okd3"):
        RecoverySession.open(RecoveryOptions(inventory(tmp_path), procedure="fix-flags"))


def test_okd3_settings_refuse_a_drop() -> None:
    with pytest.raises(ValueError, match="never dropped"):
        PLATFORMS["okd3"].build(PLATFORMS["okd3"].default_paths).settings.set("m1", {"name": "m1"}, ("x",))


def test_the_wizard_offers_the_procedure_the_diagnosis_names() -> None:
    import datetime as dt

    from etcdrescue.diagnose.verdict import Diagnosis, Remedy
    from etcdrescue.screens.diagnose import offered

    d = Diagnosis(Remedy.FIX_FLAGS, ("m2",), (), (), {}, (), None, dt.datetime.now(dt.UTC))
    choice = offered(d)
    assert choice is not None and choice.procedure == "fix-flags" and choice.target is None
    assert offered(Diagnosis(Remedy.RENEW_CERTS, ("m2",), (), (), {}, (), None, dt.datetime.now(dt.UTC))) is None


def test_its_runbook_prints_the_commands_the_engine_runs(tmp_path: Path) -> None:
    """The plan renders as every procedure's does: each engine command, in order, behind its skip check; each
    undo; the hand check of the refused flags and the gate's checks with their own scripts."""
    from test_runbook import assert_runs_the_plan

    from etcdrescue.documents.runbook import render_markdown

    plan = build_plan(context(tmp_path, (("m2.test", REWRITE),)), FIX_FLAGS)
    doc = render_markdown(plan, date="2026-01-01")
    assert doc.startswith("# etcd fix-flags runbook: unit")
    assert_runs_the_plan(doc, plan)
    assert "flag provided but not defined: -experimental-initial-corrupt-check" in doc
    assert "--feature-gates=InitialCorruptCheck=true" in doc and "endpoint status" in doc


# --- recover --fix-flags -----------------------------------------------------------------------------------------


def recover_verdict(*hosts: HostFacts, fix_flags: bool) -> PreflightReport:
    from etcdrescue.preflight.verdict import judge as recover_judge

    return recover_judge(hosts, seed="m1", quorum=2, data_dir="/var/lib/etcd", backup_path=None, backup=None,
                         method=Method.FORCE_NEW_CLUSTER, settings="etcd manifest", tools=TOOLS, fix_flags=fix_flags)


def test_recover_refuses_refused_flags_unless_it_rewrites_them() -> None:
    hosts = (host("m1"), host("m2", OLD_ON_37), host("m3", OLD_ON_37))
    refused = recover_verdict(*hosts, fix_flags=False)
    assert not refused.ok and "`etcdrescue fix-flags` rewrites them" in refused.problems[0]
    assert refused.fixes == ()
    fixing = recover_verdict(*hosts, fix_flags=True)
    assert fixing.ok, fixing.problems
    assert fixing.fixes == (("m2", REWRITE), ("m3", REWRITE))
    assert any(w.startswith("m2: etcd 3.7.4 refuses its manifest's flags: --fix-flags rewrites them") for w in
               fixing.warnings)
    assert "nothing to rewrite" in " ".join(recover_verdict(host("m1"), host("m2"), host("m3"),
                                                            fix_flags=True).warnings)


def test_recover_with_fixes_rewrites_in_its_own_settings_edits(tmp_path: Path) -> None:
    """The seed's and each joiner's one verified manifest edit carries the rewrite of that member: no extra start."""
    from etcdrescue.procedures import QUORUM_RECOVERY

    inv = load_inventory(kubeadm_inventory(tmp_path))
    ctx = Context(inv, None, Method.FORCE_NEW_CLUSTER, "20260101T000000Z",
                  fixes=(("m1.test", REWRITE), ("m3.test", REWRITE)))
    plan = build_plan(ctx, QUORUM_RECOVERY)
    assert "m1.test's flags rewritten for etcd 3.7.4" in plan.mode and "m2.test's flags" not in plan.mode

    def writes(key: str) -> list[str]:
        return [c.purpose for c in plan.step(key).commands if c.purpose.startswith("write the manifest")]

    assert writes("seed-conf") == [
        "write the manifest with --name=m1.test, --initial-cluster=m1.test=https://10.0.0.1:2380, "
        "--initial-cluster-state=new, --initial-advertise-peer-urls=https://10.0.0.1:2380, "
        "--watch-progress-notify-interval=5s, --feature-gates=InitialCorruptCheck=true and without "
        "--experimental-initial-corrupt-check, --experimental-watch-progress-notify-interval"]
    assert all("without" in w for w in writes("join-m3.test"))
    assert not any("without" in w for w in writes("join-m2.test"))
    assert build_plan(replace(ctx, fixes=()), QUORUM_RECOVERY).step("seed-conf").commands == build_plan(
        Context(inv, None, Method.FORCE_NEW_CLUSTER, "20260101T000000Z"), QUORUM_RECOVERY).step("seed-conf").commands


def test_fix_flags_goes_only_with_the_quorum_recovery(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--fix-flags goes with the quorum recovery, not fix-flags"):
        RecoverySession.open(RecoveryOptions(kubeadm_inventory(tmp_path), procedure="fix-flags", fix_flags=True))
    session = RecoverySession.open(RecoveryOptions(kubeadm_inventory(tmp_path), fix_flags=True))
    rules: Any = session.rules
    assert rules.keywords == {"fix_flags": True}


def test_a_forced_seed_whose_flags_are_rewritten_gets_its_rewritten_manifest_back(tmp_path: Path) -> None:
    """After its one start with `--force-new-cluster` the seed gets back the manifest kept before the flag went in:
    the original bytes would carry the refused flags again, so with a rewrite it is the manifest as seed-conf
    left it (kept under its own name; the original stays aside for the undo)."""
    from etcdrescue.procedures import QUORUM_RECOVERY

    inv = load_inventory(kubeadm_inventory(tmp_path))
    stamp = "20260101T000000Z"
    fixed = build_plan(Context(inv, None, Method.FORCE_NEW_CLUSTER, stamp, fixes=(("m1.test", REWRITE),)),
                       QUORUM_RECOVERY)
    plain = build_plan(Context(inv, None, Method.FORCE_NEW_CLUSTER, stamp), QUORUM_RECOVERY)
    disabled = "/etc/kubernetes/manifests-disabled/etcd.yaml"

    def kept(plan: Any) -> list[str]:
        return [c.script for c in plan.step("seed-start").commands if c.purpose.startswith("keep the original")]

    assert kept(fixed) == [f"cp -p {disabled} {disabled}.unforced-{stamp}"]
    assert kept(plain) == [f"cp -p {disabled} {disabled}.etcdrescue-{stamp}"]
    back = " ".join(c.script for c in fixed.step("seed-drop-flag").commands)
    assert f"{disabled}.unforced-{stamp}" in back and f"{disabled}.etcdrescue-{stamp}" not in back


def test_a_value_the_edit_cannot_write_is_a_problem_not_a_plan() -> None:
    """A value read off the host that the awk edit would refuse (a blank in a quoted item) never reaches a plan."""
    text = OLD_ON_37.replace("- --experimental-watch-progress-notify-interval=5s",
                             "- '--experimental-watch-progress-notify-interval=5 s'")
    h = host("m2", text)
    assert h.flag_rewrite is not None and h.flag_rewrite.problem.startswith(
        "the rewrite cannot be written: etcd flag value must be literal")
    assert h.manifest_problem is not None and not h.manifest_problem.flags
    r = verdict(host("m1"), h)
    assert not r.ok and "`etcdrescue fix-flags` cannot: the rewrite cannot be written" in r.problems[0]
