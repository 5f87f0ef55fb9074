"""etcd's flags as the `command:` items of a kubeadm static pod manifest, read on the bastion and edited on the host.

kubeadm writes `/etc/kubernetes/manifests/etcd.yaml` with one container `etcd` whose `command:` is a YAML block
sequence: `- etcd`, then one `- --flag=value` item per flag, sorted. A kubeadm master has bash, awk and coreutils
but maybe no python, so the edit is a line-level awk rewrite on the host, and everything that needs a real YAML
parser happens here, on the bastion:

- `set_flags_script` rewrites (or adds) exactly the wanted items of that one block and leaves every other byte of
  the file as it was, so a diff against the pristine copy shows only the intended lines;
- `flags_present` is its read-only "already done?" probe; both share the awk that finds the block and reads an
  item, so they can never disagree;
- `show_both` prints the pristine and the edited file, and `verify_edit` re-parses both with PyYAML: the etcd
  command list must be the pristine one with exactly the wanted items changed or added, and the rest of the
  document must be equal. A line editor can be fooled by YAML it does not understand; that check cannot;
- `manifest_problem` is the pre-flight rule: what makes a manifest unusable, including layouts the line editor
  refuses (a flow list, multi-line items), so the operator learns it before the recovery starts.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ..command import Check, Raw, q, sh
from .base import ManifestProblem, Severity
from .envfile import VALUE_RE

FORCE_FLAG = "--force-new-cluster"
NAME_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
"""etcd's flag names: lowercase words joined by single dashes (`initial-cluster-state`)."""
SEPARATOR = "#etcdrescue: edited manifest follows#"
"""The line `show_both` prints between the two files; a comment to YAML, so it could never pass for content."""
TMP_SUFFIX = ".etcdrescue-tmp"


class ManifestError(ValueError):
    """The text is not a kubeadm-shaped etcd pod manifest; the message is one line naming why."""


def _load(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"malformed YAML ({str(exc).splitlines()[0]})") from exc


def _etcd_container(doc: Any) -> dict[Any, Any]:
    if not isinstance(doc, dict) or doc.get("kind") != "Pod":
        raise ManifestError("not a pod manifest (kind is not Pod)")
    spec = doc.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        raise ManifestError("not a pod manifest (no spec.containers list)")
    named = [c for c in containers if isinstance(c, dict) and c.get("name") == "etcd"]
    if len(named) != 1:
        raise ManifestError("no container named etcd in spec.containers" if not named
                            else f"{len(named)} containers named etcd in spec.containers")
    return named[0]


def _items(container: dict[Any, Any]) -> list[str]:
    command = container.get("command")
    if command is None:
        raise ManifestError("the etcd container has no command list")
    if not isinstance(command, list) or not all(isinstance(i, str) for i in command):
        raise ManifestError("the etcd container's command is not a list of strings")
    return list(command)


def command_items(text: str) -> list[str]:
    """The items of `spec.containers[name=etcd].command`, as PyYAML reads them."""
    return _items(_etcd_container(_load(text)))


def _flags_of(items: list[str]) -> dict[str, str]:
    """Flag name -> value; a flag given twice keeps its last value, as etcd's flag parser does."""
    if not items or items[0] != "etcd":
        first = repr(items[0]) if items else "nothing"
        raise ManifestError(f"the etcd container's command starts with {first}, not etcd")
    out: dict[str, str] = {}
    for n, item in enumerate(items[1:], 1):
        name, sep, value = item[2:].partition("=")
        if not item.startswith("--") or not name:
            raise ManifestError(f"etcd command item {n} ({item!r}) is not a --flag")
        out[name] = value if sep else "true"
    return out


def flags(text: str) -> dict[str, str]:
    """etcd's flags from the manifest: name without dashes -> value; a bare `--flag` is "true"."""
    return _flags_of(command_items(text))


