"""An inventory read off one reachable master: `etcdrescue inventory discover HOST`.

Read-only: one SSH connection (host keys from known_hosts, unknown ones refused), scripts that
only `test`, `cat` and ask etcdctl. What it reads:

- the platform, from which settings file exists (`Platform.settings.readable_script`), unless given;
- etcd's settings through the platform (`settings.values_script` / `parse_values`): the member's
  name, its client URLs and the initial cluster (`name=peer-url,...`);
- the live member list, where the host has etcdctl (`EtcdTools`) and its etcd answers, with short
  timeouts; and whether the cluster has a quorum (endpoint health). A member without quorum still
  answers `member list` from its own view: it is used, and the file says the quorum is lost.

The initial cluster is what the member was started with: on kubeadm the first node lists only
itself, a joiner the members at its join. When the live list is missing, that is the member list,
and the file says so. SSH addresses of the other members are the host parts of their peer URLs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from ..command import Raw, q
from ..errors import InputError
from ..platform import PLATFORMS, Platform
from ..platform.tools import EtcdTools, find_script, image_script, matching_image, parse_images, parse_tool
from ..probes import MemberInfo, ParseError, parse_endpoint_health, parse_kv, parse_member_list
from ..ssh.route import load_config, member_route
from ..ssh.transport import SSHConfig, SSHHost
from .model import CLUSTER_RE, USER_RE, Member, SSHSettings, valid_host
from .writer import InventoryDraft, MemberDraft, SSHDraft, render, verify

T = TypeVar("T")

TIMEOUTS = ("--dial-timeout=3s", "--command-timeout=5s")
FROM_PEER = "check: taken from the peer URL"
Run = Callable[[str, float], tuple[int, str, str]]
"""(script, timeout) -> (exit code, stdout, stderr): how discovery reaches the host (SSH, or a test's fake)."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int = 22
    user: str = "root"
    identity_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    ssh_config: str | None = None
    """`--ssh-config FILE`: the host (and later every member) is resolved through it, and the inventory names it."""
    explicit: frozenset[str] = frozenset({"user", "port", "identity_file", "known_hosts"})
    """The SSH settings the operator gave: only those win over the ssh config and are written out."""

    def settings(self) -> SSHSettings:
        return SSHSettings(user=self.user, port=self.port, identity_file=self.identity_file,
                           known_hosts=os.path.expanduser(self.known_hosts), config=self.ssh_config or "~/.ssh/config",
                           explicit=self.explicit | ({"config"} if self.ssh_config else set()))


@dataclass(frozen=True)
class Discovery:
    draft: InventoryDraft
    text: str


def check_target(t: Target) -> None:
    if not valid_host(t.host):
        raise InputError(f"not a valid host name or address: {t.host!r}")
    if not USER_RE.fullmatch(t.user):
        raise InputError(f"not a valid user name: {t.user!r}")
    if not 1 <= t.port <= 65535:
        raise InputError(f"not a port number 1-65535: {t.port}")


def discover(target: Target, profile: str | None = None, cluster: str | None = None,
             passphrase: str | None = None) -> Discovery:
    """Connect to `target`, read what it knows of its cluster, and return the checked inventory."""
    check_target(target)
    if cluster is not None and not CLUSTER_RE.fullmatch(cluster):
        raise InputError(f"--cluster: letters, digits, '.', '_', '-' (max 63), got {cluster!r}")
    ssh = target.settings()
    me = Member(target.host, target.host, target.port, "", "", port_set="port" in target.explicit)
    host = SSHHost(target.host, SSHConfig(member_route(me, ssh, load_config(ssh)), passphrase=passphrase))
    with host:
        def run(script: str, timeout: float) -> tuple[int, str, str]:
            res = host.run(script, timeout=timeout)
            return res.exited, res.stdout, res.stderr

        return discover_with(run, target, profile, cluster)


def _given(target: Target, key: str, value: T) -> T | None:
    """Only what the operator gave is written: the rest comes, as it did here, from the ssh config or the
    inventory's defaults."""
    return value if key in target.explicit else None


def discover_with(run: Run, target: Target, profile: str | None = None, cluster: str | None = None) -> Discovery:
    platform = _platform(run, target.host, profile)
    settings, version = _settings(run, target.host, platform)
    unknown: list[str] = []
    source = [f"Written by `etcdrescue inventory discover` from {target.host} ({platform.name}): "
              f"etcd's settings from its {platform.settings.label}."]
    code, _, _ = run(f"test -e {q(platform.paths.manifest)}", 10)
    if code != 0:
        unknown.append(f"the etcd manifest is not in {platform.paths.pod_dir} on {target.host}: etcd is stopped "
                       f"there (a recovery under way?); settings read from {platform.settings.file}")
    live, quorum_note = _live_members(run, target.host, platform, settings, version)
    if quorum_note:
        unknown.append(quorum_note)
    members = _members(target, settings, live, unknown)
    if live is not None:
        source.append(f"Members: the live member list, as {target.host}'s etcd answered it.")
    else:
        source.append(f"Members: {settings.get('name', target.host)}'s initial cluster (the members when it "
                      "started or joined: any added or removed since are not in it).")
    name = cluster or _cluster_name(members)
    draft = InventoryDraft(
        cluster=name, profile=platform.name,
        ssh=SSHDraft(user=_given(target, "user", target.user), port=_given(target, "port", target.port),
                     identity_file=target.identity_file, known_hosts=_given(target, "known_hosts", target.known_hosts),
                     config=target.ssh_config),
        members=tuple(members), source=tuple(source), unknown=tuple(unknown),
        cluster_note="" if cluster else "check: chosen by etcdrescue; it names the journal and is typed to confirm",
    )
    text = render(draft)
    verify(text, f"inventory discovered from {target.host}")
    return Discovery(draft, text)


def _platform(run: Run, host: str, profile: str | None) -> Platform:
    if profile is not None:
        if profile not in PLATFORMS:
            raise InputError(f"unknown profile {profile!r} (known: {', '.join(sorted(PLATFORMS))})")
        return PLATFORMS[profile].build(PLATFORMS[profile].default_paths)
    kinds = {name: kind.build(kind.default_paths) for name, kind in PLATFORMS.items()}
    script = "; ".join(f"echo {name}=$({p.settings.readable_script()} && echo yes || echo no)"
                       for name, p in kinds.items())
    code, out, err = run(script, 20)
    found = [name for name, yes in parse_kv(out).items() if yes == "yes" and name in kinds]
    if code != 0 or not found:
        files = ", ".join(p.settings.file for p in kinds.values())
        raise InputError(f"{host}: no etcd settings found ({files} unreadable or missing): not a master? "
                         f"{err.strip()[:200]}".rstrip())
    if len(found) > 1:
        raise InputError(f"{host}: settings of several platforms found ({', '.join(found)}): give --profile")
    return kinds[found[0]]


def _settings(run: Run, host: str, platform: Platform) -> tuple[dict[str, str], str | None]:
    """etcd's settings, and the version its manifest runs where the platform can tell (kubeadm's image tag)."""
    code, out, err = run(platform.settings.values_script(), 20)
    if code != 0:
        raise InputError(f"{host}: cannot read {platform.settings.file}: {err.strip()[:200] or f'exit {code}'}")
    try:
        values = platform.settings.parse_values(out)
    except ValueError as exc:
        raise InputError(f"{host}: {platform.settings.label}: {exc}") from None
    missing = [k for k in ("name", "initial-cluster") if not values.get(k)]
    if missing:
        raise InputError(f"{host}: {platform.settings.label} sets no {' and no '.join(missing)}: cannot tell the "
                         "members; write the inventory by hand (docs/example-inventory.yaml)")
    return values, platform.server_version(out)


def _urls(value: str) -> list[str]:
    return [u.strip() for u in value.split(",") if u.strip()]


def initial_cluster(value: str) -> dict[str, list[str]]:
    """`a=https://x:2380,b=https://y:2380` -> {name: [peer URLs]} in order (a name may repeat: several URLs)."""
    out: dict[str, list[str]] = {}
    for part in _urls(value):
        name, sep, url = part.partition("=")
        if not sep or not name or not url:
            raise InputError(f"initial cluster entry {part!r} is not name=peer-url")
        out.setdefault(name, []).append(url)
    return out


def _etcdctl(run: Run, host: str, platform: Platform, version: str | None) -> tuple[EtcdTools | None, str]:
    """The host's own etcdctl; else (kubeadm) its etcd image's, of the version the manifest runs, where the
    runtime unpacked it and run in place (nothing is copied: discovery changes nothing); else a note why none."""
    code, out, _ = run(find_script("etcdctl"), 20)
    tool = parse_tool(parse_kv(out), "etcdctl") if code == 0 else None
    if tool is not None:
        return EtcdTools(platform.paths, etcdctl=tool.path, version=tool.version), ""
    none = f"no etcdctl on {host} (PATH or the usual places"
    if version is None:
        return None, f"{none})"
    code, out, _ = run(image_script(), 20)
    image = matching_image(parse_images(parse_kv(out).get("images", "")), version) if code == 0 else None
    if image is None:
        return None, f"{none}, nor etcdctl {version} in an unpacked etcd image)"
    return image.tools(platform.paths), ""


def _live_members(run: Run, host: str, platform: Platform, settings: dict[str, str],
                  version: str | None) -> tuple[list[MemberInfo] | None, str]:
    """(live member list or None, a note on the quorum or on why there is no list)."""
    tools, none = _etcdctl(run, host, platform, version)
    if tools is None:
        return None, f"{none}: the live member list was not read; members are the initial cluster's"
    endpoints = _urls(settings.get("advertise-client-urls", "")) or _urls(settings.get("listen-client-urls", ""))
    if not endpoints:
        return None, f"{host}'s settings name no client URL: the live member list was not read"
    code, out, err = run(tools.member_list_own_view(endpoints, *TIMEOUTS), 20)
    try:
        members = parse_member_list(out) if code == 0 else None
    except ParseError:
        members = None
    if members is None:
        why = (err.strip().splitlines() or [f"exit {code}"])[-1][:200]
        return None, (f"etcd on {host} did not answer the member list ({why}): quorum lost or etcd down? "
                      "members are the initial cluster's")
    code, out, _ = run(Raw(tools.ctl(endpoints, "endpoint", "health", "-w", "json", *TIMEOUTS) + " 2>/dev/null"), 20)
    try:
        health = parse_endpoint_health(out)
    except ParseError:
        health = []
    if health and all(h.healthy for h in health):
        return members, ""
    why = next((h.error for h in health if h.error), "") or "no answer"
    return members, (f"quorum lost: {host}'s etcd is not healthy ({why[:200]}); the member list is its own view, "
                     "not confirmed by a quorum")


def _client_url(peer: str, port: int = 2379) -> str:
    parts = urlsplit(peer)
    return f"{parts.scheme}://{parts.netloc.rsplit(':', 1)[0]}:{port}"


def _members(target: Target, settings: dict[str, str], live: list[MemberInfo] | None,
             unknown: list[str]) -> list[MemberDraft]:
    config = initial_cluster(settings["initial-cluster"])
    me = settings["name"]
    own_clients = _urls(settings.get("advertise-client-urls", ""))
    rows: list[tuple[str, list[str], list[str]]] = []
    if live is None:
        rows = [(n, urls, own_clients if n == me else []) for n, urls in config.items()]
    else:
        for m in live:
            if not m.started:
                unknown.append(f"member {m.hex_id} ({', '.join(m.peer_urls)}) was added but never started: it has "
                               "no name and is not in this file")
                continue
            rows.append((m.name, list(m.peer_urls), list(m.client_urls)))
            if m.is_learner:
                unknown.append(f"{m.name} is a learner (not yet promoted)")
        names = {n for n, _, _ in rows}
        unknown += [f"{n} is in the initial cluster but not in the live member list: left out" for n in config
                    if n not in names]
        order = list(config)
        rows.sort(key=lambda r: (order.index(r[0]) if r[0] in order else len(order), r[0]))
    out = []
    for name, peers, clients in rows:
        notes: list[tuple[str, str]] = []
        if not peers:
            unknown.append(f"{name} has no peer URL: left out")
            continue
        if len(peers) > 1:
            unknown.append(f"{name} has several peer URLs ({', '.join(peers)}): the first is used")
        if len(clients) > 1:
            unknown.append(f"{name} has several client URLs ({', '.join(clients)}): the first is used")
        peer = peers[0]
        if clients:
            client = clients[0]
        else:
            client = _client_url(peer)
            notes.append(("client_url", "check: the peer URL's host on port 2379"))
        if name == me:
            host = target.host
        else:
            host = urlsplit(peer).hostname or ""
            notes.append(("host", FROM_PEER))
        out.append(MemberDraft(name=name, host=host, peer_url=peer, client_url=client, notes=tuple(notes)))
    if not out:
        raise InputError(f"{target.host}: no member could be determined")
    if me not in {m.name for m in out}:
        unknown.append(f"{target.host} itself ({me}) is not in the member list")
    if len(out) == 1:
        unknown.append("only one member is known: if the cluster has more, add them by hand")
    return out


def _cluster_name(members: list[MemberDraft]) -> str:
    """The members' common domain ("lab.example" for master0N.lab.example), else "etcd"."""
    domains = {m.name.partition(".")[2] for m in members}
    (domain,) = domains if len(domains) == 1 else ("",)
    return domain if domain and CLUSTER_RE.fullmatch(domain) else "etcd"

