"""SSHHost against real sshd on lab masters: commands, streaming, timeouts, host keys, files, reconnects."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest_lab import requires_lab

from etcdrescue.errors import EXIT_REFUSED, HostKeyError, TransportError
from etcdrescue.lab import Lab
from etcdrescue.lab.pki import ssh_keypair
from etcdrescue.ssh.route import Endpoint
from etcdrescue.ssh.transport import SSHConfig, SSHHost

pytestmark = [pytest.mark.lab, requires_lab, pytest.mark.timeout(120)]

SUBNET = 40


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One 2-member lab for the whole module (a lab per test would cost seconds each)."""
    lab = Lab(tmp_path_factory.mktemp("transport") / "lab", 2, subnet=SUBNET)
    try:
        lab.up(timeout=60)
        yield lab
    finally:
        lab.down()


def config(lab: Lab, index: int = 0, *, known_hosts: str | None = None, identity_file: str | None = None,
           **kw: object) -> SSHConfig:
    h = lab.hosts[index]
    args: dict[str, object] = {"name": h.ip, "host": h.ip, "port": h.ssh_port, "user": "root"}
    args.update(kw)
    return SSHConfig((Endpoint(**args,  # type: ignore[arg-type]
                               known_hosts=(known_hosts or str(lab.known_hosts),),
                               identity_files=(identity_file or str(lab.identity_file),)),))


@pytest.fixture
def host(lab: Lab) -> Iterator[SSHHost]:
    with SSHHost(lab.hosts[0].name, config(lab)) as h:
        yield h