def _check(values: Mapping[str, str], drop: Sequence[str] = ()) -> None:
    """Refuse what the awk or the YAML could misread; inventory validation should have stopped it already.

    VALUE_RE keeps every value a literal in a plain YAML scalar after `--name=` (no blank, `#`, quote), in an
    `awk -v` assignment (no backslash) and in the `;`-joined list the awk splits (no `;`). A final `:` would make
    the item `- --name=x:` a one-key mapping, not a string.
    """
    if not values and not drop:
        raise ValueError("no flags given: an empty edit or probe would call any manifest already done")
    for name in drop:
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"etcd flag name must be lowercase words joined by dashes: {name!r}")
        if name in values:
            raise ValueError(f"etcd flag {name!r} both set and dropped")
    for name, value in values.items():
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"etcd flag name must be lowercase words joined by dashes: {name!r}")
        if not VALUE_RE.fullmatch(value) or value.endswith(":"):
            raise ValueError(f"etcd flag value must be literal in a plain YAML scalar (no blanks, quotes, #, $, ;, "
                             f"backslash, no final colon): {value!r}")


def edit_problem(values: Mapping[str, str], drop: Sequence[str] = ()) -> str | None:
    """Why the edit could not write these items (a value its awk or YAML could misread), or None: asked of values
    read off a host (a rewrite of a manifest's own flags) before a plan carries them."""
    try:
        _check(values, drop)
    except ValueError as exc:
        return str(exc)
    return None


def _check_path(path: str) -> None:
    if not path.startswith("/") or "\\" in path or "\n" in path:
        raise ValueError(f"manifest path must be absolute, without backslash or newline (awk reads them): {path!r}")


def _want(values: Mapping[str, str]) -> str:
    return ";".join(f"--{name}={value}" for name, value in values.items())


def _drop_arg(drop: Sequence[str]) -> tuple[str, ...]:
    """`-v drop=NAME;NAME` for the awk; none without a drop (an unset awk variable is empty), so every command
    that only sets flags reads as it did before drops existed."""
    return ("-v", f"drop={';'.join(drop)}") if drop else ()


