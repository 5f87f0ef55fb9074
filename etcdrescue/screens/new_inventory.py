"""Inventories written from the wizard's first screen: discovered from a master, or imported from Ansible.

Each screen is a small form; the core (`discover`, `ansible_inventory.convert`) does the work in a
thread, its one-line errors are shown under the form, and the result is saved as a new file under
the state directory (`inventories/<cluster>-<stamp>.yaml`, never over another) and shown as
written, comments included, before the operator takes it. The screen's value is that file's path.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ..errors import InputError, RescueError
from ..inventory.writer import InventoryDraft, write_new
from ..journal import default_dir
from ..model import new_stamp
from .widgets import relabel


def save(draft: InventoryDraft, text: str) -> Path:
    """A new file for a written inventory, next to the journals and the recent list."""
    folder = default_dir() / "inventories"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{draft.cluster}-{new_stamp()}.yaml"
    write_new(str(path), text)
    return path


class NewInventoryScreen(ModalScreen[str | None]):
    """Form, then the written file; enter on the file takes it, escape goes back without one."""

    DEFAULT_CSS = """
    NewInventoryScreen { align: center middle; }
    NewInventoryScreen > Vertical { width: 96; max-width: 98%; height: auto; max-height: 95%;
                                    border: thick $primary; background: $surface; padding: 0 1; }
    NewInventoryScreen #fields { height: auto; }
    NewInventoryScreen .row { height: auto; }
    NewInventoryScreen .row Label { width: 22; padding: 1 1 0 0; }
    NewInventoryScreen .row Input { width: 1fr; }
    NewInventoryScreen #error { color: $error; text-style: bold; height: auto; }
    NewInventoryScreen #preview { height: 1fr; min-height: 8; display: none; border: round $primary; }
    NewInventoryScreen.written #preview { display: block; }
    NewInventoryScreen.written #fields { display: none; }
    NewInventoryScreen #buttons { height: auto; align-horizontal: center; }
    NewInventoryScreen Button { margin: 0 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Back")]
    HEADING = ""
    FIELDS: tuple[tuple[str, str, str], ...] = ()
    """(id, label, initial value)"""

    def __init__(self) -> None:
        super().__init__()
        self.written: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.HEADING, style="bold"), id="heading")
            with Vertical(id="fields"):
                for key, label, value in self.FIELDS:
                    with Horizontal(classes="row"):
                        yield Label(label)
                        yield Input(value, id=key)
            yield Static("", id="error")
            with VerticalScroll(id="preview"):
                yield Static("", id="text", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Write the inventory (enter)", variant="primary", id="go")
                yield Button("Back (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def values(self) -> dict[str, str]:
        return {key: self.query_one(f"#{key}", Input).value.strip() for key, _, _ in self.FIELDS}

    def produce(self, values: dict[str, str]) -> tuple[InventoryDraft, str]:
        raise NotImplementedError

    def write(self, values: dict[str, str]) -> tuple[Path, str]:
        draft, text = self.produce(values)
        return save(draft, text), text

    async def go(self) -> None:
        if self.written is not None:
            self.dismiss(str(self.written))
            return
        error = self.query_one("#error", Static)
        error.update("working ...")
        try:
            path, text = await asyncio.to_thread(self.write, self.values())
        except RescueError as exc:
            error.update(str(exc))
            return
        self.written = path
        error.update("")
        self.query_one("#heading", Static).update(Text(f"Written to {path}: check the comments", style="bold"))
        self.query_one("#text", Static).update(text)
        self.add_class("written")
        button = self.query_one("#go", Button)
        relabel(button, "Use this inventory (enter)")
        button.focus()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        await self.go()

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "go":
            await self.go()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DiscoverScreen(NewInventoryScreen):
    HEADING = "Discover the members from one reachable master (read-only)"
    FIELDS = (("host", "Master (SSH address)", ""), ("port", "SSH port", "22"), ("user", "SSH user", "root"),
              ("identity", "SSH key (empty: agent)", ""), ("known_hosts", "known_hosts", "~/.ssh/known_hosts"),
              ("profile", "Profile (empty: detect)", ""))

    def produce(self, values: dict[str, str]) -> tuple[InventoryDraft, str]:
        from ..inventory.discover import Target, discover
        from ..session import PASSPHRASE_ENV

        if not values["port"].isdigit():
            raise InputError(f"SSH port: not a number: {values['port']!r}")
        local = {k: str(Path(values[k]).expanduser().absolute()) if values[k] else None
                 for k in ("identity", "known_hosts")}
        target = Target(values["host"], int(values["port"]), values["user"] or "root", local["identity"],
                        local["known_hosts"] or str(Path("~/.ssh/known_hosts").expanduser()))
        found = discover(target, values["profile"] or None, passphrase=os.environ.get(PASSPHRASE_ENV))
        return found.draft, found.text


class ImportScreen(NewInventoryScreen):
    HEADING = "Import an openshift-ansible inventory (INI or YAML)"
    FIELDS = (("file", "Ansible inventory", "/etc/ansible/hosts"), ("known_hosts", "known_hosts (empty: default)", ""))

    def produce(self, values: dict[str, str]) -> tuple[InventoryDraft, str]:
        from ..inventory.ansible import convert

        if not values["file"]:
            raise InputError("Ansible inventory: required: the path of the hosts file")
        known = str(Path(values["known_hosts"]).expanduser().absolute()) if values["known_hosts"] else None
        found = convert(Path(values["file"]), known_hosts=known)
        return found.draft, found.text
