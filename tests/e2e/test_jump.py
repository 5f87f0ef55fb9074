"""End-to-end: the members behind a jump host, reached only through ProxyJump from the operator's ssh config,
with a key that only an ssh-agent holds.

The first master is the jump host (and a member, reached directly); the inventory names the others by
ssh config aliases whose ProxyJump is that host. Its sshd logs at DEBUG1, which records every
`direct-tcpip` channel and its target: the proof that each member connection went through it. Every
sshd logs each accepted login with the key's fingerprint: one login per master per run, all with the
agent's key. `~/.ssh/config` (with an Include) and a hashed `~/.ssh/known_hosts` sit in a HOME of the
test's own; neither the inventory nor the config names a key file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from etcdrescue.errors import TransportError
from etcdrescue.inventory.model import load_inventory
from etcdrescue.lab import Lab
from etcdrescue.lab.pki import ssh_keypair
from etcdrescue.ssh.hosts import Hosts

from .audit import audit, snapshot
from .conftest import requires_lab
from .helpers import break_lab, etcdrescue, tree_digest
from .test_recover import assert_recovered

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(400)]

SUBNET = 120


@dataclass
class Setup:
    lab: Lab
    home: Path
    inventory: Path
    env: dict[str, str]
    agent_public: str

    @property
    def agent_fingerprint(self) -> str:
        return fingerprint_of(self.agent_public)

    def log(self, index: int) -> Path:
        return self.lab.hosts[index].dir / "run" / "sshd.log"


def fingerprint_of(public_line: str) -> str:
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def write_home(home: Path, lab: Lab) -> None:
    """~/.ssh/config through an Include, and the lab's known_hosts hashed as `ssh-keygen -H` leaves it."""
    ssh = home / ".ssh"
    (ssh / "lab.d").mkdir(parents=True)
    jump, *behind = lab.hosts
    (ssh / "config").write_text("Include lab.d/*.conf\nHost *\n    Port 2222\n")
    (ssh / "lab.d" / "10-jump.conf").write_text(
        f"Host jump\n    HostName {jump.ip}\nHost *-behind\n    ProxyJump jump\n")
    (ssh / "lab.d" / "20-members.conf").write_text(
        "".join(f"Host {h.name.split('.')[0]}-behind\n    HostName {h.ip}\n" for h in behind))
    shutil.copy(lab.known_hosts, ssh / "known_hosts")
    subprocess.run(["ssh-keygen", "-H", "-f", str(ssh / "known_hosts")], check=True, capture_output=True)
    assert "127.0." not in (ssh / "known_hosts").read_text()


def write_inventory(path: Path, lab: Lab, ssh: str = "{user: root}") -> Path:
    hosts = ["jump", *(f"{h.name.split('.')[0]}-behind" for h in lab.hosts[1:])]
    path.write_text(f"cluster: {lab.cluster}\nprofile: okd3\nssh: {ssh}\nmembers:\n" + "".join(
        f"  - {{name: {h.name}, host: {alias}, peer_url: {h.peer_url}, client_url: {h.client_url}}}\n"
        for h, alias in zip(lab.hosts, hosts, strict=True)))
    return path


def debug_log_on(lab: Lab, index: int) -> None:
    """LogLevel DEBUG1 on one master's sshd: SIGHUP makes sshd re-exec itself on its config (same PID)."""
    h = lab.hosts[index]
    with (h.dir / "sshd_config").open("a") as f:
        f.write("LogLevel DEBUG1\n")
    res = lab.exec(h, f"kill -HUP \"$(cat {h.dir}/sshd.pid)\"")
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 10
    while "debug1:" not in (h.dir / "run" / "sshd.log").read_text(errors="replace"):
        assert time.monotonic() < deadline, "sshd did not come back with LogLevel DEBUG1"
        lab.exec(h, "true")
        time.sleep(0.1)