_AWK_LIB = r"""
function fail(msg) { printf "%s: %s\n", f, msg > "/dev/stderr"; exit 3 }
function value_of(v,   c) {
  sub(/^[ \t]+/, "", v); sub(/[ \t]+#.*$/, "", v); sub(/[ \t]+$/, "", v)
  if (v ~ /^#/) return ""
  c = substr(v, 1, 1)
  if (length(v) > 1 && (c == "\"" || c == sq) && substr(v, length(v)) == c) v = substr(v, 2, length(v) - 2)
  return v
}
function locate(   i, s, ind, t, st, sc, dc, ic, sd, k, pend, r, n) {
  st = "out"; nk = 0
  for (i = 1; i <= NR; i++) {
    s = line[i]
    if (s ~ /^[ \t]*(#.*)?$/) continue
    match(s, /^ */); ind = RLENGTH; t = substr(s, ind + 1)
    if (ind == 0) { st = (t ~ /^spec:[ \t]*(#.*)?$/) ? "spec" : "out"; sc = -1; continue }
    if (st == "out") continue
    if (sc < 0) sc = ind
    if (st == "cmd0") {
      if (ind >= ic && t ~ /^-( |$)/) { sd = ind; st = "cmd" }
      else { ckind[k] = (ind > ic) ? "nested" : "null"; st = "item" }
    }
    if (st == "cmd") {
      if (ind == sd && t ~ /^-( |$)/) {
        n = ++cn[k]; cl[k, n] = i; r = substr(t, 2); match(r, /^ */)
        cpre[k, n] = substr(s, 1, ind + 1 + RLENGTH); ctxt[k, n] = substr(r, RLENGTH + 1)
        continue
      }
      if (ind > sd) { if (!cbad[k]) cbad[k] = i; continue }
      st = "item"
    }
    if (st == "cont0") {
      if (ind >= sc && t ~ /^-( |$)/) { dc = ind; st = "item" } else st = "spec"
    }
    if (st == "item") {
      if (ind == dc && t ~ /^-( |$)/) {
        k = ++nk; r = substr(t, 2); match(r, /^ */)
        if (RLENGTH == length(r)) { pend = 1; continue }
        pend = 0; ic = ind + 1 + RLENGTH; t = substr(r, RLENGTH + 1); ind = ic
      } else if (ind <= dc) st = "spec"
      else { if (pend) { ic = ind; pend = 0 } if (ind != ic) continue }
    }
    if (st == "item") {
      if (t ~ /^name:( |$)/) { if (value_of(substr(t, 6)) == "etcd") etcd[k] = 1 }
      else if (t ~ /^command:( |$)/) {
        ncmd[k]++; r = value_of(substr(t, 9))
        if (r == "") { ckind[k] = "block"; cn[k] = 0; st = "cmd0" } else ckind[k] = "inline"
      }
      continue
    }
    if (st == "spec" && ind == sc && t ~ /^containers:[ \t]*(#.*)?$/) st = "cont0"
  }
  if (st == "cmd0") ckind[k] = "null"
}
function pick(   k, e, n) {
  locate(); n = 0
  for (k = 1; k <= nk; k++) if (etcd[k]) { n++; e = k }
  if (n == 0) fail("no block-style spec.containers item named etcd")
  if (n > 1) fail(n " containers named etcd")
  if (ckind[e] == "") fail("the etcd container has no command: key")
  if (ncmd[e] > 1) fail("the etcd container has " ncmd[e] " command: keys")
  if (ckind[e] == "inline") fail("the etcd command: is on one line (a flow list or a scalar), not one - item a line")
  if (ckind[e] != "block" || cn[e] == 0) fail("the etcd command: has no - items")
  if (cbad[e]) fail("line " cbad[e] ": an etcd command item spans lines")
  return e
}
function parse(x,   c, n) {
  iq = ""; itail = ""; ibody = x; ierr = ""
  c = substr(x, 1, 1)
  if (c == "\"" || c == sq) {
    n = index(substr(x, 2), c)
    if (n == 0) { ierr = "a quoted item without its closing quote"; return }
    ibody = substr(x, 2, n - 1); itail = substr(x, n + 2); iq = c
    if (c == "\"" && index(ibody, "\\")) ierr = "a double-quoted item with an escape"
    if (itail !~ /^([ \t]+#.*)?[ \t]*$/) ierr = "a quoted item with an escaped quote or text after it"
    return
  }
  n = match(x, /[ \t]#/)
  if (n) { ibody = substr(x, 1, n - 1); itail = substr(x, n) }
  n = match(ibody, /[ \t]+$/)
  if (n) { itail = substr(ibody, n) itail; ibody = substr(ibody, 1, n - 1) }
}
function is_flag(body, name) { return body == "--" name || index(body, "--" name "=") == 1 }
BEGIN {
  sq = sprintf("%c", 39)
  nw = split(want, W, ";"); nd = split(drop, D, ";")
  for (m = 1; m <= nw; m++) { p = index(W[m], "="); K[m] = substr(W[m], 3, p - 3); V[m] = substr(W[m], p + 1) }
}
{ line[NR] = $0 }
"""
"""POSIX awk shared by the edit and its probe: the file is read whole, then `locate` walks it once by indentation.

States: outside `spec:` (a column-0 key), in `spec` (its children's column is the first line's), `containers:`
seen, inside a container item (its keys sit at the item's content column, after `- ` or on the line after a bare
`-`), `command:` seen, inside its `- ` items. Only keys at a container item's own column count, so `name:` may come
before or after `command:` and a probe's nested `command:` or a volume's `- name: etcd-data` is never taken for
them; blank and comment lines never change state. `parse` reads one item as YAML would (plain up to ` #`, or
quoted), refusing what it cannot be sure of. Keys and values stay out of every regex: `index()` and `==` only.
"""

