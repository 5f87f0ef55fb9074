"""What the e2e tests check of a run's revision path: the control plane restarted, or the restore bumped."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from etcdrescue.inventory.model import load_inventory
from etcdrescue.lab import Lab

from .helpers import PRE, host_file

RESTORE_FLAGS_LOG = "restore-flags.log"

BUMPING_TOOL = """\
#!/bin/bash
# Test stand-in: Debian's {name} 3.4.23, plus the revision-bump flags of `snapshot restore` that etcdctl >= 3.4.27
# has. They are recorded beside this file and dropped; the rest goes to the real binary.
real={real}
if [[ "${{1:-}} ${{2:-}}" == "snapshot restore" ]]; then
  if [[ " $* " == *" --help "* ]]; then
    "$real" "$@"
    echo "      --bump-revision uint      How much to increase the latest revision after restore"
    echo "      --mark-compacted          Mark the latest revision after restore as the point of scheduled compaction"
    exit 0
  fi
  args=() seen=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --bump-revision) seen+=("$1" "$2"); shift 2 ;;
      --bump-revision=*|--mark-compacted) seen+=("$1"); shift ;;
      *) args+=("$1"); shift ;;
    esac
  done
  echo "${{seen[*]}}" >> "$(dirname "$0")/{log}"
  exec "$real" "${{args[@]}}"
fi
exec "$real" "$@"
"""


def bumping_tools(lab: Lab, directory: Path) -> Path:
    """An `--etcd-tools` directory of a 3.4 lab's release whose restore tool takes the bump flags: only for 3.4.23,
    which lacks them (the lab's 3.5, 3.6 and 3.7 builds have them for real)."""
    assert lab.release.minor == "3.4", "the lab's own 3.5+ etcdutl bumps: test it, not a stand-in"
    directory.mkdir(parents=True, exist_ok=True)
    binaries = lab.release.binaries()
    restorer = "etcdutl" if "etcdutl" in binaries else "etcdctl"
    for name in ("etcdctl", "etcdutl"):
        if name not in binaries:
            continue
        target = directory / name
        if name == restorer:
            target.write_text(BUMPING_TOOL.format(name=name, real=binaries[name], log=RESTORE_FLAGS_LOG))
            target.chmod(0o755)
        else:
            target.symlink_to(binaries[name])
    return directory


def restore_flags(lab: Lab) -> list[str]:
    """The bump flags the seed's restore got, one line per restore."""
    found = list(host_file(lab, 0, "/var/lib/etcdrescue/tools").glob(f"*/{RESTORE_FLAGS_LOG}"))
    return [line for p in found for line in p.read_text().splitlines()]


def journal_events(journal_dir: Path) -> list[dict[str, Any]]:
    (path,) = journal_dir.glob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def done_steps(events: list[dict[str, Any]]) -> list[str]:
    return [e["step"] for e in events if e["event"] == "step_end" and e.get("status") == "done"]


def assert_control_plane_restarted(lab: Lab, journal_dir: Path) -> None:
    """After the verify, every master's API server, then every master's controllers, each gated, and each
    manifest back byte for byte as it was before its restart."""
    events = journal_events(journal_dir)
    start = next(e for e in events if e["event"] == "run_start")
    assert start["revisions"]["path"] == "backwards" and start["revisions"]["restart_control_plane"]
    cp = load_inventory(lab.inventory_path).platform.control_plane
    expected = [f"restart-{stage[0].name}-{h.name}" for stage in cp.stages for h in lab.hosts]
    done = done_steps(events)
    assert [s for s in done if s.startswith("restart-")] == expected
    assert done.index(expected[0]) > done.index("verify")
    gates, step = {}, ""
    for e in events:
        step = e["step"] if e["event"] == "step_start" else step
        if e["event"] == "gate":
            gates[step] = e["ok"]
    assert all(gates[s] for s in expected), gates
    stamp = start["stamp"]
    for i in range(len(lab.hosts)):
        for c in (c for stage in cp.stages for c in stage):
            now = host_file(lab, i, c.manifest).read_bytes()
            assert now == host_file(lab, i, cp.kept(c, stamp)).read_bytes(), (i, c.name)
            bounced = host_file(lab, i, cp.bounced(c, stamp))
            assert bounced.exists() == (not cp.restart), "a manifest bounce leaves its record; master-restart none"
            if bounced.exists():
                assert bounced.read_bytes() == now


def snapshot_revision(lab: Lab, backup: str) -> int:
    """The revision of a backup on the seed: a snapshot file, or an openshift-ansible backup dir's db."""
    db = host_file(lab, 0, backup)
    db = db / "member" / "snap" / "db" if db.is_dir() else db
    res = subprocess.run([str(lab.bin_dir / "etcdutl"), "snapshot", "status", str(db), "-w", "json"],
                         capture_output=True, text=True, timeout=30, check=True)
    return int(json.loads(res.stdout)["revision"])


def assert_really_bumped(lab: Lab, journal: Path, backup_revision: int, bump: int, prefix: str = PRE) -> None:
    """The restore bumped for real: the journal says so, restarts nothing, and etcd itself serves revisions
    past the backup's plus the bump, with the backup's own revision compacted (watchers must relist)."""
    events = journal_events(journal)
    start = next(e for e in events if e["event"] == "run_start")
    assert start["revisions"]["path"] == "bumped" and start["revisions"]["bump"] == bump
    assert not [s for s in done_steps(events) if s.startswith("restart-")]
    restores = [e["script"] for e in events if e["event"] == "command" and e.get("exit") == 0
                and " snapshot restore " in e["script"]]
    assert restores and all(f"--bump-revision {bump} --mark-compacted" in s for s in restores), restores
    for h in lab.hosts:
        c = lab.client(h)
        try:
            revision = int(c.get_response(prefix).header.revision)
        finally:
            c.close()
        assert revision >= backup_revision + bump, (h.name, revision)
    pki = lab.pki
    old = subprocess.run([str(lab.etcdctl), "--endpoints", lab.hosts[1].client_url, "--cacert", str(pki / "ca.crt"),
                          "--cert", str(pki / "client.crt"), "--key", str(pki / "client.key"), "get", prefix,
                          "--prefix", f"--rev={backup_revision}"], capture_output=True, text=True, timeout=30)
    assert old.returncode != 0 and "required revision has been compacted" in old.stderr, old.stdout + old.stderr
