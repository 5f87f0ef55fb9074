"""Record real etcdctl / survey output from the lab into tests/data/ (needs root; ~30 s).

    python tests/data/record.py            # subnet 49 by default
    python tests/data/record.py --subnet 48

Every script is the exact `Fact.script` from etcdrescue.probes, run inside a lab master
with `lab.exec` (the same bash the tool reaches over SSH). Only stdout is saved; exit codes
and ground truth taken independently (via the etcd gRPC client, not etcdctl) go to meta.json,
so the parser tests compare the parsers against something other than themselves.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from etcdrescue import probes
from etcdrescue.inventory.model import load_inventory
from etcdrescue.lab import Lab

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subnet", type=int, default=49)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    meta: dict[str, Any] = {"exit": {}}
    out: Path = args.out

    with tempfile.TemporaryDirectory(prefix="etcdrescue-record-") as tmp:
        lab = Lab(Path(tmp) / "lab", 3, subnet=args.subnet)
        try:
            lab.up(timeout=60)
            inv = load_inventory(lab.inventory_path)
            tools = inv.platform.tools
            urls = [m.client_url for m in inv.members]

            def record(name: str, script: str, host: int = 0) -> str:
                res = lab.exec(host, script)
                (out / name).write_text(res.stdout)
                meta["exit"][name] = res.returncode
                print(f"{name}: exit {res.returncode}, {len(res.stdout)} bytes", file=sys.stderr)
                return res.stdout

            def survey(i: int) -> str:
                m = inv.members[i]
                return probes.host_survey(inv.platform, m).script

            # -- healthy 3-member cluster ------------------------------------------------------
            lab.put_keys("/record/", 5)
            members = lab.member_list()
            meta["members"] = {m["name"]: {"id": m["id"], "peer_urls": m["peer_urls"],
                                           "client_urls": m["client_urls"]} for m in members}
            meta["client_urls"] = urls
            record("healthy_member_list.json", probes.member_list(tools, urls[:1]).script)
            record("healthy_endpoint_status.json", probes.endpoint_status(tools, urls).script)
            record("healthy_endpoint_health.json", probes.endpoint_health(tools, urls).script)
            record("host_survey_running.txt", survey(0))

            # -- backups ---------------------------------------------------------------------
            backup = lab.backup_openshift(0)
            meta["backup_dir"] = backup
            record("backup_snapshot_status.json", probes.snapshot_status(tools, backup + "/member/snap/db").script)
            record("backup_survey_dir.txt", probes.backup_survey(backup).script)
            record("backup_survey_file.txt", probes.backup_survey(backup + "/member/snap/db").script)
            record("backup_survey_missing.txt", probes.backup_survey("/var/lib/etcd/no-such-backup").script)

            # -- a member added but never started ------------------------------------------------
            new_peer = f"https://127.0.{args.subnet}.4:2380"
            add_script = tools.ctl(urls[:1], "member", "add", "master04.lab.example",
                                 f"--peer-urls={new_peer}", "-w", "json")
            deadline = time.monotonic() + 30
            # etcd refuses reconfiguration ("unhealthy cluster") until every member has been connected 5 s
            while (add := lab.exec(0, add_script)).returncode != 0 and "unhealthy cluster" in add.stderr:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert add.returncode == 0, add.stderr
            meta["unstarted"] = {"id": int(json.loads(add.stdout)["member"]["ID"]), "peer_url": new_peer}
            record("unstarted_member_list.json", probes.member_list(tools, urls[:1]).script)
            rm = lab.exec(0, tools.ctl(urls[:1], "member", "remove", f"{meta['unstarted']['id']:x}"))
            assert rm.returncode == 0, rm.stderr

            # -- etcd stopped on one host (manifest moved away) -----------------------------------
            lab.stop_etcd(2)
            record("host_survey_stopped.txt", survey(2), host=2)
            lab.start_etcd(2)

            # -- lost quorum: two of three members broken ---------------------------------------
            lab.break_quorum([1, 2])
            deadline = time.monotonic() + 30
            status_script = probes.endpoint_status(tools, urls).script
            while True:  # wait until the survivor has noticed it lost its leader
                st = probes.parse_endpoint_status(lab.exec(0, status_script).stdout)
                if st and all(s.leader is None for s in st):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"survivor still reports a leader: {st}")
                time.sleep(0.5)
            record("noquorum_endpoint_status.json", status_script)
            record("noquorum_endpoint_health.json", probes.endpoint_health(tools, urls).script)
            record("noquorum_member_list.json", probes.member_list(tools, urls[:1]).script)
            record("host_survey_broken.txt", survey(1), host=1)
        finally:
            lab.down()

    # lab paths differ per run; keep only what the tests compare against
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