_AWK_EDIT = _AWK_LIB + r"""
END {
  e = pick(); last = 0
  for (j = 1; j <= cn[e]; j++) {
    parse(ctxt[e, j])
    if (ierr != "") fail("line " cl[e, j] ": " ierr " in the etcd command")
    if (substr(ibody, 1, 2) == "--") last = j
    for (m = 1; m <= nw; m++) if (is_flag(ibody, K[m])) { seen[m] = 1; new[cl[e, j]] = cpre[e, j] iq W[m] iq itail }
    for (m = 1; m <= nd; m++) if (is_flag(ibody, D[m])) gone[cl[e, j]] = 1
  }
  if (!last) last = cn[e]
  parse(ctxt[e, last]); after = cl[e, last]; o = 0
  for (i = 1; i <= NR; i++) {
    if (!(i in gone)) out[++o] = (i in new) ? new[i] : line[i]
    if (i == after) for (m = 1; m <= nw; m++) if (!seen[m]) out[++o] = cpre[e, last] iq W[m] iq
  }
  for (i = 1; i <= o; i++) { if (i < o || eol + 0) printf "%s\n", out[i] > tmp; else printf "%s", out[i] > tmp }
  if (close(tmp) != 0) fail("could not write " tmp)
}
"""

_AWK_PROBE = _AWK_LIB + r"""
END {
  e = pick()
  for (j = 1; j <= cn[e]; j++) {
    parse(ctxt[e, j])
    if (ierr != "") exit 1
    for (m = 1; m <= nw; m++) if (is_flag(ibody, K[m])) { seen[m] = 1; if (ibody != W[m]) exit 1 }
    for (m = 1; m <= nd; m++) if (is_flag(ibody, D[m])) exit 1
  }
  for (m = 1; m <= nw; m++) if (!seen[m]) exit 1
}
"""


PROGRAMS = {"manifest-edit.awk": _AWK_EDIT, "manifest-probe.awk": _AWK_PROBE}
"""The programs by file name: the runbook ships each once as a file instead of printing it in every command."""


def _tmp_for(dst: str) -> str:
    """A dot file beside `dst`: same filesystem (so `mv` is an atomic rename) and ignored by the kubelet, which
    reads every non-dot file in its manifests dir as a pod."""
    head, _, name = dst.rpartition("/")
    return f"{head}/.{name}{TMP_SUFFIX}"


def set_flags_script(src: str, dst: str, values: Mapping[str, str], drop: Sequence[str] = ()) -> Raw:
    """A bash script that writes to `dst` the manifest at `src` with each wanted flag set in etcd's command list,
    and every item of a flag named in `drop` removed (its whole line; a comment on it goes with it).

    Inside the `command:` block sequence of the `spec.containers` item named `etcd` (found by indentation: the
    `command:` and `name:` keys at that item's own level, in either order; deeper `command:` keys such as a
    probe's `exec.command` are not it), every item `--NAME` or `--NAME=...` whose NAME is exactly a key becomes
    `--NAME=VALUE`, keeping its indent, its dash spacing, its quotes and any trailing comment. A key with no item
    gets a new one right after the last `--` item, written like that item, in the order of `values`. Every other
    line is copied byte for byte, the final newline (or its absence) too; a rerun gives the same bytes.

    Fails loudly (exit 3, a message on stderr, `dst` untouched) when it cannot be sure what it edits: no such
    block, two `etcd` containers, `command:` as a flow list `[etcd, ...]` or a scalar, an item over several
    lines, a quoted item with an escape or an inner quote. The copy is written to a dot file beside `dst` only
    after the whole file was understood, given `src`'s mode and owner, then renamed over `dst`; so a failure
    leaves no `dst` behind, and a reader never sees half a manifest. `src` may be `dst`.
    """
    _check(values, drop)
    for path in (src, dst):
        _check_path(path)
    tmp = _tmp_for(dst)
    awk = sh(Raw("LC_ALL=C"), "awk", "-v", f"f={src}", "-v", f"tmp={tmp}", "-v", Raw('eol="$manifest_eol"'),
             "-v", f"want={_want(values)}", *_drop_arg(drop), _AWK_EDIT, src)
    missing = sh("printf", "%s\\n", f"{src}: not a regular file", Raw(">&2"))
    return Raw(
        f"if test -f {q(src)}; then manifest_eol=$(tail -c 1 {q(src)} | wc -l) && {awk} && "
        f"{sh('chmod', f'--reference={src}', tmp)} && {sh('chown', f'--reference={src}', tmp)} && "
        f"{sh('mv', '-f', tmp, dst)}; else {missing}; false; fi"
    )


