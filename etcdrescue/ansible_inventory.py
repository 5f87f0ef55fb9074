"""An openshift-ansible inventory as ours: `etcdrescue inventory from-ansible HOSTS_FILE`.

Reading is ansible-core's: its `ini` and `yaml` inventory plugins parse the file exactly as
`ansible-playbook` did when the cluster was installed (host ranges, `host:port`, `:children`,
`:vars`, quoting), and group variables are merged by Ansible's own precedence
(`get_group_vars`, then host variables). Only those two plugins are used: the `script` plugin
would run an executable file, `auto` would load any plugin a YAML file names. Vars plugins
(`group_vars/`, `host_vars/` beside the file) are not run; the file says so when they exist.

Mapping (`to_draft`, pure): the members are the `[etcd]` group (else `[masters]`); a member's
name is `openshift_hostname` or the inventory hostname; its peer and client URLs are
https://<etcd_ip | openshift_ip | ansible_host>:2380/2379 (`etcd_peer_port`/`etcd_client_port`);
SSH goes to `ansible_host:ansible_port` as `ansible_user`, with `ansible_ssh_private_key_file` and,
for a user other than root, sudo when `ansible_become` is true. Every host left out and every
variable not used is reported, one line each.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .inventory import CLUSTER_RE, NAME_RE, PATH_RE, USER_RE, valid_host
from .inventory_writer import InventoryDraft, MemberDraft, SSHDraft, render, verify
from .platform.profiles import OKD3

MAGIC = {"inventory_file", "inventory_dir", "inventory_hostname", "inventory_hostname_short", "group_names"}
"""Variables Ansible sets itself on every host."""
ADDRESS_VARS = ("etcd_ip", "openshift_ip", "ansible_host")
USED = {*ADDRESS_VARS, "openshift_hostname", "ansible_ssh_host", "ansible_port", "ansible_ssh_port", "ansible_user",
        "ansible_ssh_user", "ansible_ssh_private_key_file", "ansible_become", "ansible_become_user",
        "ansible_become_method", "etcd_peer_port", "etcd_client_port", "openshift_clusterid", "openshift_release"}
TRUE, FALSE = {"true", "yes", "on", "1", "y", "t"}, {"false", "no", "off", "0", "n", "f"}


@dataclass(frozen=True)
class AnsibleHost:
    name: str
    groups: tuple[str, ...]
    vars: Mapping[str, Any]
    """Group variables merged by Ansible's precedence, then the host's own."""


@dataclass(frozen=True)
class AnsibleInventory:
    source: str
    hosts: tuple[AnsibleHost, ...]
    groups: Mapping[str, tuple[str, ...]]
    """Group name -> its hosts (children's included), in the file's order."""
    vars_dirs: tuple[str, ...] = ()
    """`group_vars`/`host_vars` directories beside the file (not read)."""


@dataclass(frozen=True)
class Conversion:
    draft: InventoryDraft
    text: str


_tmp: tempfile.TemporaryDirectory[str] | None = None


def _ansible_modules() -> tuple[Any, Any, Any, Any, Any]:
    """ansible-core, imported on first use (0.5 s); its local temp dir is ours, not ~/.ansible.

    Its display singleton, made at import, asks curses for colours when stdout is a terminal, runs
    `cowsay -l` if cowsay is installed, and wraps stdout and stderr; under the wizard those are
    Textual's stand-ins, which it cannot wrap (it warns onto the screen) and curses cannot use.
    So: no colour, no cows, and the process's own streams while it is made.
    """
    global _tmp
    if "ansible" not in sys.modules:
        _tmp = tempfile.TemporaryDirectory(prefix="etcdrescue-ansible-")
        os.environ["ANSIBLE_LOCAL_TEMP"] = _tmp.name
        os.environ["ANSIBLE_NOCOLOR"] = "1"
        os.environ["ANSIBLE_NOCOWS"] = "1"
    with contextlib.redirect_stdout(sys.__stdout__), contextlib.redirect_stderr(sys.__stderr__):
        from ansible.errors import AnsibleError
        from ansible.inventory.data import InventoryData
        from ansible.inventory.helpers import get_group_vars
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import inventory_loader
        from ansible.utils.display import Display

        Display()

    return AnsibleError, InventoryData, get_group_vars, DataLoader, inventory_loader


def read(path: Path) -> AnsibleInventory:
    """Parse an Ansible INI or YAML inventory file with ansible-core's own plugins."""
    p = path.expanduser().absolute()
    if not p.is_file():
        raise InputError(f"{path}: no such file")
    ansible_error, inventory_data, get_group_vars, data_loader, loader = _ansible_modules()
    plugin_name = "yaml" if p.suffix in (".yml", ".yaml", ".json") else "ini"
    data = inventory_data()
    try:
        loader.get(plugin_name).parse(data, data_loader(), str(p), cache=False)
        data.reconcile_inventory()
    except ansible_error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not an Ansible {plugin_name.upper()} inventory: {first}") from None
    hosts = tuple(
        AnsibleHost(h.name, tuple(g.name for g in h.get_groups() if g.name != "all"),
                    {str(k): _plain(v) for k, v in {**get_group_vars(h.get_groups()), **h.get_vars()}.items()})
        for h in data.hosts.values())
    groups = {g.name: tuple(h.name for h in g.get_hosts()) for g in data.groups.values()}
    dirs = tuple(str(p.parent / d) for d in ("group_vars", "host_vars") if (p.parent / d).is_dir())
    return AnsibleInventory(str(path), hosts, groups, dirs)


def _plain(value: Any) -> Any:
    """ansible-core 2.19 tags its values (str/int subclasses): plain types for everything after."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def convert(path: Path, cluster: str | None = None, known_hosts: str | None = None) -> Conversion:
    draft = to_draft(read(path), cluster, known_hosts)
    text = render(draft)
    verify(text, f"inventory converted from {path}")
    return Conversion(draft, text)


def _bool(value: Any) -> bool | None:
    text = str(value).strip().lower()
    return True if text in TRUE else False if text in FALSE else None


def _is_templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class _Mapper:
    """Collects the lines of what could not be mapped while the draft is built."""

    def __init__(self) -> None:
        self.unknown: list[str] = []

    def value(self, host: AnsibleHost, key: str) -> Any:
        """The variable, or None (reported) when Ansible would still have to template it."""
        v = host.vars.get(key)
        if v is not None and _is_templated(v):
            self.unknown.append(f"{host.name}: {key}={v} is a template (not evaluated here): not used")
            return None
        return v

    def address(self, host: AnsibleHost) -> tuple[str, str] | None:
        """(address for etcd's URLs, where it came from)."""
        for key in ADDRESS_VARS:
            v = self.value(host, key)
            if v is None:
                continue
            if valid_host(str(v)):
                return str(v), key
            self.unknown.append(f"{host.name}: {key}={v!s} is not a host name or address: not used")
        if valid_host(host.name):
            return host.name, ""
        return None

    def port(self, host: AnsibleHost, *keys: str) -> int | None:
        for key in keys:
            v = self.value(host, key)
            if v is None:
                continue
            if str(v).isdigit() and 1 <= int(v) <= 65535:
                return int(v)
            self.unknown.append(f"{host.name}: {key}={v!s} is not a port number: not used")
        return None


def _most_common(values: dict[str, Any], what: str, default: Any, unknown: list[str]) -> Any:
    """One setting for all members (our inventory has one `ssh:`); a disagreement is reported."""
    counts = Counter(v for v in values.values() if v is not None)
    if not counts:
        return default
    chosen = counts.most_common(1)[0][0]
    others = sorted(h for h, v in values.items() if v is not None and v != chosen)
    if others:
        unknown.append(f"{what} differs between members ({', '.join(others)} differ from {chosen}): "
                       f"{chosen} is used for all")
    return chosen


def _version(text: str) -> tuple[int, int] | None:
    parts = text.strip().lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def to_draft(inv: AnsibleInventory, cluster: str | None = None, known_hosts: str | None = None) -> InventoryDraft:
    m = _Mapper()
    by_name = {h.name: h for h in inv.hosts}
    group = "etcd" if inv.groups.get("etcd") else "masters" if inv.groups.get("masters") else ""
    if not group:
        raise InputError(f"{inv.source}: no [etcd] or [masters] group with hosts: not an openshift-ansible inventory?")
    if group == "masters":
        m.unknown.append("no [etcd] group: the [masters] hosts are taken as the etcd members")
    if "OSEv3" not in inv.groups:
        m.unknown.append("no [OSEv3] group: not an openshift-ansible inventory? mapped with its rules anyway")
    members_hosts = [by_name[n] for n in inv.groups[group]]
    for h in inv.hosts:
        if h.name not in inv.groups[group]:
            m.unknown.append(f"host {h.name} ({', '.join(h.groups) or 'no group'}): not an etcd member: left out")
    for d in inv.vars_dirs:
        m.unknown.append(f"{d}: variables there are not read: check they change nothing mapped here")

    users = {h.name: m.value(h, "ansible_user") or m.value(h, "ansible_ssh_user") for h in members_hosts}
    keys = {h.name: m.value(h, "ansible_ssh_private_key_file") for h in members_hosts}
    ports = {h.name: m.port(h, "ansible_port", "ansible_ssh_port") for h in members_hosts}
    user = str(_most_common(users, "ansible_user", "root", m.unknown))
    if not USER_RE.fullmatch(user):
        m.unknown.append(f"ansible_user={user} is not a user name etcdrescue accepts: root is used")
        user = "root"
    key = _most_common(keys, "ansible_ssh_private_key_file", None, m.unknown)
    if key is not None:
        key = str(Path(str(key)).expanduser())
        if not key.startswith("/") or not PATH_RE.fullmatch(key):
            m.unknown.append(f"ansible_ssh_private_key_file={key} is not an absolute plain path: not used")
            key = None
    counted = Counter(p for p in ports.values() if p is not None)
    ssh_port = counted.most_common(1)[0][0] if counted else 22  # the others keep their own `port:`
    sudo = _sudo(m, members_hosts, user)
    ssh_notes = [] if any(users.values()) else [("user", "check: no ansible_user: Ansible's default, root")]

    members = []
    for h in members_hosts:
        member = _member(m, h, ssh_port, ports[h.name])
        if member is not None:
            members.append(member)
    for var in sorted({v for h in members_hosts for v in h.vars} - USED - MAGIC):
        holders = [h.name for h in members_hosts if var in h.vars]
        on = "every member" if len(holders) == len(members_hosts) else ", ".join(holders)
        m.unknown.append(f"variable {var} (on {on}): not used")
    release = next((str(h.vars["openshift_release"]) for h in members_hosts if "openshift_release" in h.vars), "")
    if release and (_version(release) or (3, 10)) < (3, 10):
        m.unknown.append(f"openshift_release={release}: before 3.10 etcd ran as a systemd unit, not the static pod "
                         f"the {OKD3} profile expects")
    if not members:
        raise InputError(f"{inv.source}: none of the [{group}] hosts could be mapped: " + "; ".join(m.unknown[-3:]))
    name = cluster or _cluster(members_hosts, members)
    return InventoryDraft(
        cluster=name, profile=OKD3,
        ssh=SSHDraft(user=user, port=ssh_port, identity_file=key, known_hosts=known_hosts, sudo=sudo,
                     notes=tuple(ssh_notes)),
        members=tuple(members),
        source=(f"Converted by `etcdrescue inventory from-ansible` from {inv.source} "
                f"(openshift-ansible, group [{group}]): profile {OKD3} (OKD/OpenShift 3.10+).",),
        unknown=tuple(m.unknown),
        cluster_note="" if cluster else _cluster_note(members_hosts, name),
    )


def _cluster_note(hosts: list[AnsibleHost], name: str) -> str:
    if any(str(h.vars.get("openshift_clusterid")) == name for h in hosts):
        return "from openshift_clusterid; it names the journal and is typed to confirm"
    return "check: chosen by etcdrescue; it names the journal and is typed to confirm"


def _sudo(m: _Mapper, hosts: list[AnsibleHost], user: str) -> bool:
    become = {h.name: _bool(m.value(h, "ansible_become")) for h in hosts if "ansible_become" in h.vars}
    for h in hosts:
        become_user = m.value(h, "ansible_become_user")
        if become_user not in (None, "root"):
            m.unknown.append(f"{h.name}: ansible_become_user={become_user}: etcdrescue becomes root only: not used")
        method = m.value(h, "ansible_become_method")
        if method not in (None, "sudo"):
            m.unknown.append(f"{h.name}: ansible_become_method={method}: only sudo is supported: not used")
    wanted = _most_common(become, "ansible_become", False, m.unknown)
    if user == "root":
        return False
    if not wanted:
        m.unknown.append(f"ssh user {user} is not root and ansible_become is not set: etcdrescue needs root "
                         "(set ssh.sudo: true, or log in as root)")
    return bool(wanted)


def _member(m: _Mapper, h: AnsibleHost, ssh_port: int, own_port: int | None) -> MemberDraft | None:
    name = m.value(h, "openshift_hostname")
    notes: list[tuple[str, str]] = []
    if name is None or not NAME_RE.fullmatch(str(name)):
        if name is not None:
            m.unknown.append(f"{h.name}: openshift_hostname={name} is not a member name: not used")
        name = h.name
        notes.append(("name", "check: the inventory hostname; etcd's is ETCD_NAME in /etc/etcd/etcd.conf"))
    if not NAME_RE.fullmatch(str(name)):
        m.unknown.append(f"host {h.name}: not a name etcdrescue accepts as a member name: left out")
        return None
    found = m.address(h)
    if found is None:
        m.unknown.append(f"host {h.name}: no usable etcd_ip, openshift_ip or ansible_host: left out")
        return None
    address, key = found
    url_host = f"[{address}]" if _is_ipv6(address) else address
    peer_port = m.port(h, "etcd_peer_port") or 2380
    client_port = m.port(h, "etcd_client_port") or 2379
    if not key:
        notes.append(("peer_url", "check: no etcd_ip/openshift_ip/ansible_host: the inventory hostname; etcd's own "
                                  "is ETCD_INITIAL_ADVERTISE_PEER_URLS"))
    ssh_host = m.value(h, "ansible_host") or m.value(h, "ansible_ssh_host") or h.name
    if not valid_host(str(ssh_host)):
        m.unknown.append(f"host {h.name}: SSH address {ssh_host} is not a host name or address: left out")
        return None
    return MemberDraft(name=str(name), host=str(ssh_host), port=own_port if own_port != ssh_port else None,
                       peer_url=f"https://{url_host}:{peer_port}", client_url=f"https://{url_host}:{client_port}",
                       notes=tuple(notes))


def _is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError:
        return False


def _cluster(hosts: list[AnsibleHost], members: list[MemberDraft]) -> str:
    ids = {str(h.vars["openshift_clusterid"]) for h in hosts if "openshift_clusterid" in h.vars}
    if len(ids) == 1 and CLUSTER_RE.fullmatch(next(iter(ids))):
        return next(iter(ids))
    domains = {x.name.partition(".")[2] for x in members}
    domain = domains.pop() if len(domains) == 1 else ""
    return domain if domain and CLUSTER_RE.fullmatch(domain) else "openshift"
