"""A run through sudo works, and the sudo password never shows: not on the console, in the journal,
the runbook, the report, or the files the run wrote on the masters."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from etcdrescue.lab import Lab

from .conftest import requires_lab
from .helpers import break_lab, etcdrescue, exported_documents, tree_digest
from .test_recover import assert_recovered

LabFactory = Callable[..., Lab]
# A space, quotes, a backslash and shell metacharacters: a password that leaked into a shell line,
# a JSON string or a file would show, and so would one that was quoted wrongly on its way to sudo.
PASSWORD = "Sud0 p@ss;$(x)'q\"\\|&*#"
FRAGMENTS = (PASSWORD, "Sud0 p@ss", "p@ss;$(x)", "'q\"\\|&*#")
_TOOLS = ("sudo", "visudo", "useradd", "userdel", "chpasswd")
_missing = [t for t in _TOOLS if shutil.which(t) is None]
requires_sudo = pytest.mark.skipif(bool(_missing), reason=f"needs {', '.join(_missing)} (apt-get install -y sudo)")


@pytest.fixture(params=["asks", "nopasswd"])
def sudo_user(request: pytest.FixtureRequest) -> Iterator[str]:
    """A throwaway local user whose sudo asks for PASSWORD (or, `nopasswd`, never asks: then the password
    must not be sent at all); the user and its drop-in go afterwards."""
    user = f"etcdrescue-op-{secrets.token_hex(3)}"
    dropin = Path("/etc/sudoers.d") / user
    subprocess.run(["useradd", "-M", "-s", "/bin/bash", user], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{user}:{PASSWORD}\n", text=True, check=True)
        candidate = dropin.with_name(f".{user}.new")  # sudo ignores names with a dot while it is checked
        # timestamp_timeout=0: sudo asks every time (the masters share /run/sudo/ts across PID namespaces).
        rule = f"{user} ALL=(ALL) NOPASSWD: ALL" if request.param == "nopasswd" else f"{user} ALL=(ALL) ALL"
        candidate.write_text(f"Defaults:{user} timestamp_timeout=0\n{rule}\n")
        candidate.chmod(0o440)
        subprocess.run(["visudo", "-cf", str(candidate)], check=True, capture_output=True)
        candidate.rename(dropin)
        yield user
    finally:
        for leftover in (dropin, dropin.with_name(f".{user}.new"),
                         Path("/var/lib/sudo/lectured") / user, Path("/run/sudo/ts") / user):
            leftover.unlink(missing_ok=True)
        subprocess.run(["userdel", user], check=False, capture_output=True)


@pytest.fixture
def readable_lab_root(tmp_path: Path) -> Iterator[None]:
    """sshd reads the lab's AuthorizedKeysFile as the logging-in user: let a non-root user reach it.

    pytest's temporary directories are 0700 root; they get o+x (traverse, not list) for the test only.
    """
    chain = [p for p in (tmp_path, *tmp_path.parents) if p != Path("/") and p.stat().st_uid == 0]
    modes = {p: p.stat().st_mode & 0o7777 for p in chain}
    for p, mode in modes.items():
        p.chmod(mode | 0o001)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def _leaks(where: str, text: str) -> list[str]:
    return [f"password fragment {f!r} in {where}" for f in FRAGMENTS if f in text]


@pytest.mark.lab
@requires_lab
@requires_sudo
@pytest.mark.timeout(500)
@pytest.mark.usefixtures("readable_lab_root")
def test_sudo_password_never_shows(lab_factory: LabFactory, sudo_user: str, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=90), "openshift")
    lab = b.lab
    assert b.backup
    (lab.root / "authorized_keys").chmod(0o644)  # public keys only
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["ssh"]["user"] = sudo_user
    data["ssh"]["sudo"] = True
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump(data))
    env = {"ETCDRESCUE_SUDO_PASSWORD": PASSWORD}
    outputs: dict[str, str] = {}

    # A wrong password: one clear line, nothing touched, the password nowhere.
    before = tree_digest(lab)
    asks = "NOPASSWD" not in (Path("/etc/sudoers.d") / sudo_user).read_text()
    wrong_env = {"ETCDRESCUE_SUDO_PASSWORD": PASSWORD[::-1]}
    if asks:
        wrong = etcdrescue("recover", "-i", str(inv), "--backup", b.backup, "--yes", "--journal",
                           str(tmp_path / "jw"), "-v", env=wrong_env, timeout=180)
        assert wrong.returncode == 2, wrong.stdout + wrong.stderr  # a pre-flight refusal: nothing changed
        errors = [ln for ln in wrong.stderr.splitlines() if ln.startswith("etcdrescue:")]
        assert len(errors) == 1 and "sudo refused the password" in errors[0], wrong.stderr
    else:  # sudo never asks, so the (wrong) password is never sent: a dry run through sudo works with it
        wrong = etcdrescue("recover", "-i", str(inv), "--backup", b.backup, "--dry-run", "--journal",
                           str(tmp_path / "jw"), env=wrong_env, timeout=180)
        assert wrong.returncode == 0, wrong.stdout + wrong.stderr
    assert tree_digest(lab) == before
    outputs["recover with a wrong password"] = wrong.stdout + wrong.stderr
    for p in (tmp_path / "jw").glob("*.jsonl") if (tmp_path / "jw").is_dir() else ():
        outputs[f"journal of the wrong-password run {p.name}"] = p.read_text()

    journal = tmp_path / "j"
    res = etcdrescue("recover", "-i", str(inv), "--backup", b.backup, "--yes", "--journal", str(journal), "-v",
                     env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_recovered(b, journal, keys=500, post=0)
    outputs["recover"] = res.stdout + res.stderr
    (path,) = list(journal.glob("*.jsonl"))
    outputs["journal"] = path.read_text()
    events = [json.loads(line) for line in outputs["journal"].splitlines()]
    assert events[-1]["ok"] is True
    outputs["journal, decoded"] = "\n".join(str(e) for e in events)  # escaped JSON could hide a leak
    outputs.update(exported_documents(path, inv, b.backup, env))
    # The files the run wrote through `sudo -S` on the masters: a password sudo did not read would land there.
    for h in lab.hosts:
        for sub in ("etc/origin", "etc/etcd"):
            for p in (h.dir / sub).rglob("*"):
                if p.is_file() and not p.is_symlink() and p.stat().st_size < 1_000_000:
                    outputs[f"{h.name}:{p.relative_to(h.dir)}"] = p.read_bytes().decode(errors="replace")
    found = [leak for where, text in outputs.items() for leak in _leaks(where, text)]
    assert not found, found
    assert len(outputs["journal"]) > 10_000 and "master01.lab.example" in outputs["recover"]
    assert "sudo" in outputs["runbook md"]
