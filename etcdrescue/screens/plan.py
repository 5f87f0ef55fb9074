"""Screen 3: the plan the engine will run, step by step, with the exact commands.

The tree is rendered from the engine's own `Plan` object (`build_plan`), never a
copy, so what the operator approves here is exactly what runs. Choosing another
seed goes back through the pre-flight, because the backup, the disk check and
the plan itself all depend on the seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Checkbox, Label, Select, Static, Tree

from ..plan import Plan
from .detail import StepDetailScreen, step_title
from .widgets import RescueFooter, RescueHeader, update_status


@dataclass(frozen=True)
class PlanChoice:
    action: str
    """"start", "back" or "reseed"."""
    seed: str
    dry_run: bool
    confirm_once: bool


def step_label(plan: Plan, i: int) -> Text:
    step = plan.steps[i]
    t = Text()
    t.append("⚠ " if step.destructive else "  ", style="bold yellow")
    t.append(step_title(plan, i), style="bold")
    if step.destructive:
        t.append("  (destructive: asks first)", style="yellow")
    return t


class PlanScreen(Screen[PlanChoice]):
    DEFAULT_CSS = """
    PlanScreen #options { height: 3; padding: 0 1; }
    PlanScreen #options Label { padding: 1 1 0 0; }
    PlanScreen #seed { width: 1fr; max-width: 40; }
    PlanScreen #mode { padding: 0 1; height: auto; }
    PlanScreen Tree { height: 1fr; }
    PlanScreen #detail { height: auto; max-height: 6; padding: 0 1; background: $boost; }
    """
    BINDINGS = [Binding("s", "start", "Start"), Binding("v", "view_step", "Step"),
                Binding("d", "toggle_box('dry')", "Dry run"), Binding("o", "toggle_box('once')", "Ask once"),
                Binding("e", "expand(True)", "Expand all", show=False),
                Binding("c", "expand(False)", "Collapse all", show=False),
                Binding("w", "write_runbook", "Runbook"), Binding("b,escape", "back", "Back")]

    def __init__(self, plan: Plan, *, dry_run: bool = False, confirm_once: bool = False, ask: bool = True,
                 fixed_seed: bool = False, documents: Path | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.documents = documents
        """Where `w` writes the runbook: beside the journals (default ~/.local/state/etcdrescue)."""
        self.fixed_seed = fixed_seed
        """A resumed run keeps the seed of its journal; a procedure other than the quorum recovery chose its own
        (the leader a reclaim defragments last, the voter a replace asks)."""
        self.dry_run, self.confirm_once, self.ask = dry_run, confirm_once, ask

    def compose(self) -> ComposeResult:
        names = [m.name for m in self.plan.ctx.inv.members]
        yield RescueHeader()
        with Horizontal(id="options"):
            yield Label("Seed")
            yield Select([(n, n) for n in names], value=self.plan.ctx.seed.name, allow_blank=False, id="seed",
                         disabled=self.fixed_seed)
            yield Checkbox("Dry run (d)", self.dry_run, id="dry")
            yield Checkbox("Ask once (o)", self.confirm_once or not self.ask, id="once", disabled=not self.ask)
        yield Static(Text(f"Mode: {self.plan.mode}"), id="mode")
        tree: Tree[str] = Tree(f"Plan for {self.plan.ctx.inv.cluster}: {len(self.plan.steps)} steps, "
                               f"stamp {self.plan.ctx.stamp} (e/c expand/collapse all)", id="plan")
        tree.root.expand()
        for i, step in enumerate(self.plan.steps):
            node = tree.root.add(step_label(self.plan, i), data=f"{step_title(self.plan, i)}\nwhy: {step.why}"
                                 + (f"\nasks: {step.destructive}" if step.destructive else "")
                                 + "\nv: the whole step with every command")
            for cmd in step.commands:
                node.add_leaf(Text(f"{cmd.host}$ {cmd.script}"), data=f"{cmd.purpose}:\n{cmd.host}$ {cmd.script}")
            if step.gate is not None:
                node.add_leaf(Text(f"gate: {step.gate.summary}", style="cyan"),
                              data=f"health gate: {step.gate.title}; members {', '.join(step.gate.members)}")
        yield tree
        yield Static("", id="detail")
        yield RescueFooter()

    def on_mount(self) -> None:
        tree = self.query_one(Tree)
        tree.focus()
        tree.move_cursor(tree.root.children[0] if tree.root.children else None)
        self.call_after_refresh(tree.scroll_home, animate=False)  # the cursor's scroll hides the plan's title

    def highlighted_step(self) -> int | None:
        """The step of the highlighted row: the step itself, or the step a command or gate row belongs to."""
        node = self.query_one(Tree).cursor_node
        while node is not None and node.parent is not None and not node.parent.is_root:
            node = node.parent
        if node is None or node.parent is None:
            return None
        return node.parent.children.index(node)

    def action_view_step(self) -> None:
        i = self.highlighted_step()
        if i is not None:
            self.app.push_screen(StepDetailScreen(self.plan, i))

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        self.query_one("#detail", Static).update(Text(event.node.data or ""))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.value != self.plan.ctx.seed.name and isinstance(event.value, str):
            self.dismiss(self.choice("reseed", seed=event.value))

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "dry":
            self.dry_run = event.value
            update_status(self.app, dry_run=event.value)
        elif event.checkbox.id == "once":
            self.confirm_once = event.value

    def choice(self, action: str, seed: str | None = None) -> PlanChoice:
        return PlanChoice(action, seed or self.plan.ctx.seed.name, self.dry_run, self.confirm_once)

    def action_toggle_box(self, which: str) -> None:
        box = self.query_one(f"#{which}", Checkbox)
        if not box.disabled:
            box.toggle()

    def action_expand(self, expand: bool) -> None:
        tree = self.query_one(Tree)
        for node in tree.root.children:
            if expand:
                node.expand_all()
            else:
                node.collapse_all()

    def action_write_runbook(self) -> None:
        """The printable runbook of exactly this plan, next to the journals."""
        from ..documents.runbook import render_markdown
        from ..journal import default_dir

        directory = self.documents or default_dir()
        ctx = self.plan.ctx
        path = Path(directory) / f"{ctx.inv.cluster}-{ctx.stamp}-runbook.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_markdown(self.plan, date=time.strftime("%Y-%m-%d")), encoding="utf-8")
        self.query_one("#detail", Static).update(Text(f"runbook written to {path}"))

    def action_start(self) -> None:
        self.dismiss(self.choice("start"))

    def action_back(self) -> None:
        self.dismiss(self.choice("back"))
