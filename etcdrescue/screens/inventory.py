"""Screen 1: which inventory (and which backup on the seed) to work on.

Validation is the core's `load_inventory`: its one-line errors already name the
file and the field, so they are shown verbatim under the field they concern.
Nothing here opens a connection: a bad inventory never reaches SSH. Without an
inventory, one can be written here: discovered from a master (read-only) or imported
from an openshift-ansible file (`new_inventory`); the file written is then picked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ..errors import InputError
from .recent import load_recent, remember
from .widgets import RescueHeader

if TYPE_CHECKING:
    from ..inventory.model import Inventory
    from ..model import Method


@dataclass(frozen=True)
class InventoryChoice:
    inventory: Inventory
    path: str
    backup: str | None
    method: Method
    etcd_tools: str | None = None
    """`--etcd-tools DIR`: tools on this machine for hosts that have none of the version etcd runs there."""


def validate(path: str, backup: str, method: str | None, seed: str | None) -> tuple[InventoryChoice | None, str, str]:
    """(choice, inventory error, backup error): the CLI's checks (`session.choose`), split per field."""
    from ..inventory.model import load_inventory
    from ..session import check_options

    if not path.strip():
        return None, "inventory: required: the path of the inventory YAML", ""
    try:
        inv = load_inventory(path.strip()).with_seed(seed)
    except InputError as exc:
        return None, str(exc), ""
    try:
        chosen, m = check_options(inv, backup.strip() or None, method)
    except InputError as exc:
        return None, "", f"backup: {exc}"
    return InventoryChoice(inv, path.strip(), chosen, m), "", ""


TOOLS_HINT = "etcd tools (optional): a local dir with etcdctl, etcdutl of etcd's minor"
"""The minor is the one the pre-flight names ("etcd 3.6.17 runs there: give --etcd-tools DIR with etcdctl and etcdutl
of 3.6"), and the field, once filled, says which version its tools are."""


def validate_tools(directory: str) -> tuple[str | None, str, str]:
    """(directory, what it holds, error) for the `--etcd-tools` field: the CLI's check (`upload.find_local`)."""
    from ..upload import find_local

    if not directory.strip():
        return None, "", ""
    try:
        found = find_local(directory.strip())
    except InputError as exc:
        return None, "", str(exc)
    minor = ".".join(found.version.split(".")[:2])
    return (directory.strip(), f"{' and '.join(sorted(found.files))} {found.version}: for masters where etcd "
                               f"{minor} runs", "")


class InventoryScreen(Screen[InventoryChoice | None]):
    DEFAULT_CSS = """
    InventoryScreen #form { padding: 0 2; }
    InventoryScreen Label { margin-top: 1; }
    InventoryScreen .error { color: $error; text-style: bold; height: auto; display: none; }
    InventoryScreen .error.shown { display: block; }
    InventoryScreen #tools-label { margin-top: 0; }
    InventoryScreen #tools-found { color: $text-muted; height: auto; display: none; }
    InventoryScreen #tools-found.shown { display: block; }
    InventoryScreen #recent { height: 1fr; min-height: 3; }
    InventoryScreen #buttons { height: auto; }
    InventoryScreen #buttons Button { margin-right: 2; }
    """
    BINDINGS = [Binding("ctrl+n", "submit", "Next"), Binding("f2", "discover", "Discover"),
                Binding("f3", "import_ansible", "Import Ansible"), Binding("escape", "app.quit", "Quit")]

    def __init__(self, path: str = "", backup: str = "", method: str | None = None, seed: str | None = None,
                 etcd_tools: str = "") -> None:
        super().__init__()
        self.path, self.backup, self.method, self.seed, self.etcd_tools = path, backup, method, seed, etcd_tools
        self.recent = load_recent()

    def compose(self) -> ComposeResult:
        yield RescueHeader()
        with Vertical(id="form"):
            yield Label("Inventory file (YAML)")
            yield Input(self.path, placeholder="/path/to/inventory.yaml", id="inventory")
            yield Static("", id="inventory-error", classes="error")
            yield Label("Backup on the seed (absolute path; empty = use the seed's own data)")
            yield Input(self.backup, placeholder="/var/lib/etcd/openshift-backup-...", id="backup")
            yield Static("", id="backup-error", classes="error")
            yield Label(TOOLS_HINT, id="tools-label")
            yield Input(self.etcd_tools, placeholder="empty: the hosts' own tools, or their etcd image's",
                        id="etcd-tools")
            yield Static("", id="tools-found")
            yield Static("", id="tools-error", classes="error")
            yield Label("Recent inventories (enter picks)")
            yield OptionList(*[Option(f"{d['inventory']}  {d['backup']}", id=str(i))
                               for i, d in enumerate(self.recent)], id="recent")
            with Horizontal(id="buttons"):
                yield Button("Next (enter)", variant="primary", id="next")
                yield Button("Discover from a host (F2)", id="discover")
                yield Button("Import an Ansible file (F3)", id="import")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#inventory", Input).focus()
        if self.path:
            self.check(show_ok=False)

    def check(self, show_ok: bool = True) -> InventoryChoice | None:
        path = self.query_one("#inventory", Input).value
        backup = self.query_one("#backup", Input).value
        choice, inv_err, backup_err = validate(path, backup, self.method, self.seed)
        tools, found, tools_err = validate_tools(self.query_one("#etcd-tools", Input).value)
        self.query_one("#tools-found", Static).update(found)
        self.query_one("#tools-found", Static).set_class(bool(found), "shown")
        for selector, text in (("#inventory-error", inv_err), ("#backup-error", backup_err),
                               ("#tools-error", tools_err)):
            widget = self.query_one(selector, Static)
            widget.update(text)
            widget.set_class(bool(text), "shown")
        if choice is None or tools_err:
            return None
        return replace(choice, etcd_tools=tools)

    def action_submit(self) -> None:
        choice = self.check()
        if choice is not None:
            remember(choice.path, choice.backup)
            self.dismiss(choice)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"next": self.action_submit, "discover": self.action_discover, "import": self.action_import_ansible}
        if event.button.id in actions:
            actions[event.button.id]()

    def action_discover(self) -> None:
        from .new_inventory import DiscoverScreen

        self.app.push_screen(DiscoverScreen(), callback=self.picked)

    def action_import_ansible(self) -> None:
        from .new_inventory import ImportScreen

        self.app.push_screen(ImportScreen(), callback=self.picked)

    def picked(self, path: str | None) -> None:
        """A written inventory is taken as if typed in; the backup is asked next."""
        if path is None:
            return
        self.query_one("#inventory", Input).value = path
        self.query_one("#backup", Input).focus()
        self.check()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        d = self.recent[int(event.option.id or 0)]
        self.query_one("#inventory", Input).value = d["inventory"]
        self.query_one("#backup", Input).value = d["backup"]
        self.query_one("#inventory", Input).focus()
        self.check()
