"""Routes from the inventory and the operator's ssh config: Include, Match, IdentityFile, precedence, ProxyJump."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from etcdrescue.errors import EXIT_REFUSED
from etcdrescue.inventory.model import parse_inventory
from etcdrescue.ssh.config import ClientConfig, SSHConfigError
from etcdrescue.ssh.route import Endpoint, Route, member_routes


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def routes(ssh: dict[str, Any] | None = None, *hosts: str, members: list[dict[str, Any]] | None = None
           ) -> dict[str, Route]:
    members = members or [{"name": f"m{i}", "host": h, "peer_url": f"https://10.0.0.{i + 1}:2380",
                           "client_url": f"https://10.0.0.{i + 1}:2379"} for i, h in enumerate(hosts or ("m0",))]
    inv = parse_inventory({"cluster": "c", "ssh": ssh or {}, "members": members})
    return {inv.member(name).host: r for name, r in member_routes(inv).items()}


def route(ssh: dict[str, Any] | None = None, host: str = "m0") -> Route:
    return routes(ssh, host)[host]


def hops(r: Route) -> list[tuple[str, str, int, str]]:
    return [(e.name, e.host, e.port, e.user) for e in r]


# -- no config: what the inventory says, as before -------------------------------------------------------

def test_no_config_file_is_the_inventory_alone(home: Path) -> None:
    (target,) = route({"user": "core", "port": 2200}, "10.0.0.5")
    assert target == Endpoint("10.0.0.5", "10.0.0.5", 2200, "core", (f"{home}/.ssh/known_hosts",))
    assert target.key_name == "[10.0.0.5]:2200" and target.address == "10.0.0.5:2200"


def test_defaults_without_inventory_or_config(home: Path) -> None:
    (target,) = route()
    assert (target.user, target.port, target.identity_files, target.key_name) == ("root", 22, (), "m0")


def test_named_config_missing_is_refused(home: Path) -> None:
    with pytest.raises(SSHConfigError) as info:
        route({"config": str(home / "nope")})
    assert str(info.value) == f"ssh config file {home}/nope not found (set ssh.config: none to use none)"
    assert info.value.exit_code == EXIT_REFUSED


@pytest.mark.parametrize("off", ["none", "None", False])
def test_config_none_ignores_the_default_file(home: Path, off: object) -> None:
    write(home / ".ssh/config", "Host m0\n  HostName 10.9.9.9\n")
    assert route()[-1].host == "10.9.9.9"
    assert route({"config": off})[-1].host == "m0"


# -- what the config supplies, and what the inventory overrides --------------------------------------------

CONFIG = """\
Host m0 m1
    HostName 10.0.0.%h-not-used
Host m0
    User core
    Port 2222
    IdentityFile ~/.ssh/id_m0
    IdentityFile ~/.ssh/id_fallback
    IdentitiesOnly yes
    UserKnownHostsFile ~/.ssh/kh_a %d/.ssh/kh_b
    HostKeyAlias master0
Host *
    IdentityFile ~/.ssh/id_all
    User nobody