@contextlib.contextmanager
def ssh_agent(sock: Path) -> Iterator[dict[str, str]]:
    """An ssh-agent of the test's own (listening on `sock`); its environment for ssh-add and etcdrescue."""
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline and agent.poll() is None, "ssh-agent did not start"
            time.sleep(0.02)
        yield {"SSH_AUTH_SOCK": str(sock)}
    finally:
        agent.terminate()
        agent.wait(5)


def add_key(lab: Lab, path: Path, env: dict[str, str], comment: str) -> str:
    """A new key authorized on every master, in the agent, and at `path`; returns its public line."""
    private, public = ssh_keypair()
    with (lab.root / "authorized_keys").open("a") as f:
        f.write(f"{public} {comment}\n")
    path.write_bytes(private)
    path.chmod(0o600)
    subprocess.run(["ssh-add", str(path)], check=True, capture_output=True, env={**os.environ, **env})
    return public


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("jump")
    lab = Lab(base / "lab", 3, subnet=SUBNET)
    try:
        lab.up(timeout=60)
        debug_log_on(lab, 0)
        home = base / "home"
        write_home(home, lab)
        with ssh_agent(base / "agent.sock") as agent_env:
            env = {"HOME": str(home), **agent_env}
            key = base / "agent-only-key"
            public = add_key(lab, key, env, "agent-only")
            key.unlink()  # from now on only the agent has it
            yield Setup(lab, home, write_inventory(base / "inventory.yaml", lab), env, public)
    finally:
        lab.down()


def accepted_keys(text: str) -> list[str]:
    return re.findall(r"Accepted publickey for root from \S+ port \d+ ssh2: \S+ (SHA256:\S+)", text)


