"""`etcdrescue inventory discover|from-ansible`: write an inventory instead of typing one.

Both print the commented YAML (or write it to `-o`, never over an existing file) and list on stderr,
one line each, what they could not determine or map; the same lines are comments in the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EXIT_OK
from ..platform.profiles import PROFILES

if TYPE_CHECKING:
    from ..inventory_writer import InventoryDraft


def register(sub: Any) -> None:
    inv = sub.add_parser("inventory", help="write an inventory: discover it from a master, or import Ansible's")
    cmds = inv.add_subparsers(dest="inventory_cmd", required=True)

    d = cmds.add_parser("discover", help="read the cluster's members off one reachable master (read-only)")
    d.add_argument("host", help="SSH address of one master")
    d.add_argument("--profile", choices=PROFILES, help="platform (default: detected from its files)")
    d.add_argument("--ssh-config", metavar="FILE",
                   help="OpenSSH client config: HOST and every member are resolved through it (Host patterns, "
                        "User, Port, IdentityFile, ProxyJump), and the inventory names it (default ~/.ssh/config "
                        "where it exists, not written)")
    d.add_argument("--user", help="SSH user (default: the ssh config's, else root)")
    d.add_argument("--port", type=int, help="SSH port (default: the ssh config's, else 22)")
    d.add_argument("--identity", metavar="FILE", help="SSH private key (default: the ssh config's, or the agent)")
    d.add_argument("--known-hosts", metavar="FILE",
                   help="known_hosts with the master's key (default ~/.ssh/known_hosts; unknown keys are refused)")
    d.add_argument("--cluster", help="cluster name to write (default: the members' domain)")
    d.add_argument("-o", "--output", type=Path, help="write here (default: stdout); an existing file is kept")
    d.set_defaults(func=cmd_discover)

    a = cmds.add_parser("from-ansible", help="convert an openshift-ansible inventory (INI or YAML)")
    a.add_argument("hosts_file", type=Path, help="the Ansible inventory (e.g. /etc/ansible/hosts)")
    a.add_argument("--cluster", help="cluster name to write (default: openshift_clusterid, else the hosts' domain)")
    a.add_argument("--known-hosts", metavar="FILE",
                   help="known_hosts to write into the inventory (default: the inventory's, ~/.ssh/known_hosts)")
    a.add_argument("-o", "--output", type=Path, help="write here (default: stdout); an existing file is kept")
    a.set_defaults(func=cmd_from_ansible)


def _local(path: str | None) -> str | None:
    return str(Path(path).expanduser().absolute()) if path else None


def emit(draft: InventoryDraft, text: str, output: Path | None) -> int:
    from ..inventory_writer import write_new

    for line in draft.unknown:
        print(f"etcdrescue: check: {line}", file=sys.stderr)
    if output is None:
        sys.stdout.write(text)
    else:
        write_new(str(output), text)
        print(f"inventory written to {output} ({len(draft.members)} members)", file=sys.stderr)
    return EXIT_OK


def cmd_discover(args: argparse.Namespace) -> int:
    from ..discover import Target, discover
    from ..session import PASSPHRASE_ENV

    given = {"user": args.user, "port": args.port, "identity_file": args.identity, "known_hosts": args.known_hosts}
    target = Target(host=args.host, port=args.port or 22, user=args.user or "root",
                    identity_file=_local(args.identity), known_hosts=_local(args.known_hosts) or "~/.ssh/known_hosts",
                    ssh_config=_local(args.ssh_config),
                    explicit=frozenset(k for k, v in given.items() if v is not None))
    found = discover(target, args.profile, args.cluster, passphrase=os.environ.get(PASSPHRASE_ENV))
    return emit(found.draft, found.text, args.output)


def cmd_from_ansible(args: argparse.Namespace) -> int:
    from ..ansible_inventory import convert

    found = convert(args.hosts_file, args.cluster, _local(args.known_hosts))
    return emit(found.draft, found.text, args.output)