def flags_present(path: str, values: Mapping[str, str], drop: Sequence[str] = ()) -> Raw:
    """A read-only bash script: exit 0 iff etcd's command list at `path` already has every wanted flag, each of its
    items being exactly `--NAME=VALUE` (bare or quoted: YAML reads them the same), and no item of a `drop` flag.

    Reads the block and its items with the same awk as `set_flags_script`, so after that edit it answers yes, and
    before it no whenever the edit would change a byte of the command list. Any file the edit would refuse
    answers no, so the engine runs the edit and the operator sees its reason.
    """
    _check(values, drop)
    _check_path(path)
    return Raw(f"test -f {q(path)} && " + sh(Raw("LC_ALL=C"), "awk", "-v", f"f={path}", "-v",
                                             f"want={_want(values)}", *_drop_arg(drop), _AWK_PROBE, path))


def show_both(pristine: str, edited: str) -> Raw:
    """A read-only command printing the pristine manifest, a `SEPARATOR` line, then the edited one: what
    `verify_edit` reads. The separator starts on a fresh line even if the pristine file lacks a final newline."""
    _check_path(pristine)
    _check_path(edited)
    return Raw(f"cat -- {q(pristine)} && printf '\\n%s\\n' {q(SEPARATOR)} && cat -- {q(edited)}")


def edited_items(items: list[str], values: Mapping[str, str], drop: Sequence[str] = ()) -> list[str]:
    """What `set_flags_script` makes of a command list: matching items rewritten in place, missing flags added
    after the last `--` item (after the last item if there is none), in the order of `values`, then the items of
    the `drop` flags removed (the place of the additions counts that last item even when it goes)."""
    out = list(items)
    seen: set[str] = set()
    for n, item in enumerate(items):
        for name, value in values.items():
            if item == f"--{name}" or item.startswith(f"--{name}="):
                out[n] = f"--{name}={value}"
                seen.add(name)
    last = max((n for n, item in enumerate(items) if item.startswith("--")), default=len(items) - 1)
    added = [f"--{name}={value}" for name, value in values.items() if name not in seen]

    def kept(part: list[str]) -> list[str]:
        return [i for i in part if not any(i == f"--{n}" or i.startswith(f"--{n}=") for n in drop)]

    return kept(out[: last + 1]) + added + kept(out[last + 1:])


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    """The path of the first place two parsed documents differ; types count (YAML's `1` is not `true`)."""
    if type(a) is not type(b):
        return path or "the document"
    if isinstance(a, dict):
        for key in list(a) + [k for k in b if k not in a]:
            where = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                return where
            found = _first_difference(a[key], b[key], where)
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} -> {len(b)})"
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{n}]")
            if found:
                return found
        return None
    return None if a == b else path or "the document"


def _parse_side(text: str) -> tuple[Any, list[str]]:
    doc = _load(text)
    items = _items(_etcd_container(doc))
    rest = copy.deepcopy(doc)
    _etcd_container(rest)["command"] = []
    return rest, items