"""


def test_config_supplies_hostname_user_port_keys_and_known_hosts(home: Path) -> None:
    write(home / ".ssh/config", CONFIG.replace("10.0.0.%h-not-used", "10.0.0.7"))
    (t,) = route()
    assert (t.name, t.host, t.port, t.user) == ("m0", "10.0.0.7", 2222, "core")
    assert t.identity_files == (f"{home}/.ssh/id_m0", f"{home}/.ssh/id_fallback", f"{home}/.ssh/id_all")
    assert t.identities_only
    assert t.known_hosts == (f"{home}/.ssh/kh_a", f"{home}/.ssh/kh_b")
    assert t.key_name == "[master0]:2222"


def test_inventory_values_set_explicitly_win(home: Path) -> None:
    write(home / ".ssh/config", CONFIG.replace("10.0.0.%h-not-used", "10.0.0.7"))
    key = write(home / "keys/id", "")
    (t,) = route({"user": "root", "port": 22, "identity_file": str(key), "known_hosts": str(home / "kh")})
    assert (t.host, t.port, t.user) == ("10.0.0.7", 22, "root")
    assert t.identity_files == (str(key),) and t.known_hosts == (str(home / "kh"),)
    assert t.key_name == "master0"  # port 22: the bare name, as ssh looks it up


def test_member_port_wins_over_config_port(home: Path) -> None:
    write(home / ".ssh/config", "Host *\n  Port 2222\n")
    got = routes(members=[
        {"name": "a", "host": "10.0.0.1", "port": 2200, "peer_url": "https://10.0.0.1:2380",
         "client_url": "https://10.0.0.1:2379"},
        {"name": "b", "host": "10.0.0.2", "peer_url": "https://10.0.0.2:2380", "client_url": "https://10.0.0.2:2379"},
    ])
    assert (got["10.0.0.1"][-1].port, got["10.0.0.2"][-1].port) == (2200, 2222)


def test_match_host_sees_the_hostname(home: Path) -> None:
    write(home / ".ssh/config", "Host m0\n  HostName 10.1.2.3\nMatch host 10.1.*\n  User matched\n"
                                "Match originalhost m1\n  User original\n")
    got = routes({}, "m0", "m1")
    assert (got["m0"][-1].user, got["m1"][-1].user) == ("matched", "original")


def test_bad_values_in_the_config_are_refused(home: Path) -> None:
    cfg = write(home / ".ssh/config", "Host m0\n  HostName $(reboot)\n")
    with pytest.raises(SSHConfigError, match=rf"^ssh config {cfg}: m0: HostName '\$\(reboot\)' is not a host"):
        route()
    write(cfg, 'Host m0\n  User "x y"\n')
    with pytest.raises(SSHConfigError, match="m0: User 'x y' is not a valid user name"):
        route()
    write(cfg, "Host m0\n  Port 70000\n")
    with pytest.raises(SSHConfigError, match="m0: Port '70000' is not a port number"):
        route()
    write(cfg, "Host m0\n  ProxyCommand nc %h %p\n")
    with pytest.raises(SSHConfigError, match="m0: ProxyCommand is not supported; use ProxyJump"):
        route()


# -- Include ----------------------------------------------------------------------------------------------

def test_include_relative_to_dot_ssh_with_globs_in_order(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.chdir(tmp_path / ".ssh")  # a relative Include is under ~/.ssh, never the current directory
    write(home / "elsewhere/ssh.conf", "Include conf.d/*.conf\nHost *\n  User fallback\n")
    write(home / ".ssh/conf.d/20-m0.conf", "Host m0\n  HostName 10.0.0.20\n  Port 2020\n")
    write(home / ".ssh/conf.d/10-m0.conf", "Host m0\n  HostName 10.0.0.10\n")
    write(home / ".ssh/conf.d/10-m0.conf.off", "Host m0\n  User never\n")
    (t,) = route({"config": str(home / "elsewhere/ssh.conf")})
    assert (t.host, t.port, t.user) == ("10.0.0.10", 2020, "fallback")


def test_include_inside_a_host_block_applies_only_to_it(home: Path) -> None:
    write(home / ".ssh/config", """\
Host m0
    Include m0.conf ~/.ssh/absent-*.conf
    Port 2200
Host *
    User everyone
""")
    write(home / ".ssh/m0.conf", "User from-include\nHost m1\n  IdentityFile ~/.ssh/never\nHost *\n"
                                 "  HostName 10.0.0.1\n")
    got = routes({}, "m0", "m1")
    assert hops(got["m0"]) == [("m0", "10.0.0.1", 2200, "from-include")]
    assert hops(got["m1"]) == [("m1", "m1", 22, "everyone")]
    assert got["m0"][-1].identity_files == got["m1"][-1].identity_files == ()


def test_include_loop_is_refused(home: Path) -> None:
    write(home / ".ssh/config", "Include a\n")
    write(home / ".ssh/a", "Include b\n")
    write(home / ".ssh/b", "Include a\n")
    with pytest.raises(SSHConfigError, match=r"Include nested more than 16 deep \(a loop\?\)"):
        route()


def test_unparsable_config_is_one_line(home: Path) -> None:
    write(home / ".ssh/config", "Host m0\n  Match\n")
    with pytest.raises(SSHConfigError) as info:
        route()
    assert "\n" not in str(info.value) and str(home / ".ssh/config") in str(info.value)


# -- ProxyJump --------------------------------------------------------------------------------------------

JUMPS = """\
Host m0 m1
    HostName 10.0.0.%h
    ProxyJump gw
