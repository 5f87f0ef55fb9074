"""Property tests: whatever text an inventory holds, it is refused or it cannot change a script's shape."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from etcdrescue import probes
from etcdrescue.command import Raw, sh
from etcdrescue.errors import InventoryError
from etcdrescue.inventory import Inventory, parse_inventory
from etcdrescue.platform.envfile import set_env
from etcdrescue.platform.tools import EtcdTools

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# assume() drops the refused inventories; the refusal message is still checked before that.
FILTERED = settings(SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

HOSTILE = ";$()`|&\n\r\t '\"\\<>*?[]{}~#!%=:,@+^ \x0b\x0c\u00e4\u2028\u0660\uff12"
# Values that look almost valid, with hostile characters mixed in, plus plain arbitrary text.
label = st.text(alphabet="abcxyz019.-_", min_size=1, max_size=12)
hostile = st.text(alphabet=HOSTILE, max_size=4)
tricky = st.one_of(
    st.text(max_size=20),
    label,
    st.builds(lambda a, h, b: a + h + b, label, hostile, st.text(alphabet="abc01.", max_size=4)),
)
ipv4 = st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.integers(0, 255)] * 4)
host = st.one_of(
    tricky,
    ipv4,
    label,
    st.builds(lambda s: f"fe80::1%{s}", tricky),
    st.builds(lambda s: f"fe80::1%{s}", label),
    st.builds(lambda s: f"fd00::{s}", st.text(alphabet="0123456789abcdef:%", max_size=6)),
)


def url_host(h: str) -> str:
    return f"[{h}]" if ":" in h else h


def urls(port: int) -> st.SearchStrategy[str]:
    return st.one_of(
        tricky,
        st.builds(lambda h: f"https://{url_host(h)}:{port}", host),
        st.builds(lambda h: f"https://{url_host(h)}:{port}", ipv4),
        st.builds(lambda scheme, h, p: f"{scheme}://{url_host(h)}:{p}",
                  st.sampled_from(["https", "http", "ftp", "https;"]), host,
                  st.one_of(st.integers(0, 70000).map(str), tricky)),
    )


url = urls(2380)
alnum = st.sampled_from("abz019")
good_name = st.builds(lambda a, mid, z: a + mid + z, alnum, st.text(alphabet="abz019._-", max_size=8), alnum)


def mostly(good: st.SearchStrategy[str], other: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Four in five draws from `good`, so that whole inventories are accepted often enough to test."""
    return st.one_of(good, good, good, good, other)


path = st.one_of(
    tricky,
    st.builds(lambda parts: "/" + "/".join(parts), st.lists(tricky, min_size=1, max_size=3)),
    st.builds(lambda parts: "/" + "/".join(parts), st.lists(label, min_size=1, max_size=3)),
)


def inventory(name: str, host_: str, peer: str, client: str, data_dir: str) -> Inventory | None:
    data: dict[str, Any] = {
        "cluster": "c",
        "paths": {"data_dir": data_dir},
        "members": [{"name": name, "host": host_, "peer_url": peer, "client_url": client}],
    }
    try:
        return parse_inventory(data, "prop.yaml")
    except InventoryError as exc:
        msg = str(exc)
        assert msg.startswith("prop.yaml: ") and "\n" not in msg and msg.isprintable(), msg
        return None


def tokens(script: str) -> list[str]:
    """Shell words, with operators (; && || | >>) as separate tokens."""
    lex = shlex.shlex(script, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    return list(lex)


def needs_no_quoting(value: str) -> bool:
    """Safe to splice unquoted into a nested script: shlex would leave it as is."""
    return shlex.quote(value) == value


GOOD = {"name": "m1", "host_": "10.0.0.1", "peer": "https://10.0.0.1:2380",
        "client": "https://10.0.0.1:2379", "data_dir": "/var/lib/etcd"}
FIELDS: dict[str, st.SearchStrategy[str]] = {
    "name": mostly(good_name, tricky), "host_": mostly(ipv4, host), "peer": url,
    "client": urls(2379), "data_dir": path,
}
# One field at a time is arbitrary, the others valid: most examples reach the command builders.
one_field_off = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda f: st.tuples(st.just(f), FIELDS[f]).map(lambda fv: {**GOOD, fv[0]: fv[1]}))