def host_key_fingerprint(lab: Lab, index: int) -> str:
    blob = base64.b64decode((lab.hosts[index].dir / "ssh_host_ed25519_key.pub").read_text().split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


# -- commands ----------------------------------------------------------------------------------

def test_exit_code_stdout_stderr(host: SSHHost) -> None:
    res = host.run("echo out; echo err >&2; exit 3")
    assert (res.exited, res.ok, res.stdout, res.stderr) == (3, False, "out\n", "err\n")
    assert res.output == "out\n\nerr" and res.raw_stdout == b"out\n"
    assert res.host == host.name and 0 < res.duration < 5
    assert host.run("true").ok


def test_runs_in_bash_on_the_master(lab: Lab, host: SSHHost) -> None:
    res = host.run('echo "$BASH_VERSION"; cat /etc/etcd/etcd.conf | grep ^ETCD_NAME=')
    assert res.ok and res.stdout.splitlines()[0][:1] in "45"
    assert res.stdout.splitlines()[1] == f"ETCD_NAME={lab.hosts[0].name}"


def test_streaming_gets_lines_in_order_while_running(host: SSHHost) -> None:
    seen: list[tuple[float, str]] = []
    start = time.monotonic()
    res = host.run("for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done; printf tail",
                   on_output=lambda line: seen.append((time.monotonic() - start, line)))
    assert res.ok
    assert [line for _, line in seen] == ["line1", "line2", "line3", "line4", "line5", "tail"]
    assert seen[0][0] < seen[-1][0] - 0.5, "first line only arrived at the end: not streamed"
    assert res.stdout == "line1\nline2\nline3\nline4\nline5\ntail"


def test_timeout_kills_the_remote_command(lab: Lab, host: SSHHost) -> None:
    start = time.monotonic()
    try:
        res = host.run("sleep 100", timeout=2)
        assert not res.ok
    except TransportError:
        pass
    assert time.monotonic() - start < 9
    left = lab.exec(0, "pgrep -x sleep")
    assert left.returncode == 1, f"sleep still running on the host: {left.stdout}"
    assert host.run("echo alive").stdout == "alive\n"


def test_commands_reuse_one_connection(host: SSHHost) -> None:
    first = host.run("echo $SSH_CONNECTION").stdout
    transport = host.transport
    assert transport is not None
    for _ in range(25):
        assert host.run("echo $SSH_CONNECTION").stdout == first  # same client port: same TCP connection
    assert host.transport is transport


def test_scripts_run_side_by_side_on_the_one_connection(lab: Lab, host: SSHHost) -> None:
    """Three scripts that each wait for the other two finish only if they run at the same time; all three
    on one TCP connection (one login), as the gates' parallel probes need."""
    import threading

    from etcdrescue.ssh.transport import SHELLS

    assert SHELLS >= 3
    d = f"/tmp/side-by-side-{time.monotonic_ns()}"
    host.run(f"mkdir -p {d}")
    script = (f"touch {d}/$RANDOM$RANDOM; for _ in $(seq 100); do test $(ls {d} | wc -l) -ge 3 && break; "
              "sleep 0.05; done; test $(ls " + d + " | wc -l) -ge 3 && echo $SSH_CONNECTION")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(host.run(script, timeout=20).stdout)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 3 and len(set(results)) == 1 and results[0].strip(), results


# -- host keys and authentication ----------------------------------------------------------------

def assert_one_line(exc: Exception) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg, msg
    return msg


def test_unknown_host_key_refused(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError) as info, SSHHost("m0", config(lab, known_hosts=str(empty))) as h:
        h.run("true")
    msg = assert_one_line(info.value)
    assert host_key_fingerprint(lab, 0) in msg and str(empty) in msg
    assert info.value.exit_code == EXIT_REFUSED


def test_other_hosts_key_is_refused_as_changed(lab: Lab, tmp_path: Path) -> None:
    h0, h1 = lab.hosts[0], lab.hosts[1]
    wrong = tmp_path / "known_hosts"
    other = (h1.dir / "ssh_host_ed25519_key.pub").read_text().split()
    wrong.write_text(f"[{h0.ip}]:{h0.ssh_port} {other[0]} {other[1]}\n")
    with pytest.raises(HostKeyError) as info, SSHHost("m0", config(lab, known_hosts=str(wrong))) as h:
        h.run("true")
    msg = assert_one_line(info.value)
    assert "CHANGED" in msg
    assert host_key_fingerprint(lab, 0) in msg and host_key_fingerprint(lab, 1) in msg


def test_missing_known_hosts_refused(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(HostKeyError) as info, SSHHost("m0", config(lab, known_hosts=str(tmp_path / "nope"))) as h:
        h.run("true")
    assert str(tmp_path / "nope") in assert_one_line(info.value)


def test_wrong_identity_is_a_transport_error(lab: Lab, tmp_path: Path) -> None:
    key = tmp_path / "id_other"
    key.write_bytes(ssh_keypair()[0])
    key.chmod(0o600)
    env_sock = os.environ.pop("SSH_AUTH_SOCK", None)  # an agent key must not rescue the test
    try:
        with pytest.raises(TransportError) as info, SSHHost("m0", config(lab, identity_file=str(key))) as h:
            h.run("true")
    finally:
        if env_sock is not None:
            os.environ["SSH_AUTH_SOCK"] = env_sock
    assert not isinstance(info.value, HostKeyError)
    assert "authentication" in assert_one_line(info.value)


def test_missing_identity_file(lab: Lab, tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="identity file"), \
            SSHHost("m0", config(lab, identity_file=str(tmp_path / "nope"))) as h:
        h.run("true")


def test_nothing_listening(lab: Lab) -> None:
    with pytest.raises(TransportError, match="cannot reach"), SSHHost("m0", config(lab, port=1)) as h:
        h.run("true")


# -- files ---------------------------------------------------------------------------------------

def test_read_file_and_a_missing_one(lab: Lab, host: SSHHost) -> None:
    path = "/etc/etcd/rt.bin"
    local = lab.host_path(0, path)
    blob = bytes(range(256)) * 40 + b"\x00\r\n\xff no trailing newline"
    local.write_bytes(blob)
    assert host.read_file(path) == blob
    local.unlink()
    with pytest.raises(TransportError, match="cannot read /var/lib/etcd/absent"):
        host.read_file("/var/lib/etcd/absent")


# -- reconnect ---------------------------------------------------------------------------------------

def test_reconnect_after_close(host: SSHHost) -> None:
    assert host.run("true").ok and host.connected
    host.close()
    assert not host.connected
    assert host.run("echo again").stdout == "again\n"
    assert host.connected


def test_reconnect_after_session_sshd_killed(lab: Lab, host: SSHHost) -> None:
    before = host.run("echo $SSH_CONNECTION").stdout
    # the per-connection sshd is titled "sshd: root@notty"; the listener ("sshd: /usr/sbin/sshd ...") survives
    killed = lab.exec(0, "pkill -x -f 'sshd: root@notty'")
    assert killed.returncode == 0, killed.stderr
    deadline = time.monotonic() + 5
    while host.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    res = host.run("echo $SSH_CONNECTION")
    assert res.ok and res.stdout != before  # a new TCP connection
    assert lab.exec(0, "pgrep -f 'sshd: /usr/sbin/sshd'").returncode == 0 or host.run("true").ok
