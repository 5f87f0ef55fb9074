"""known_hosts as `ssh` reads it: hashed names, [host]:port, patterns, markers; the one-line refusals."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from etcdrescue.lab.pki import ssh_keypair
from etcdrescue.ssh.known_hosts import KnownHosts, Verdict, fingerprint, keyscan_line, refusal
from etcdrescue.ssh.route import Endpoint


def key() -> tuple[str, bytes]:
    """A public key as known_hosts writes it ("type base64") and its blob."""
    line = ssh_keypair()[1]
    return line, base64.b64decode(line.split()[1])


A, A_BLOB = key()
B, B_BLOB = key()


def known(tmp_path: Path, text: str, name: str = "known_hosts") -> KnownHosts:
    path = tmp_path / name
    path.write_text(text)
    return KnownHosts((str(path),))


def verdict(kh: KnownHosts, name: str, blob: bytes = A_BLOB) -> Verdict:
    return kh.check(name, "ssh-ed25519", blob)[0]


def test_plain_and_bracketed_port_names(tmp_path: Path) -> None:
    kh = known(tmp_path, f"10.0.0.1 {A}\n[10.0.0.2]:2222 {A}\n")
    assert verdict(kh, "10.0.0.1") is Verdict.TRUSTED
    assert verdict(kh, "[10.0.0.2]:2222") is Verdict.TRUSTED
    assert verdict(kh, "[10.0.0.1]:2222") is Verdict.UNKNOWN  # another port is another host, as for ssh
    assert verdict(kh, "10.0.0.2") is Verdict.UNKNOWN
    assert verdict(kh, "10.0.0.1", B_BLOB) is Verdict.CHANGED


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_hashed_names_written_by_ssh_keygen(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"[127.0.120.5]:2222 {A}\nmaster01.example.com {A}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    text = path.read_text()
    assert "127.0.120.5" not in text and text.count("|1|") == 2
    kh = KnownHosts((str(path),))
    assert verdict(kh, "[127.0.120.5]:2222") is Verdict.TRUSTED
    assert verdict(kh, "master01.example.com") is Verdict.TRUSTED
    assert verdict(kh, "MASTER01.example.com") is Verdict.UNKNOWN  # a hash matches one spelling only
    assert verdict(kh, "127.0.120.5") is Verdict.UNKNOWN
    assert verdict(kh, "[127.0.120.5]:2222", B_BLOB) is Verdict.CHANGED


def test_patterns_lists_and_negation(tmp_path: Path) -> None:
    kh = known(tmp_path, f"*.lab.example,!bad.lab.example,10.0.0.? {A}\n[10.0.1.*]:2222 {A}\n")
    assert verdict(kh, "m1.LAB.example") is Verdict.TRUSTED
    assert verdict(kh, "bad.lab.example") is Verdict.UNKNOWN
    assert verdict(kh, "10.0.0.7") is Verdict.TRUSTED and verdict(kh, "10.0.0.17") is Verdict.UNKNOWN
    assert verdict(kh, "[10.0.1.9]:2222") is Verdict.TRUSTED
    assert verdict(kh, "[10.0.1.9]:22") is Verdict.UNKNOWN


def test_markers_comments_and_broken_lines_do_not_stop_the_file(tmp_path: Path) -> None:
    kh = known(tmp_path, f"""\