@FILTERED
@given(fields=st.one_of(one_field_off, st.fixed_dictionaries(FIELDS)))
def test_accepted_values_stay_single_tokens(fields: dict[str, str]) -> None:
    name, host_, peer, client, data_dir = (fields[k] for k in ("name", "host_", "peer", "client", "data_dir"))
    inv = inventory(name, host_, peer, client, data_dir)
    assume(inv is not None)
    assert inv is not None
    m, paths = inv.members[0], inv.paths
    values = [m.name, m.host, m.peer_url, m.client_url, m.peer_host, paths.data_dir, paths.member_dir,
              paths.etcd_conf, paths.manifest, paths.disabled_manifest]

    # sh(): each value is exactly one argument
    for v in values:
        assert shlex.split(sh("cat", "--", v, Raw(">/dev/null"))) == ["cat", "--", v, ">/dev/null"]

    # etcdctl(): the endpoint and every TLS path arrive as separate, intact arguments
    argv = shlex.split(EtcdTools(paths).ctl([m.client_url, m.peer_url], "member", "add", m.name,
                                 f"--peer-urls={m.peer_url}"))
    assert argv == ["ETCDCTL_API=3", "etcdctl", "--cacert", paths.ca, "--cert", paths.cert, "--key", paths.key,
                      "--endpoints", f"{m.client_url},{m.peer_url}", "member", "add", m.name,
                      f"--peer-urls={m.peer_url}"]

    # set_env(): the value lands inside a sed s||| expression, an awk -v and a printf argument
    for key, value in [("ETCD_NAME", m.name), ("ETCD_INITIAL_CLUSTER", f"{m.name}={m.peer_url}"),
                       ("ETCD_LISTEN_CLIENT_URLS", m.client_url), ("ETCD_DATA_DIR", paths.data_dir)]:
        assert not set("|&\\\n") & set(value), value
        script = set_env(paths.etcd_conf, key, value)
        words = tokens(script)
        assert f"s|^([[:blank:]]*(export[[:blank:]]+)?){key}=.*$|\\1{key}={value}|" in words
        assert f"v={value}" in words and f"k={key}" in words and words.count(">>") == 1

    # values that facts splice into nested `bash -c` strings must need no quoting at all
    assert needs_no_quoting(m.host) and needs_no_quoting(m.peer_host) and needs_no_quoting(m.client_host)
    inner = shlex.split(probes.port_probe(m.host, m.client_port))
    assert inner[:3] == ["timeout", "2", "bash"] and inner[4] == f"exec 3<>/dev/tcp/{m.host}/{m.client_port}"


@SETTINGS
@given(host_=host)
def test_accepted_hosts_are_shell_inert(host_: str) -> None:
    """Focused on hosts (IP literals, IPv6 scope ids): accepted means no shell metacharacter at all."""
    inv = inventory("m1", host_, "https://10.0.0.1:2380", "https://10.0.0.1:2379", "/var/lib/etcd")
    assume(inv is not None)
    assert inv is not None
    assert needs_no_quoting(inv.members[0].host), inv.members[0].host


argtext = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                  max_size=40)


@SETTINGS
@given(args=st.lists(argtext, min_size=1, max_size=4))
def test_sh_round_trips_through_real_bash(args: list[str]) -> None:
    script = sh("printf", "%s\\0", *args)
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, timeout=10).stdout
    assert out.split(b"\0")[:-1] == [a.encode() for a in args]


@settings(FILTERED, max_examples=60)
@given(name=mostly(good_name, tricky), peer=mostly(url, tricky))
def test_set_env_on_a_real_file(tmp_path_factory: Any, name: str, peer: str) -> None:
    """Accepted values written with set_env read back exactly, replace (not duplicate) the line,
    and leave every other line alone."""
    inv = inventory(name, "10.0.0.1", peer, "https://10.0.0.1:2379", "/var/lib/etcd")
    assume(inv is not None)
    assert inv is not None
    m = inv.members[0]
    conf: Path = tmp_path_factory.mktemp("conf") / "etcd.conf"
    before = "ETCD_NAME=old\n#ETCD_NAME=commented\nETCD_DATA_DIR=/var/lib/etcd/\n"
    conf.write_text(before)
    for key, value in [("ETCD_NAME", m.name), ("ETCD_INITIAL_CLUSTER", f"{m.name}={m.peer_url}"),
                       ("ETCD_INITIAL_CLUSTER", f"{m.name}={m.peer_url}")]:
        subprocess.run(["bash", "-c", set_env(str(conf), key, value)], check=True, timeout=10)
    assert conf.read_text().splitlines() == [
        f"ETCD_NAME={m.name}", "#ETCD_NAME=commented", "ETCD_DATA_DIR=/var/lib/etcd/",
        f"ETCD_INITIAL_CLUSTER={m.name}={m.peer_url}",
    ]