def test_refusals_change_nothing(setup: Setup, tmp_path: Path) -> None:
    """A ProxyJump loop, an ssh config the inventory names but that is missing, a host alias nothing resolves,
    a changed key behind the jump host, the jump host's key unknown: exit 2, one line naming it, nothing
    touched on any host."""
    lab = setup.lab
    before = tree_digest(lab)
    loop_home = tmp_path / "loop"
    shutil.copytree(setup.home, loop_home)
    (loop_home / ".ssh" / "lab.d" / "30-loop.conf").write_text("Host jump\n    ProxyJump master02-behind\n")
    res = etcdrescue("check", "-i", str(setup.inventory), env={**setup.env, "HOME": str(loop_home)})
    assert (res.returncode, res.stderr) == (2, f"etcdrescue: ssh config {loop_home}/.ssh/config: ProxyJump loop: "
                                               "jump -> master02-behind -> jump\n")

    missing = write_inventory(tmp_path / "missing.yaml", lab, f"{{user: root, config: {tmp_path}/nope}}")
    res = etcdrescue("check", "-i", str(missing), env=setup.env)
    assert (res.returncode, res.stderr) == (2, f"etcdrescue: ssh config file {tmp_path}/nope not found "
                                               "(set ssh.config: none to use none)\n")

    typo_home = tmp_path / "typo"
    shutil.copytree(setup.home, typo_home)
    conf = typo_home / ".ssh" / "lab.d" / "10-jump.conf"
    conf.write_text(conf.read_text().replace("ProxyJump jump", "ProxyJump jmup.invalid"))
    res = etcdrescue("check", "-i", str(setup.inventory), env={**setup.env, "HOME": str(typo_home)})
    assert res.returncode == 2, res.stdout + res.stderr
    assert "cannot resolve host name 'jmup.invalid' (no ssh config HostName for it either)" in res.stdout + res.stderr

    changed_home = tmp_path / "changed"
    shutil.copytree(setup.home, changed_home)
    h1, h2 = lab.hosts[1], lab.hosts[2]
    known = changed_home / ".ssh" / "known_hosts"
    wrong = (h1.dir / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    subprocess.run(["ssh-keygen", "-R", f"[{h2.ip}]:2222", "-f", str(known)], check=True, capture_output=True)
    with known.open("a") as f:
        f.write(f"[{h2.ip}]:2222 {' '.join(wrong)}\n")
    res = etcdrescue("check", "-i", str(setup.inventory), env={**setup.env, "HOME": str(changed_home)})
    assert res.returncode == 2, res.stdout + res.stderr
    line = next(ln for ln in (res.stdout + res.stderr).splitlines() if "CHANGED" in ln)
    real = (h2.dir / "ssh_host_ed25519_key.pub").read_text()
    assert fingerprint_of(real) in line and fingerprint_of(" ".join(wrong)) in line
    scan = (f"ssh -F {changed_home}/.ssh/config -o UserKnownHostsFile={known} -p 2222 root@jump "
            f"ssh-keyscan -p 2222 {h2.ip}")
    assert f"`{scan}`" in line and f"`ssh-keygen -R '[{h2.ip}]:2222' -f {known}`" in line
    # the check the message prints, run by hand as printed, shows the key the master really has
    shown = subprocess.run(scan, shell=True, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                           env={**os.environ, **setup.env, "HOME": str(changed_home)})
    assert real.split()[1] in shown.stdout, shown.stderr

    unknown_home = tmp_path / "unknown-jump"  # the jump host's own key is checked before anything goes through it
    shutil.copytree(setup.home, unknown_home)
    h0 = lab.hosts[0]
    known = unknown_home / ".ssh" / "known_hosts"
    subprocess.run(["ssh-keygen", "-R", f"[{h0.ip}]:2222", "-f", str(known)], check=True, capture_output=True)
    res = etcdrescue("check", "-i", str(setup.inventory), env={**setup.env, "HOME": str(unknown_home)})
    assert res.returncode == 2, res.stdout + res.stderr
    jump_fp = fingerprint_of((h0.dir / "ssh_host_ed25519_key.pub").read_text())
    assert (f"{h1.name}: jump host jump: {h0.ip}:2222: host key not in {known} (offered ssh-ed25519 {jump_fp}): "
            f"refusing; check it by hand with `ssh-keyscan -p 2222 {h0.ip}` and add it to {known}") in res.stdout
    assert tree_digest(lab) == before


def test_recover_behind_a_jump_host_with_an_agent_key(setup: Setup, tmp_path: Path) -> None:
    lab = setup.lab
    b = break_lab(lab, "openshift")
    before = snapshot(lab)
    offsets = [setup.log(i).stat().st_size for i in range(len(lab.hosts))]
    res = etcdrescue("recover", "-i", str(setup.inventory), "--backup", str(b.backup), "--yes",
                     "--journal", str(tmp_path / "j"), env=setup.env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_recovered(b, tmp_path / "j", keys=500, post=0)
    assert audit(lab, before) == []
    logs = [setup.log(i).read_bytes()[offsets[i]:].decode(errors="replace") for i in range(len(lab.hosts))]
    for h, text in zip(lab.hosts, logs, strict=True):  # one login per master, the jump host's shared
        assert accepted_keys(text) == [setup.agent_fingerprint], f"{h.name}: {accepted_keys(text)}"
    forwarded = re.findall(r"server_request_direct_tcpip: originator \S+ port \d+, target (\S+) port (\d+)", logs[0])
    assert sorted(forwarded) == sorted((h.ip, "2222") for h in lab.hosts[1:]), logs[0][-3000:]


# -- the transport on the same lab, in process ---------------------------------------------------------------

@pytest.fixture
def as_operator(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> Setup:
    for name, value in setup.env.items():
        monkeypatch.setenv(name, value)
    return setup


def etcd_names(hosts: Hosts, names: list[str]) -> list[str]:
    return [hosts.run(n, "sed -n 's/^ETCD_NAME=//p' /etc/etcd/etcd.conf").stdout.strip() for n in names]


def test_one_connection_per_login_and_reconnect_after_the_jump_host_drops(as_operator: Setup) -> None:
    lab = as_operator.lab
    inv = load_inventory(as_operator.inventory)
    names = [m.name for m in inv.members]
    with Hosts(inv) as hosts:
        assert etcd_names(hosts, names) == names  # each alias reached its own master through the jump host
        assert etcd_names(hosts, names) == names
        assert hosts.connections.opened == 3  # the jump host's one connection also carries the other two
        killed = lab.exec(0, "pkill -x -f 'sshd: root@notty'")
        assert killed.returncode == 0, killed.stderr
        deadline = time.monotonic() + 15  # paramiko's threads notice; slowly on a loaded machine
        while any(hosts[n].connected for n in names):
            assert time.monotonic() < deadline, "the members behind the jump host did not notice it dropped"
            time.sleep(0.05)
        assert etcd_names(hosts, list(reversed(names))) == list(reversed(names))
        assert hosts.connections.opened == 6  # the jump host once more, and each member behind it


def write_config_home(home: Path, setup: Setup, first_lines: str) -> None:
    shutil.copytree(setup.home, home)
    config = home / ".ssh" / "config"
    config.write_text(first_lines + config.read_text())


def test_identities_only_offers_only_the_agent_key_of_a_named_file(as_operator: Setup, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the `.pub` of the agent's key is on disk: with IdentitiesOnly that is how ssh finds the agent key
    to offer; naming another key's `.pub` leaves the agent's key unoffered."""
    (tmp_path / "agent.pub").write_text(as_operator.agent_public + "\n")
    (tmp_path / "other.pub").write_text(ssh_keypair()[1] + "\n")
    names = [h.name for h in as_operator.lab.hosts]
    for key, works in (("agent", True), ("other", False)):
        home = tmp_path / f"home-{key}"
        write_config_home(home, as_operator, f"IdentitiesOnly yes\nIdentityFile {tmp_path}/{key}\n")
        monkeypatch.setenv("HOME", str(home))
        inv = load_inventory(as_operator.inventory)
        assert inv.ssh.config == f"{home}/.ssh/config"
        with Hosts(inv) as hosts:
            if works:
                assert etcd_names(hosts, names) == names
            else:
                with pytest.raises(TransportError, match=r"jump host jump: SSH authentication as root failed: "
                                                         r"neither .*/other nor the agent holds a key to offer"):
                    hosts.run(names[1], "true")


def test_a_passphrase_protected_identity_file_the_agent_holds(as_operator: Setup, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The inventory names a key file whose passphrase etcdrescue is not given; an agent holding only
    that key logs in with it, and without the agent the same inventory is refused."""
    lab = as_operator.lab
    key = tmp_path / "id_locked"
    with ssh_agent(tmp_path / "agent.sock") as agent_env:
        public = add_key(lab, key, {**as_operator.env, **agent_env}, "locked")
        subprocess.run(["ssh-keygen", "-p", "-P", "", "-N", "not given to etcdrescue", "-f", str(key)], check=True,
                       capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", agent_env["SSH_AUTH_SOCK"])
        inv = load_inventory(write_inventory(tmp_path / "inventory.yaml", lab, f"{{user: root, identity_file: {key}}}"))
        offsets = [as_operator.log(i).stat().st_size for i in range(len(lab.hosts))]
        with Hosts(inv) as hosts:
            assert etcd_names(hosts, [lab.hosts[2].name]) == [lab.hosts[2].name]
        for i in (0, 2):  # the jump host's login and the member's, both with the agent's copy of the locked key
            text = as_operator.log(i).read_bytes()[offsets[i]:].decode(errors="replace")
            assert accepted_keys(text) == [fingerprint_of(public)]
    monkeypatch.delenv("SSH_AUTH_SOCK")
    with Hosts(inv) as hosts, pytest.raises(TransportError, match=r"authentication .*encrypted"):
        hosts.run(lab.hosts[2].name, "true")


async def wizard_recovery(inventory: Path, backup: str, journal: Path) -> None:
    """The wizard driven by keys: inventory (enter), pre-flight (n), plan (s), every confirmation (y)."""
    from textual.pilot import Pilot

    from etcdrescue.screens.app import RescueApp
    from etcdrescue.screens.inventory import InventoryScreen
    from etcdrescue.screens.plan import PlanScreen
    from etcdrescue.screens.preflight import PreflightScreen
    from etcdrescue.screens.run import Phase, RunOutcome, RunScreen
    from etcdrescue.screens.widgets import ConfirmScreen

    async def until(pilot: Pilot[int], cond: Callable[[], object], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await pilot.pause(0.05)

    app = RescueApp(inventory, backup, journal_dir=journal, gate_timeout=90)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, InventoryScreen), "the inventory screen")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PreflightScreen) and app.screen.report is not None,
                    "the pre-flight verdict")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, PlanScreen), "the plan")
        await pilot.press("s")
        await until(pilot, lambda: any(isinstance(s, RunScreen) for s in app.screen_stack), "the run")
        run = next(s for s in app.screen_stack if isinstance(s, RunScreen))
        deadline = time.monotonic() + 200
        while run.phase is not Phase.ENDED:
            assert time.monotonic() < deadline and run.phase is not Phase.FAILED, run.record.error
            if isinstance(app.screen, ConfirmScreen):
                await pilot.press("y")
            await pilot.pause(0.05)
        assert run.record.status is RunOutcome.RECOVERED, run.record.error


