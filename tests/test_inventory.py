"""Inventory loading: valid shapes parse to the expected values, every bad one is a one-line refusal."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from etcdrescue.errors import EXIT_REFUSED, InventoryError
from etcdrescue.inventory import Inventory, load_inventory, parse_inventory

Data = dict[str, Any]
Edit = Callable[[Data], None]


def base() -> Data:
    return {
        "cluster": "prod-east",
        "profile": "okd3",
        "ssh": {"user": "root", "port": 22, "identity_file": "/root/.ssh/id_ed25519",
                "known_hosts": "/root/.ssh/known_hosts", "sudo": False},
        "members": [
            {"name": f"master0{i}.example.com", "host": f"10.0.0.1{i}",
             "peer_url": f"https://10.0.0.1{i}:2380", "client_url": f"https://10.0.0.1{i}:2379"}
            for i in range(3)
        ],
    }


def write(tmp_path: Path, data: Any) -> Path:
    p = tmp_path / "inventory.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True) if not isinstance(data, str) else data,
                 encoding="utf-8")
    return p


def setitem(path: str, value: Any) -> Edit:
    """Edit that sets e.g. 'members.1.peer_url' (creating mappings on the way)."""
    def edit(d: Data) -> None:
        *parents, last = path.split(".")
        cur: Any = d
        for p in parents:
            cur = cur[int(p)] if isinstance(cur, list) else cur.setdefault(p, {})
        if isinstance(cur, list):
            cur[int(last)] = value
        else:
            cur[last] = value
    return edit


def delitem(path: str) -> Edit:
    def edit(d: Data) -> None:
        *parents, last = path.split(".")
        cur: Any = d
        for p in parents:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        del cur[last]
    return edit


def edited(*edits: Edit) -> Data:
    d = copy.deepcopy(base())
    for e in edits:
        e(d)
    return d


# -- valid ------------------------------------------------------------------------------------

def test_full_inventory(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, base()))
    assert isinstance(inv, Inventory)
    assert inv.cluster == "prod-east" and inv.platform.name == "okd3"
    assert [m.name for m in inv.members] == ["master00.example.com", "master01.example.com",
                                             "master02.example.com"]
    m = inv.members[1]
    assert (m.host, m.port, m.peer_url, m.client_url) == (
        "10.0.0.11", 22, "https://10.0.0.11:2380", "https://10.0.0.11:2379")
    assert (m.peer_host, m.peer_port, m.client_host, m.client_port) == ("10.0.0.11", 2380, "10.0.0.11", 2379)
    assert inv.source == str(tmp_path / "inventory.yaml")
    assert inv.quorum == 2
    assert inv.paths.data_dir == "/var/lib/etcd" and inv.paths.manifest == "/etc/origin/node/pod/etcd.yaml"


VALID: list[tuple[str, Data, dict[str, Any]]] = [
    ("host defaults to name, port to ssh.port",
     edited(delitem("members.0.host"), setitem("ssh.port", 2222)),
     {"members.0.host": "master00.example.com", "members.0.port": 2222, "members.1.port": 2222}),
    ("member port overrides ssh.port", edited(setitem("members.2.port", 2200)),
     {"members.2.port": 2200, "members.0.port": 22}),
    ("minimal: no ssh, no profile", {"cluster": "c", "members": [
        {"name": "m1", "peer_url": "https://10.1.1.1:2380", "client_url": "https://10.1.1.1:2379"}]},
     {"ssh.user": "root", "ssh.port": 22, "ssh.sudo": False, "platform.name": "okd3",
      "members.0.host": "m1", "ssh.identity_file": None}),
    ("ssh and paths null", edited(setitem("ssh", None), setitem("paths", None)),
     {"ssh.port": 22, "paths.data_dir": "/var/lib/etcd"}),
    ("path overrides; trailing slash dropped",
     edited(setitem("paths", {"data_dir": "/srv/etcd/", "etcd_conf": "/srv/conf/etcd.conf",
                              "manifest": "/srv/pods/etcd.yaml", "disabled_dir": "/srv/pods-off"})),
     {"paths.data_dir": "/srv/etcd", "paths.etcd_conf": "/srv/conf/etcd.conf",
      "paths.disabled_manifest": "/srv/pods-off/etcd.yaml", "paths.ca": "/etc/etcd/ca.crt"}),
    ("trailing slash on URLs dropped",
     edited(setitem("members.0.peer_url", "https://10.0.0.10:2380/")),
     {"members.0.peer_url": "https://10.0.0.10:2380"}),
    ("http scheme on both URLs",
     edited(setitem("members.0.peer_url", "http://10.0.0.10:2380"),
            setitem("members.0.client_url", "http://10.0.0.10:2379")),
     {"members.0.peer_url": "http://10.0.0.10:2380"}),
    ("IPv6 host and URLs",
     edited(setitem("members.0.host", "fd00::10"), setitem("members.0.peer_url", "https://[fd00::10]:2380"),
            setitem("members.0.client_url", "https://[fd00::10]:2379")),
     {"members.0.host": "fd00::10", "members.0.peer_host": "fd00::10", "members.0.client_port": 2379}),
    ("DNS names in URLs", edited(setitem("members.0.peer_url", "https://master00.example.com:2380"),
                                 setitem("members.0.client_url", "https://master00.example.com:2379")),
     {"members.0.peer_host": "master00.example.com"}),
    ("same host on two members, different SSH ports",
     edited(setitem("members.1.host", "10.0.0.10"), setitem("members.1.port", 2201)),
     {"members.1.host": "10.0.0.10", "members.1.port": 2201}),
    ("localhost peer URL is fine when the member itself is on loopback",
     edited(setitem("members.0.host", "127.0.10.1"), setitem("members.0.peer_url", "https://127.0.0.1:2380"),
            setitem("members.0.client_url", "https://127.0.0.1:2379")),
     {"members.0.peer_url": "https://127.0.0.1:2380"}),
    ("sudo true, other user", edited(setitem("ssh.sudo", True), setitem("ssh.user", "cloud-user")),
     {"ssh.sudo": True, "ssh.user": "cloud-user"}),
    ("one member", edited(setitem("members", base()["members"][:1])), {"quorum": 1}),
    ("what the ssh section sets is told from its defaults (the ssh config may supply those)",
     edited(delitem("ssh.user"), delitem("ssh.port"), setitem("members.1.port", 2201)),
     {"ssh.explicit": frozenset({"identity_file", "known_hosts", "sudo"}), "ssh.user": "root",
      "members.0.port_set": False, "members.1.port_set": True}),
    ("ssh.port set: every member's port is set", edited(), {"members.0.port_set": True}),
    ("ssh config off", edited(setitem("ssh.config", "none")), {"ssh.config": None}),
    ("ssh config off with false", edited(setitem("ssh.config", False)), {"ssh.config": None}),
    ("ssh config path", edited(setitem("ssh.config", "/etc/etcdrescue/ssh_config")),
     {"ssh.config": "/etc/etcdrescue/ssh_config", "members.0.port_set": True}),
    ("cluster name with dots and underscores", edited(setitem("cluster", "okd_3.prod-east")),
     {"cluster": "okd_3.prod-east"}),
]


def lookup(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


@pytest.mark.parametrize(("data", "expect"), [v[1:] for v in VALID], ids=[v[0] for v in VALID])
def test_valid(tmp_path: Path, data: Data, expect: dict[str, Any]) -> None:
    inv = load_inventory(write(tmp_path, data))
    for path, value in expect.items():
        assert lookup(inv, path) == value, path


def test_tilde_is_expanded_for_local_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    inv = load_inventory(write(tmp_path, edited(setitem("ssh.identity_file", "~/.ssh/id_ed25519"),
                                                delitem("ssh.known_hosts"))))
    assert inv.ssh.identity_file == f"{tmp_path}/.ssh/id_ed25519"
    assert inv.ssh.known_hosts == f"{tmp_path}/.ssh/known_hosts"


def test_tilde_path_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path, base())
    assert load_inventory("~/inventory.yaml").cluster == "prod-east"


def test_with_seed_reorders_and_refuses_unknown(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, base()))
    seeded = inv.with_seed("master02.example.com")
    assert [m.name for m in seeded.members] == ["master02.example.com", "master00.example.com",
                                                "master01.example.com"]
    assert seeded.seed.name == "master02.example.com"
    assert inv.with_seed(None) is inv
    with pytest.raises(InventoryError, match=r"no member named 'master09'"):
        inv.with_seed("master09")


# -- invalid ------------------------------------------------------------------------------------

HOSTILE = {
    "semicolon": "m1;reboot",
    "cmdsubst": "$(reboot)",
    "backticks": "`reboot`",
    "pipe": "m1|sh",
    "ampersand": "m1&",
    "newline": "m1\nreboot",
    "trailing newline": "m1\n",
    "single quote": "m1'x",
    "double quote": 'm1"x',
    "space": "m1 x",
    "unicode": "mäster01",
    "unicode digit": "master\u0660\u0661",
    "dollar var": "m$HOME",
    "glob": "m*",
    "leading dash": "-oProxyCommand=x",
    "tab": "m1\tx",
    "nul": "m1\x00",
    "empty": "",
}
HOSTILE_PATHS = {
    "relative": "var/lib/etcd",
    "dot relative": "./etcd",
    "dotdot": "/var/lib/../../etc",
    "trailing dotdot": "/var/lib/etcd/..",
    "double slash": "/var//lib",
    "semicolon": "/var/lib/etcd;rm -rf /",
    "cmdsubst": "/var/$(reboot)",
    "backticks": "/var/`reboot`",
    "newline": "/var/lib\netcd",
    "trailing newline": "/var/lib/etcd\n",
    "space": "/var/lib etcd",
    "quote": "/var/lib/'etcd",
    "unicode": "/var/lib/étcd",
    "glob": "/var/lib/*",
    "tilde": "~/etcd",
    "empty": "",
    "int": 5,
}
HOSTILE_URLS = {
    "no scheme": "10.0.0.11:2380",
    "no port": "https://10.0.0.11",
    "word port": "https://10.0.0.11:port",
    "port out of range": "https://10.0.0.11:99999",
    "ftp": "ftp://10.0.0.11:2380",
    "path": "https://10.0.0.11:2380/x",
    "query": "https://10.0.0.11:2380?x=1",
    "fragment": "https://10.0.0.11:2380#x",
    "user": "https://root@10.0.0.11:2380",
    "cmdsubst host": "https://$(reboot):2380",
    "semicolon after port": "https://10.0.0.11:2380;reboot",
    "backtick host": "https://`id`:2380",
    "pipe host": "https://a|b:2380",
    "space": "https://10.0.0.11 :2380",
    "newline": "https://10.0.0.11:2380\nreboot",
    "unicode host": "https://mäster:2380",
    "unicode digits port": "https://10.0.0.11:\uff12\uff13\uff18\uff10",
    "plus port": "https://10.0.0.11:+2380",
    "ipv6 scope cmdsubst": "https://[fe80::1%25$(reboot)]:2380",
    "two URLs": "https://10.0.0.11:2380,https://10.0.0.12:2380",
    "int": 2380,
    "empty": "",
}

INVALID: list[tuple[str, Data | str, str]] = [
    # (id, data or raw YAML text, field that must be named)
    ("top level is a list", "[1, 2]\n", "(top level)"),
    ("top level is a string", "hello\n", "(top level)"),
    ("empty file", "", "(top level)"),
    ("unknown top key", edited(setitem("clustr", "x")), "(top level)"),
    ("no cluster", edited(delitem("cluster")), "cluster"),
    ("unknown profile", edited(setitem("profile", "okd4;x")), "profile"),
    ("ssh is a list of strings", edited(setitem("ssh", ["root"])), "ssh"),
    ("ssh unknown key", edited(setitem("ssh.password", "x")), "ssh"),
    ("ssh.user cmdsubst", edited(setitem("ssh.user", "$(id)")), "ssh.user"),
    ("ssh.user space", edited(setitem("ssh.user", "root x")), "ssh.user"),
    ("ssh.user trailing newline", edited(setitem("ssh.user", "root\n")), "ssh.user"),
    ("ssh.user leading dash", edited(setitem("ssh.user", "-l")), "ssh.user"),
    ("ssh.port string", edited(setitem("ssh.port", "22")), "ssh.port"),
    ("ssh.port bool", edited(setitem("ssh.port", True)), "ssh.port"),
    ("ssh.port zero", edited(setitem("ssh.port", 0)), "ssh.port"),
    ("ssh.port too big", edited(setitem("ssh.port", 65536)), "ssh.port"),
    ("ssh.port float", edited(setitem("ssh.port", 22.0)), "ssh.port"),
    ("ssh.sudo string", edited(setitem("ssh.sudo", "yes")), "ssh.sudo"),
    ("ssh.identity_file relative", edited(setitem("ssh.identity_file", "id_rsa")), "ssh.identity_file"),
    ("ssh.identity_file unknown ~user", edited(setitem("ssh.identity_file", "~nosuchuser-x/id")),
     "ssh.identity_file"),
    ("ssh.known_hosts dotdot", edited(setitem("ssh.known_hosts", "/root/../etc/passwd")), "ssh.known_hosts"),
    ("ssh.config relative", edited(setitem("ssh.config", "ssh_config")), "ssh.config"),
    ("ssh.config true", edited(setitem("ssh.config", True)), "ssh.config"),
    ("paths is a string", edited(setitem("paths", "/var")), "paths"),
    ("paths unknown key", edited(setitem("paths.wal_dir", "/var/wal")), "paths"),
    ("paths.disabled_dir is the pod dir", edited(setitem("paths.disabled_dir", "/etc/origin/node/pod")),
     "paths.disabled_dir"),
    ("no members", edited(delitem("members")), "members"),
    ("members empty", edited(setitem("members", [])), "members"),
    ("members a mapping", edited(setitem("members", {"name": "x"})), "members"),
    ("member a string", edited(setitem("members.1", "master01")), "members[1]"),
    ("member unknown key", edited(setitem("members.1.ip", "10.0.0.1")), "members[1]"),
    ("member without name", edited(delitem("members.1.name")), "members[1].name"),
    ("member name int", edited(setitem("members.1.name", 1)), "members[1].name"),
    ("member name list", edited(setitem("members.1.name", ["a", "b"])), "members[1].name"),
    ("member port string", edited(setitem("members.2.port", "22")), "members[2].port"),
    ("member port bool", edited(setitem("members.2.port", False)), "members[2].port"),
    ("member port negative", edited(setitem("members.2.port", -1)), "members[2].port"),
    ("host ipv6 scope cmdsubst", edited(setitem("members.1.host", "fe80::1%$(reboot)")), "members[1].host"),
    ("host ipv6 scope pipe", edited(setitem("members.1.host", "fe80::1%a|b&c")), "members[1].host"),
    ("host ipv6 scope newline", edited(setitem("members.1.host", "fe80::1%a\nb")), "members[1].host"),
    ("no peer_url", edited(delitem("members.1.peer_url")), "members[1].peer_url"),
    ("peer URL text between host and port", edited(setitem("members.1.peer_url", "https://[::];:2380")),
     "members[1].peer_url"),
    ("peer URL port 0", edited(setitem("members.1.peer_url", "https://10.0.0.11:0")), "members[1].peer_url"),
    ("no client_url", edited(delitem("members.1.client_url")), "members[1].client_url"),
    ("scheme mismatch", edited(setitem("members.1.peer_url", "http://10.0.0.11:2380")), "members[1].peer_url"),
    ("peer and client share a port", edited(setitem("members.1.peer_url", "https://10.0.0.11:2379")),
     "members[1].peer_url"),
    ("peer URL on localhost", edited(setitem("members.1.peer_url", "https://localhost:2380"),
                                     setitem("members.1.client_url", "https://localhost:2379")),
     "members[1].peer_url"),
    ("duplicate name", edited(setitem("members.2.name", "master00.example.com")), "members[2].name"),
    ("duplicate peer_url", edited(setitem("members.1.peer_url", "https://10.0.0.10:2380")),
     "members[1].peer_url"),
    ("duplicate client_url", edited(setitem("members.2.client_url", "https://10.0.0.11:2379")),
     "members[2].client_url"),
    ("duplicate ssh target", edited(setitem("members.2.host", "10.0.0.10")), "members[2].host"),
    ("duplicate ssh target via default port",
     edited(setitem("members.2.host", "10.0.0.10"), setitem("members.0.port", 22)), "members[2].host"),
]
INVALID += [(f"member name {k}", edited(setitem("members.1.name", v)), "members[1].name")
            for k, v in HOSTILE.items()]
INVALID += [(f"member host {k}", edited(setitem("members.1.host", v)), "members[1].host")
            for k, v in HOSTILE.items()]
INVALID += [(f"cluster {k}", edited(setitem("cluster", v)), "cluster") for k, v in HOSTILE.items()]
INVALID += [(f"paths.data_dir {k}", edited(setitem("paths.data_dir", v)), "paths.data_dir")
            for k, v in HOSTILE_PATHS.items()]
INVALID += [(f"paths.manifest {k}", edited(setitem("paths.manifest", v)), "paths.manifest")
            for k, v in HOSTILE_PATHS.items() if k != "tilde"]
INVALID += [(f"ssh.known_hosts {k}", edited(setitem("ssh.known_hosts", v)), "ssh.known_hosts")
            for k, v in HOSTILE_PATHS.items() if k not in ("tilde", "trailing dotdot", "double slash")]
INVALID += [(f"peer_url {k}", edited(setitem("members.1.peer_url", v)), "members[1].peer_url")
            for k, v in HOSTILE_URLS.items()]
INVALID += [(f"client_url {k}", edited(setitem("members.0.client_url", v)), "members[0].client_url")
            for k, v in HOSTILE_URLS.items()]


def assert_refusal(exc: InventoryError, where: str, field: str) -> None:
    msg = str(exc)
    assert exc.exit_code == EXIT_REFUSED == 2
    assert "\n" not in msg and "\r" not in msg, msg
    assert msg.isprintable(), msg
    assert msg.startswith(f"{where}: "), msg
    assert f": {field}: " in msg, msg


@pytest.mark.parametrize(("data", "field"), [v[1:] for v in INVALID], ids=[v[0] for v in INVALID])
def test_invalid(tmp_path: Path, data: Data | str, field: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert_refusal(info.value, str(path), field)
    # the same refusal straight from parsed data, with the caller's label
    with pytest.raises(InventoryError) as again:
        parse_inventory(yaml.safe_load(path.read_text(encoding="utf-8")), "inv.yaml")
    assert_refusal(again.value, "inv.yaml", field)


# Local paths: `~` and `.` are expanded/normalised before the checks, so only the rest applies.
def test_relative_local_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        load_inventory(write(tmp_path, edited(setitem("ssh.known_hosts", "known_hosts"))))
    assert_refusal(info.value, str(tmp_path / "inventory.yaml"), "ssh.known_hosts")
    assert "absolute" in str(info.value)


FILE_ERRORS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("missing file", lambda d: d / "nope.yaml", "not found"),
    ("directory", lambda d: d, "cannot read"),
    ("not UTF-8", lambda d: (d / "x.yaml", (d / "x.yaml").write_bytes(b"cluster: \xff\xfe\n"))[0],
     "cannot read"),
    ("bad YAML", lambda d: (d / "x.yaml", (d / "x.yaml").write_text("cluster: [a\nmembers: {\n"))[0],
     "not valid YAML at line"),
    ("tab indentation", lambda d: (d / "x.yaml", (d / "x.yaml").write_text("ssh:\n\tuser: root\n"))[0],
     "not valid YAML at line 2"),
    ("unclosed quote", lambda d: (d / "x.yaml", (d / "x.yaml").write_text('cluster: "abc\n'))[0],
     "not valid YAML"),
]


@pytest.mark.parametrize(("make", "why"), [v[1:] for v in FILE_ERRORS], ids=[v[0] for v in FILE_ERRORS])
def test_file_errors(tmp_path: Path, make: Callable[[Path], Path], why: str) -> None:
    path = make(tmp_path)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    msg = str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in msg and msg.startswith(f"{path}: "), msg
    assert why in msg, msg

