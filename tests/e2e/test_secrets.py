"""The SSH key passphrase never shows: not on the console, in the journal, the runbook or the report."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from etcdrescue.journal import MASK, Journal, read_journal
from etcdrescue.lab import Lab

from .conftest import requires_lab
from .helpers import break_lab, etcdrescue, exported_documents
from .test_recover import assert_recovered

LabFactory = Callable[..., Lab]
PASSPHRASE = "Tr0ub4dor&3 horse-battery"  # a space and a shell metacharacter: quoting bugs would show too


def test_journal_masks_secrets(tmp_path: Path) -> None:
    j = Journal.create(tmp_path, "c", "S", ("s3cr3t-pass", ""))
    j.write("command", script="echo s3cr3t-pass", stdout="xx s3cr3t-pass yy", nested={"a": ["s3cr3t-pass"]})
    j.close()
    text = (tmp_path / "c-S.jsonl").read_text()
    assert "s3cr3t-pass" not in text
    (event,) = read_journal(tmp_path / "c-S.jsonl")
    assert event["stdout"] == f"xx {MASK} yy" and event["nested"] == {"a": [MASK]}


def test_journal_masks_secrets_that_json_escapes(tmp_path: Path) -> None:
    """A secret with a quote or backslash is escaped inside JSON: masking must still hide it."""
    secret = 'pa"ss\\word'
    j = Journal.create(tmp_path, "c", "S", (secret,))
    j.write("command", stderr=f"auth failed for {secret}")
    j.close()
    (event,) = read_journal(tmp_path / "c-S.jsonl")
    assert secret not in event["stderr"], event


@pytest.mark.lab
@requires_lab
@pytest.mark.timeout(400)
def test_passphrase_never_shows(lab_factory: LabFactory, tmp_path: Path) -> None:
    b = break_lab(lab_factory(3, subnet=85), "openshift")
    lab = b.lab
    assert b.backup
    key = tmp_path / "id_encrypted"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(key)], check=True)
    with open(lab.root / "authorized_keys", "a", encoding="utf-8") as f:
        f.write(key.with_name("id_encrypted.pub").read_text())
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["ssh"]["identity_file"] = str(key)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump(data))
    journal = tmp_path / "j"
    env = {"ETCDRESCUE_KEY_PASSPHRASE": PASSPHRASE}
    outputs: dict[str, str] = {}

    wrong = etcdrescue("check", "-i", str(inv), env={"ETCDRESCUE_KEY_PASSPHRASE": PASSPHRASE + "x"}, timeout=90)
    assert wrong.returncode != 0  # the key really is encrypted: the right passphrase is what lets us in
    outputs["check with a wrong passphrase"] = wrong.stdout + wrong.stderr

    res = etcdrescue("recover", "-i", str(inv), "--backup", b.backup, "--yes", "--journal", str(journal),
                     "--verbose", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert_recovered(b, journal, keys=500, post=0)
    outputs["recover"] = res.stdout + res.stderr
    (path,) = list(journal.glob("*.jsonl"))
    outputs["journal"] = path.read_text()
    assert json.loads(outputs["journal"].splitlines()[-1])["ok"] is True
    outputs.update(exported_documents(path, inv, b.backup, env))
    for where, text in outputs.items():
        for fragment in (PASSPHRASE, PASSPHRASE.split()[0], PASSPHRASE.split()[1]):
            assert fragment not in text, f"passphrase fragment {fragment!r} in {where}"
    assert len(outputs["journal"]) > 10_000 and "master01.lab.example" in outputs["recover"]