def test_the_wizard_recovers_behind_the_jump_host(as_operator: Setup, tmp_path: Path) -> None:
    lab = as_operator.lab
    b = break_lab(lab, "openshift")
    assert b.backup
    offsets = [as_operator.log(i).stat().st_size for i in range(len(lab.hosts))]
    asyncio.run(wizard_recovery(as_operator.inventory, b.backup, tmp_path / "j"))
    assert_recovered(b, tmp_path / "j", keys=500, post=0)
    jump_log = as_operator.log(0).read_bytes()[offsets[0]:].decode(errors="replace")
    forwarded = re.findall(r"server_request_direct_tcpip: originator \S+ port \d+, target (\S+) port (\d+)", jump_log)
    assert sorted(set(forwarded)) == sorted((h.ip, "2222") for h in lab.hosts[1:]), jump_log[-3000:]


def test_discover_writes_an_inventory_resolved_through_the_ssh_config(setup: Setup, tmp_path: Path) -> None:
    """`Host` patterns on the members' addresses (as discover writes them, from the peer URLs) carry the port
    and the jump: the written inventory names the config and leaves user and port to it."""
    lab = setup.lab
    jump, *behind = lab.hosts
    config = tmp_path / "ssh_config"
    config.write_text(f"Host jump {jump.ip}\n    HostName {jump.ip}\n    Port 2222\n"
                      f"Host {' '.join(h.ip for h in behind)}\n    ProxyJump jump\n    Port 2222\n")
    found = tmp_path / "found.yaml"
    res = etcdrescue("inventory", "discover", "jump", "--ssh-config", str(config), "-o", str(found), env=setup.env)
    assert res.returncode == 0, res.stdout + res.stderr
    text = found.read_text()
    assert f"  config: {config}" in text and "  user:" not in text and "  port:" not in text, text
    inv = load_inventory(found)
    # the master it reached keeps the name it was given; the others come from their peer URLs
    assert sorted(m.host for m in inv.members) == sorted(["jump", *(h.ip for h in behind)])
    offset = setup.log(0).stat().st_size
    res = etcdrescue("check", "-i", str(found), env=setup.env)
    assert "UNREACHABLE" not in res.stdout, res.stdout + res.stderr
    assert "cluster still has a healthy quorum (3/3" in res.stdout + res.stderr  # surveyed all three
    jump_log = setup.log(0).read_bytes()[offset:].decode(errors="replace")
    forwarded = re.findall(r"server_request_direct_tcpip: originator \S+ port \d+, target (\S+) port (\d+)", jump_log)
    assert sorted(set(forwarded)) == sorted((h.ip, "2222") for h in behind), jump_log[-3000:]