Host m2
    ProxyJump ops@gw:2022,inner
Host inner
    HostName 192.168.0.9
    ProxyJump nowhere-this-is-ignored
Host gw
    HostName 203.0.113.5
    User jumper
    Port 2200
    IdentityFile ~/.ssh/id_gw
Host gw2
    ProxyJump gw
Host m3
    ProxyJump gw2,[2001:db8::7]:2201
"""


def test_proxyjump_chains(home: Path) -> None:
    write(home / ".ssh/config", JUMPS.replace("10.0.0.%h", "10.0.0.1"))
    got = routes({"user": "root"}, "m0", "m2", "m3")
    gw = ("gw", "203.0.113.5", 2200, "jumper")
    assert hops(got["m0"]) == [gw, ("m0", "10.0.0.1", 22, "root")]
    assert got["m0"][0].identity_files == (f"{home}/.ssh/id_gw",)
    # later hops go through the one before them: inner's own ProxyJump does not apply
    assert hops(got["m2"]) == [("gw", "203.0.113.5", 2022, "ops"), ("inner", "192.168.0.9", 22, "root"),
                               ("m2", "m2", 22, "root")]
    # the first hop brings its own ProxyJump along
    assert hops(got["m3"]) == [gw, ("gw2", "gw2", 22, "root"), ("2001:db8::7", "2001:db8::7", 2201, "root"),
                               ("m3", "m3", 22, "root")]
    assert got["m3"][2].key_name == "[2001:db8::7]:2201" and got["m3"][2].address == "[2001:db8::7]:2201"


def test_jump_hosts_trust_the_inventory_known_hosts_when_it_sets_one(home: Path) -> None:
    write(home / ".ssh/config", "Host m0\n  ProxyJump gw\nHost gw\n  UserKnownHostsFile ~/.ssh/gw_hosts\n")
    assert [e.known_hosts for e in route()] == [(f"{home}/.ssh/gw_hosts",), (f"{home}/.ssh/known_hosts",)]
    assert [e.known_hosts for e in route({"known_hosts": str(home / "kh")})] == [(str(home / "kh"),)] * 2


def test_proxyjump_none_is_direct(home: Path) -> None:
    write(home / ".ssh/config", "Host m0\n  ProxyJump none\nHost *\n  ProxyJump gw\n")
    assert hops(route()) == [("m0", "m0", 22, "root")]


@pytest.mark.parametrize(("config", "chain"), [
    ("Host m0\n  ProxyJump m0\n", "m0 -> m0"),
    ("Host m0\n  ProxyJump a\nHost a\n  ProxyJump b\nHost b\n  ProxyJump a\n", "m0 -> a -> b -> a"),
    ("Host *\n  ProxyJump gw\n", "m0 -> gw -> gw"),  # the classic: `Host * !gw` was meant
    ("Host m0\n  ProxyJump a,m0\n", "m0 -> m0"),
])
def test_proxyjump_loop_is_refused(home: Path, config: str, chain: str) -> None:
    write(home / ".ssh/config", config)
    with pytest.raises(SSHConfigError) as info:
        route()
    assert str(info.value) == f"ssh config {home}/.ssh/config: ProxyJump loop: {chain}"


def test_bad_proxyjump_spec_is_refused(home: Path) -> None:
    write(home / ".ssh/config", "Host m0\n  ProxyJump gw:99999\n")
    with pytest.raises(SSHConfigError, match="m0: ProxyJump 'gw:99999' is not \\[user@\\]host\\[:port\\]"):
        route()


def test_lookup_without_a_file_says_nothing(home: Path) -> None:
    entry = ClientConfig.empty().lookup("x")
    assert (entry.hostname, entry.port, entry.proxy_jump, entry.identity_files) == ("x", None, (), ())