# comment
@cert-authority *.example.com {B}
garbage
10.0.0.3 ssh-ed25519 !!!notbase64
@revoked 10.0.0.4 {A}
10.0.0.4 {A}
10.0.0.5 {A}
""")
    assert verdict(kh, "10.0.0.5") is Verdict.TRUSTED
    assert verdict(kh, "m.example.com", B_BLOB) is Verdict.UNKNOWN  # host certificates are not trusted
    assert verdict(kh, "10.0.0.4") is Verdict.REVOKED


def test_several_files_missing_ones_hold_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").write_text(f"10.0.0.1 {A}\n")
    kh = KnownHosts((str(tmp_path / "missing"), str(tmp_path / "a")))
    assert kh.existing == (str(tmp_path / "a"),)
    assert verdict(kh, "10.0.0.1") is Verdict.TRUSTED


def test_rsa_signature_names_are_ssh_rsa_keys(tmp_path: Path) -> None:
    blob = b"\x00\x00\x00\x07ssh-rsa" + b"\x01" * 40
    kh = known(tmp_path, f"10.0.0.1 ssh-rsa {base64.b64encode(blob).decode()}\n")
    assert kh.check("10.0.0.1", "rsa-sha2-512", blob)[0] is Verdict.TRUSTED


# -- refusals ---------------------------------------------------------------------------------------------

KH = "/home/op/.ssh/known_hosts"
CFG = "/home/op/.ssh/config"
GW = Endpoint("gw", "203.0.113.5", 2200, "jumper", (KH,), config=CFG)
INNER = Endpoint("inner", "192.168.0.9", 22, "ops", (KH, "/etc/ssh/my hosts"), config=CFG)
MEMBER = Endpoint("m1", "10.0.0.7", 2222, "root", (KH,))


def test_keyscan_line_runs_where_the_connection_would_go() -> None:
    assert keyscan_line((MEMBER,)) == "ssh-keyscan -p 2222 10.0.0.7"
    via_gw = f"ssh -F {CFG} -o UserKnownHostsFile={KH} -p 2200 jumper@gw"
    assert keyscan_line((GW, MEMBER)) == f"{via_gw} ssh-keyscan -p 2222 10.0.0.7"
    assert keyscan_line((GW, INNER, MEMBER)) == (f"ssh -F {CFG} -o 'UserKnownHostsFile={KH} /etc/ssh/my hosts' "
                                                 "-J jumper@gw:2200 -p 22 ops@inner ssh-keyscan -p 2222 10.0.0.7")


def test_unknown_key_message() -> None:
    msg = refusal(Verdict.UNKNOWN, (GW, MEMBER), "ssh-ed25519", A_BLOB, [])
    assert msg == (f"10.0.0.7:2222: host key not in {KH} (offered ssh-ed25519 {fingerprint(A_BLOB)}): refusing; "
                   f"check it by hand with `ssh -F {CFG} -o UserKnownHostsFile={KH} -p 2200 jumper@gw "
                   f"ssh-keyscan -p 2222 10.0.0.7` and add it to {KH}")


def test_changed_key_message_names_the_line_and_the_removal(tmp_path: Path) -> None:
    kh = known(tmp_path, f"# first\n[10.0.0.7]:2222 {B}\n")
    v, on_record = kh.check(MEMBER.key_name, "ssh-ed25519", A_BLOB)
    assert v is Verdict.CHANGED
    member = Endpoint("m1", "10.0.0.7", 2222, "root", kh.files)
    msg = refusal(v, (member,), "ssh-ed25519", A_BLOB, on_record)
    assert "\n" not in msg
    assert msg == (f"host key of 10.0.0.7:2222 CHANGED: offered ssh-ed25519 {fingerprint(A_BLOB)}, "
                   f"{tmp_path}/known_hosts:2 has ssh-ed25519 {fingerprint(B_BLOB)}: refusing; if the change is "
                   f"expected, check the new key with `ssh-keyscan -p 2222 10.0.0.7`, then "
                   f"`ssh-keygen -R '[10.0.0.7]:2222' -f {tmp_path}/known_hosts` and add it")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_the_printed_removal_removes_the_hashed_entry(tmp_path: Path) -> None:
    """The `ssh-keygen -R` line of the message, run as printed, takes the old key out of a hashed file."""
    path = tmp_path / "known_hosts"
    path.write_text(f"[10.0.0.7]:2222 {B}\n10.0.0.8 {B}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    kh = KnownHosts((str(path),))
    member = Endpoint("m1", "10.0.0.7", 2222, "root", kh.files)
    msg = refusal(Verdict.CHANGED, (member,), "ssh-ed25519", A_BLOB, kh.check(member.key_name, "ssh-ed25519",
                                                                               A_BLOB)[1])
    command = msg.split("then `")[1].split("`")[0]
    subprocess.run(command, shell=True, check=True, capture_output=True)
    after = KnownHosts((str(path),))
    assert after.check(member.key_name, "ssh-ed25519", B_BLOB)[0] is Verdict.UNKNOWN
    assert after.check("10.0.0.8", "ssh-ed25519", B_BLOB)[0] is Verdict.TRUSTED


def test_revoked_message(tmp_path: Path) -> None:
    kh = known(tmp_path, f"@revoked * {A}\n")
    v, on_record = kh.check("10.0.0.7", "ssh-ed25519", A_BLOB)
    msg = refusal(v, (Endpoint("m1", "10.0.0.7", 22, "root", kh.files),), "ssh-ed25519", A_BLOB, on_record)
    assert msg == f"host key of 10.0.0.7:22 is marked @revoked in {tmp_path}/known_hosts:1 (offered ssh-ed25519 " \
                  f"{fingerprint(A_BLOB)}): refusing"
