"""Inventories written for the operator: a draft rendered as commented YAML, proven to load.

`inventory discover` and `inventory from-ansible` both end here. The comments are the point: every
value the tool inferred rather than read says so next to it ("check: taken from the peer URL"), and
what it could not determine is listed at the top, so the operator reviews a short list instead of
the whole file. The text is parsed back with the inventory's own validation before anyone sees it:
a draft that would not load is an error, never a file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml

from ..errors import InventoryError
from .model import Inventory, parse_inventory

PLAIN_RE = re.compile(r"[A-Za-z0-9_/~][A-Za-z0-9_./~@+%:=,\[\]-]*")
"""Characters a value may hold and still be written bare; anything else is written as a JSON string."""


@dataclass(frozen=True)
class SSHDraft:
    user: str | None = "root"
    """None: not written (the inventory's default, or the ssh config's User)."""
    port: int | None = 22
    identity_file: str | None = None
    known_hosts: str | None = None
    sudo: bool = False
    config: str | None = None
    """The ssh config file every member is resolved through."""
    notes: tuple[tuple[str, str], ...] = ()
    """(field, comment) pairs: why a value is what it is."""


@dataclass(frozen=True)
class MemberDraft:
    name: str
    host: str
    peer_url: str
    client_url: str
    port: int | None = None
    """The member's own SSH port, where it differs from `ssh.port`."""
    notes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class InventoryDraft:
    cluster: str
    profile: str
    ssh: SSHDraft
    members: tuple[MemberDraft, ...]
    source: tuple[str, ...] = ()
    """Where the values came from: the first comment lines."""
    unknown: tuple[str, ...] = ()
    """What could not be determined or mapped, one line each (also the command's stderr)."""
    cluster_note: str = ""


def scalar(value: object) -> str:
    """A YAML scalar that reads back as exactly `value` (bare when that is unambiguous)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if PLAIN_RE.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text)


def _comment(text: str) -> str:
    return " ".join(text.split())


def _line(indent: str, key: str, value: object, notes: dict[str, str]) -> str:
    note = notes.get(key)
    return f"{indent}{key}: {scalar(value)}" + (f"  # {_comment(note)}" if note else "")


def render(draft: InventoryDraft) -> str:
    out = [f"# {_comment(s)}" for s in draft.source]
    if draft.unknown:
        out.append("# Check before a recovery: what could not be determined, confirmed or mapped:")
        out += [f"#   - {_comment(u)}" for u in draft.unknown]
    cluster_note = {"cluster": draft.cluster_note} if draft.cluster_note else {}
    out.append(_line("", "cluster", draft.cluster, cluster_note))
    out.append(_line("", "profile", draft.profile, {}))
    ssh, notes = draft.ssh, dict(draft.ssh.notes)
    out.append("ssh:")
    if ssh.config:
        out.append(_line("  ", "config", ssh.config, notes))
    if ssh.user is not None:
        out.append(_line("  ", "user", ssh.user, notes))
    if ssh.port is not None:
        out.append(_line("  ", "port", ssh.port, notes))
    if ssh.identity_file:
        out.append(_line("  ", "identity_file", ssh.identity_file, notes))
    if ssh.known_hosts:
        out.append(_line("  ", "known_hosts", ssh.known_hosts, notes))
    if ssh.sudo:
        out.append(_line("  ", "sudo", True, notes))
    out.append("members:  # the first is the restore seed unless --seed names another")
    for m in draft.members:
        notes = dict(m.notes)
        out.append(_line("  - ", "name", m.name, notes))
        out.append(_line("    ", "host", m.host, notes))
        if m.port is not None and m.port != ssh.port:
            out.append(_line("    ", "port", m.port, notes))
        out.append(_line("    ", "peer_url", m.peer_url, notes))
        out.append(_line("    ", "client_url", m.client_url, notes))
    return "\n".join(out) + "\n"


def verify(text: str, where: str) -> Inventory:
    """The rendered text through the inventory's own validation; InventoryError names the bad field."""
    try:
        return parse_inventory(yaml.safe_load(text), where)
    except InventoryError as exc:
        raise InventoryError(f"the written inventory would not load: {exc}") from None


def write_new(path: str, text: str) -> None:
    """Create `path` with `text`; an existing file (perhaps a hand-kept inventory) is never replaced."""
    try:
        with open(path, "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise InventoryError(f"{path} exists: refusing to overwrite it (choose another -o)") from None
    except OSError as exc:
        raise InventoryError(f"{path}: cannot write: {exc.strerror or exc}") from None
