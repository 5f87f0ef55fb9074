"""`etcdrescue diagnose`: what is wrong with each member and which procedure fits. Read-only: no lock, no change."""

from __future__ import annotations

import argparse
import json

from ..errors import EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("diagnose", help="read-only: what is wrong with each member, and which procedure fits")
    p.add_argument("-i", "--inventory", required=True, help="inventory YAML")
    p.add_argument("--etcd-tools", metavar="DIR",
                   help="a directory here holding etcdctl (and etcdutl for 3.5+), copied to every master (kubeadm "
                        "hosts have none): without it their health is unknown")
    p.add_argument("--json", action="store_true", help="print the diagnosis as one JSON document")
    p.set_defaults(func=cmd_diagnose)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from ..documents.diagnosis import diagnosis_lines
    from ..preflight.options import RecoveryOptions
    from ..session import RecoverySession

    session = RecoverySession.open(RecoveryOptions(args.inventory, etcd_tools=args.etcd_tools))
    try:
        found = session.diagnose()
    finally:
        session.close()
    if args.json:
        print(json.dumps(found.record(), indent=2))
    else:
        print(f"Diagnosis of {session.inv.cluster} ({len(session.inv.members)} members):")
        print("\n".join(diagnosis_lines(found)))
    return EXIT_OK