@dataclass(frozen=True)
class EditCheck:
    """`Command.check` for the output of `show_both`: the edit did exactly what `values` and `drop` asked, and
    nothing else."""

    values: tuple[tuple[str, str], ...]
    drop: tuple[str, ...] = ()

    def __call__(self, output: str) -> str | None:
        parts = output.split(f"\n{SEPARATOR}\n")
        if len(parts) != 2:
            return f"expected the pristine and the edited manifest around one separator line, found {len(parts) - 1}"
        try:
            before, items = _parse_side(parts[0])
        except ManifestError as exc:
            return f"pristine manifest: {exc}"
        try:
            after, got = _parse_side(parts[1])
        except ManifestError as exc:
            return f"edited manifest: {exc}"
        want = edited_items(items, dict(self.values), self.drop)
        for n, (w, g) in enumerate(zip(want, got, strict=False)):
            if w != g:
                return f"edited etcd command item {n} is {g!r} where the edit should give {w!r}"
        if len(want) != len(got):
            return f"edited etcd command has {len(got)} items where the edit should give {len(want)}"
        where = _first_difference(before, after, "")
        return None if where is None else f"the edit changed {where}, not only etcd's command"


def verify_edit(values: Mapping[str, str], drop: Sequence[str] = ()) -> Check:
    """The check for `show_both`'s output after `set_flags_script(..., values, drop)`: an `EditCheck`."""
    _check(values, drop)
    return EditCheck(tuple(values.items()), tuple(drop))


def _entry(node: yaml.Node | None, key: str) -> tuple[yaml.ScalarNode, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    found = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key]
    return found[-1] if found else None


def _is_block(node: yaml.Node | None) -> bool:
    return isinstance(node, yaml.CollectionNode) and not node.flow_style


def _layout_problem(text: str) -> str | None:
    """What the line editor would refuse, from PyYAML's node tree (styles and positions, not just values)."""
    if "\r" in text:
        return "CRLF line endings (the line editor reads LF lines)"
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    spec = _entry(root, "spec")
    if not _is_block(root) or spec is None or spec[0].style or spec[0].start_mark.column != 0:
        return "spec: is not a plain key at the top of a block mapping"
    containers = _entry(spec[1], "containers")
    if not _is_block(spec[1]) or containers is None or containers[0].style or not _is_block(containers[1]) \
            or not isinstance(containers[1], yaml.SequenceNode):
        return "spec.containers is not a block sequence under a plain containers: key"
    for item in containers[1].value:
        name = _entry(item, "name")
        if name is None or not isinstance(name[1], yaml.ScalarNode) or name[1].value != "etcd":
            continue
        command = _entry(item, "command")
        if not _is_block(item) or name[0].style or command is None or command[0].style:
            return "the etcd container is not a block mapping with plain name: and command: keys"
        seq = command[1]
        if not isinstance(seq, yaml.SequenceNode) or seq.flow_style:
            return "the etcd command is a flow list or a scalar, not one - item a line"
        for n, node in enumerate(seq.value):
            if not isinstance(node, yaml.ScalarNode) or node.start_mark.line != node.end_mark.line:
                return f"etcd command item {n} spans several lines"
            raw = text[node.start_mark.index:node.end_mark.index]
            if node.style not in (None, '"', "'") or (node.style == '"' and "\\" in raw) or (
                    node.style == "'" and "''" in raw[1:-1]):
                return f"etcd command item {n} is quoted with an escape"
    return None


def manifest_problem(text: str) -> ManifestProblem | None:
    """Pre-flight rule for kubeadm: every recovery edits etcd's command list, so anything that stops the line
    editor (or makes its result unprovable) refuses the manifest whatever the plan; an earlier attempt's
    `--force-new-cluster` only refuses a plan that adds it."""
    try:
        items = command_items(text)
        _flags_of(items)
        layout = _layout_problem(text)
    except ManifestError as exc:
        return ManifestProblem(str(exc), Severity.ALWAYS)
    if layout:
        return ManifestProblem(layout, Severity.ALWAYS)
    if any(i == FORCE_FLAG or i.startswith(FORCE_FLAG + "=") for i in items):
        return ManifestProblem(f"already contains {FORCE_FLAG} (an earlier attempt?): put the original manifest back "
                               f"first", Severity.FLAG_EDIT)
    return None
