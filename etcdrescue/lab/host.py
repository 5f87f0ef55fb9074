"""PID 1 of one lab master: mounts its files over the real paths, runs its sshd, and
plays the kubelet for the etcd static pod.

Run as `unshare --mount --pid --fork --mount-proc --propagation private
python -m etcdrescue.lab.host --hostdir D --labroot R --ip IP --ssh-port P [--profile okd3|kubeadm]
[--etcd-bin DIR] [--host-tools yes|no]`.

Kubelet semantics that matter to the recovery tool (and that this imitates):
- like the real kubelet, every non-hidden regular file in the pod dir (/etc/origin/node/pod on
  okd3, /etc/kubernetes/manifests on kubeadm) is read as a manifest, whatever its extension
  (subdirectories and dot-files are ignored), so a leftover `etcd.yaml.bak` there would still run
  etcd; the shape's rules say which pod is etcd's (okd3: pod `master-etcd`; kubeadm: the pod with a
  container named `etcd`) and how it becomes a command line; no other pod is run;
- the manifest present => etcd runs; manifest gone => SIGTERM, SIGKILL after 10 s;
- manifest bytes changed => restart; etcd exited by itself => restart after 1, 2, 4, 5 s...;
- every start is a new "container" with a fresh log (`master-logs` shows only the current one);
- a changed manifest waits for /run/etcdlab/sync-delay seconds if that file exists (a real
  kubelet's sync period; tests use it to widen the window between "file changed" and "pod restarted");
- the pod dir is polled every 0.2 s: a manifest moved out and back between two polls is
  never seen as gone, so a crash-looping etcd then keeps its backoff (up to 5 s here; the
  real kubelet's CrashLoopBackOff goes up to 5 min).

The pod's `etcd` is the lab's chosen release: `--etcd-bin` comes first on the pod's PATH. What a login
on the host finds on its PATH is set separately (`--host-tools`): see `tool_layers`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO

import yaml

from etcdrescue.lab import okd3
from etcdrescue.lab.shape import RUN_DIR, KubeletRules, LabShape, Mount
from etcdrescue.lab.shapes import shape_named
from etcdrescue.lab.versions import TOOLS

POD_DIR = Path(okd3.SHAPE.kubelet.pod_dir)
"""The pod dir of a Supervisor built without one (the okd3 shape's)."""
RUN = Path(RUN_DIR)
POLL = 0.2
STOP_GRACE = 10.0
BACKOFFS = (1.0, 2.0, 4.0, 5.0)
BACKOFF_RESET_AFTER = 10.0  # a run this long counts as healthy, like the kubelet's (much longer) reset

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def tool_layers(hostdir: Path, bin_dir: Path | None, show: bool) -> dict[str, Path]:
    """Read-only overlay layers that make the host's PATH show exactly the lab's etcd programs.

    Returns PATH directory -> layer to put on top of it. A program to hide gets an overlayfs whiteout
    (so it is absent: bash's `command -v` still reports a file that is merely not executable); a
    program to show gets a symlink to the lab's release where the directory holds another build (or,
    when no PATH directory has it, in /usr/bin). Hidden (`show=False`) is what a kubeadm host looks
    like: etcd and its tools live in the etcd image. A directory needing no change gets no layer, so
    an okd3 lab on the distribution's own etcd sees /usr/bin untouched; without `bin_dir`, a shown PATH
    stays as the machine has it.
    """
    if show and bin_dir is None:
        return {}
    want = {name: (bin_dir / name).resolve() if show and bin_dir is not None and (bin_dir / name).exists()
            else None for name in TOOLS}
    dirs: list[str] = []
    for d in PATH.split(":"):
        real = os.path.realpath(d)
        if real not in dirs and os.path.isdir(real):
            dirs.append(real)
    changes: dict[str, dict[str, Path | None]] = {}
    for name, target in want.items():
        present = [d for d in dirs if os.path.lexists(f"{d}/{name}")]
        for d in present:
            if target is None or os.path.realpath(f"{d}/{name}") != str(target):
                changes.setdefault(d, {})[name] = target
        if target is not None and not present:
            changes.setdefault(os.path.realpath("/usr/bin"), {})[name] = target
    root = hostdir / ".path-layers"
    shutil.rmtree(root, ignore_errors=True)
    layers = {}
    for i, (d, names) in enumerate(changes.items()):
        layer = root / str(i)
        layer.mkdir(parents=True)
        for name, target in names.items():
            if target is None:
                os.mknod(layer / name, stat.S_IFCHR | 0o600, os.makedev(0, 0))
            else:
                (layer / name).symlink_to(target)
        layers[d] = layer
    return layers


def pod_bin(hostdir: Path, bin_dir: Path) -> Path:
    """The release's programs bind-mounted into `<hostdir>/.pod-bin`, the pod's first PATH entry.

    Bound before `tool_layers` hide anything: a hidden /usr/bin/etcd (kubeadm host on Debian's 3.4) is
    gone from the host's PATH but still runs the pod, as the etcd image's copy does on a real node.
    """
    target = hostdir / ".pod-bin"
    target.mkdir(exist_ok=True)
    for entry in sorted(bin_dir.iterdir()):
        mount_point = target / entry.name
        mount_point.touch()
        _mount("--bind", str(entry.resolve()), str(mount_point))
    return target


def setup_mounts(hostdir: Path, shape: LabShape = okd3.SHAPE, bin_dir: Path | None = None,
                 show_tools: bool = True) -> Path | None:
    """Make this namespace see the host's own files at the platform's paths, and its PATH the lab's etcd.

    Returns the directory to put first on the pod's PATH (None: the host's PATH as it is)."""
    for m in (*shape.mounts, Mount(str(RUN), "run")):
        src = hostdir / m.sub
        src.mkdir(parents=True, exist_ok=True)
        Path(m.path).mkdir(parents=True, exist_ok=True)
        _mount("--bind", str(src), m.path)
    # A plain root login, like a fresh master's: this machine's own ~/.bashrc (pyenv, cargo) costs
    # ~0.3 s per SSH session and its pyenv rehash lock stalls parallel logins for up to 60 s.
    rc = hostdir / "root-shell-rc"
    rc.write_text("# lab master: plain root shell\n")
    for name in (".bashrc", ".profile", ".bash_profile"):
        target = Path.home() / name
        if target.is_file():
            _mount("--bind", str(rc), str(target))
    pod_path = None if bin_dir is None else pod_bin(hostdir, bin_dir)
    image = RUN / "image-bin"  # the etcd image's /usr/local/bin, for `crictl exec` (kubeadm's stand-in)
    if image.is_symlink():
        image.unlink()
    if pod_path is not None:
        image.symlink_to(pod_path)
    layers = tool_layers(hostdir, bin_dir, show_tools)
    local = os.path.realpath("/usr/local/bin")
    top = layers.pop(local, None)
    upper, work = hostdir / "usr-local-bin", hostdir / ".overlay-work"
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    lower = "/usr/local/bin" if top is None else f"{top}:/usr/local/bin"
    _mount("-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", "/usr/local/bin")
    for d, layer in layers.items():
        _mount("-t", "overlay", "overlay", "-o", f"lowerdir={layer}:{d}", d)
    return pod_path


class Supervisor:
    def __init__(self, hostdir: Path, ip: str, ssh_port: int, rules: KubeletRules = okd3.SHAPE.kubelet,
                 pod_bin: Path | None = None, pod_dir: Path | None = None) -> None:
        self.hostdir = hostdir
        self.rules = rules
        self.pod_dir = POD_DIR if pod_dir is None else pod_dir
        self.path = PATH if pod_bin is None else f"{pod_bin}:{PATH}"
        self.ip = ip
        self.ssh_port = ssh_port
        self.etcd: subprocess.Popen[bytes] | None = None
        self.etcd_started = 0.0
        self.sshd: subprocess.Popen[bytes] | None = None
        self.sshd_next = 0.0
        self.manifest: bytes | None = None  # bytes of the running (or last started) manifest
        self.manifest_file: str | None = None
        self.warned: set[str] = set()
        self.restarts = 0
        self.backoff_idx = 0
        self.next_start = 0.0
        self.last_exit: int | None = None
        self.restart_requested = False
        self.terminating = False
        self.change_seen: float | None = None
        self.log: IO[str] = open(RUN / "kubelet.log", "a", buffering=1)  # noqa: SIM115

    # -- bookkeeping -------------------------------------------------------------------
    def note(self, msg: str) -> None:
        self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")

    def write_state(self) -> None:
        pid = self.etcd.pid if self.etcd is not None else ""
        _write_atomic(RUN / "state", "".join([
            "supervisor_pid=1\n",
            f"etcd_pid={pid}\n",
            f"restarts={self.restarts}\n",
            f"manifest={self.manifest_file or ''}\n",
            f"last_exit={'' if self.last_exit is None else self.last_exit}\n",
            f"next_start_in={max(0.0, self.next_start - time.monotonic()):.1f}\n",
        ]))

    def reap(self) -> None:
        """PID 1 must collect every orphan; the etcd and sshd exits are the ones we act on."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if self.etcd is not None and pid == self.etcd.pid:
                self.etcd.returncode = code
                self._etcd_exited(code)
            elif self.sshd is not None and pid == self.sshd.pid:
                self.sshd.returncode = code
                self.note(f"sshd exited with {code}")
                self.sshd = None
                self.sshd_next = time.monotonic() + 1.0

    def _etcd_exited(self, code: int) -> None:
        assert self.etcd is not None
        pid = self.etcd.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # stray children of the pod's shell die with it
        self.etcd = None
        self.note(f"etcd pid {pid} exited with {code} after {time.monotonic() - self.etcd_started:.1f}s")
        self._backoff(code)

    def _backoff(self, code: int) -> None:
        self.last_exit = code
        ran = time.monotonic() - self.etcd_started
        if ran >= BACKOFF_RESET_AFTER:
            self.backoff_idx = 0
        delay = BACKOFFS[min(self.backoff_idx, len(BACKOFFS) - 1)]
        self.backoff_idx += 1
        self.next_start = time.monotonic() + delay
        self.write_state()

    # -- etcd ----------------------------------------------------------------------------
    def start_etcd(self, manifest: bytes) -> None:
        self.manifest = manifest
        try:
            pod = self.rules.start(yaml.safe_load(manifest))
        except Exception as exc:  # a broken manifest is not started, as the kubelet would refuse it
            self.note(f"cannot use {self.manifest_file}: {exc}")
            self.next_start = float("inf")
            self.write_state()
            return
        log_path = RUN / "etcd.log"
        if log_path.exists():
            os.replace(log_path, RUN / "etcd.log.1")
        self.etcd_started = time.monotonic()
        try:
            with open(log_path, "ab") as out:
                self.etcd = subprocess.Popen(
                    list(pod.argv), cwd=pod.cwd, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                    env={"PATH": self.path, "HOME": "/root", "LANG": "C.UTF-8", "HOSTNAME": self.ip},
                )
        except OSError as exc:  # no such program, or not executable: a container that fails to start, backed off
            self.restarts += 1
            with open(log_path, "a") as out:
                out.write(f"exec {pod.argv[0]}: {exc}\n")
            self.note(f"cannot start etcd (start #{self.restarts}): {exc}")
            self._backoff(127 if isinstance(exc, FileNotFoundError) else 126)
            return
        self.restarts += 1
        self.note(f"started etcd pid {self.etcd.pid} (start #{self.restarts})")
        self.write_state()

    def stop_etcd(self, why: str) -> None:
        """SIGTERM the pod's process group, SIGKILL after the grace period; blocks until reaped."""
        if self.etcd is None:
            return
        proc = self.etcd
        self.note(f"stopping etcd pid {proc.pid}: {why}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        killed = False
        while self.etcd is proc:
            self.reap()
            if self.etcd is not proc:
                break
            if not killed and time.monotonic() > deadline:
                self.note(f"etcd pid {proc.pid} ignored SIGTERM, killing")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.05)

    def find_manifest(self) -> bytes | None:
        """Bytes of the file in the pod dir that defines the etcd pod (first by name if several)."""
        found: list[tuple[str, bytes]] = []
        try:
            entries = sorted(os.scandir(self.pod_dir), key=lambda e: e.name)
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                raw = Path(entry.path).read_bytes()
            except OSError:
                continue  # moved away between the listing and the read: the tool's `mv` won the race
            try:
                etcd: bool | None = self.rules.is_etcd_pod(yaml.safe_load(raw))
            except yaml.YAMLError as exc:
                etcd = None
                self.warn_once(f"unparsable {entry.name} {hashlib.sha256(raw).hexdigest()}",
                               f"{self.pod_dir / entry.name} is not a pod manifest: {str(exc).splitlines()[0]}")
            if etcd or (etcd is None and entry.name == self.rules.fallback_file):
                found.append((entry.name, raw))
        names = ", ".join(n for n, _ in found)
        if len(found) > 1:
            self.warn_once(names, f"duplicate static pod {self.rules.pod_label} in {self.pod_dir}: {names}; "
                                  f"using {found[0][0]}")
        self.manifest_file = str(self.pod_dir / found[0][0]) if found else None
        return found[0][1] if found else None

    def warn_once(self, key: str, msg: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            self.note(msg)

    def synced_view(self, current: bytes | None, now: float) -> bytes | None:
        """The manifest as this kubelet has synced it. A changed manifest is acted on only after the
        delay in /run/etcdlab/sync-delay (0 if absent), as a real kubelet picks a change up at its next
        sync; until then a restart restarts the old pod. Removal and creation are seen at once."""
        if current is None or self.manifest is None or current == self.manifest:
            self.change_seen = None
            return current
        try:
            delay = float((RUN / "sync-delay").read_text())
        except (OSError, ValueError):
            delay = 0.0
        if self.change_seen is None:
            self.change_seen = now
            if delay > 0:
                self.note(f"manifest changed; syncing it in {delay:g}s")
        if now - self.change_seen < delay:
            return self.manifest
        self.change_seen = None
        return current

    def tick(self) -> None:
        self.reap()
        now = time.monotonic()
        current = self.synced_view(self.find_manifest(), now)
        if current is None:
            if self.etcd is not None:
                self.stop_etcd("manifest removed")
            if self.manifest is not None:
                self.note("manifest removed")
            self.manifest = None
            self.backoff_idx = 0
            self.next_start = 0.0
            self.restart_requested = False
        elif current != self.manifest:
            if self.etcd is not None:
                self.stop_etcd("manifest changed")
            self.backoff_idx = 0
            self.start_etcd(current)
        elif self.restart_requested:
            self.restart_requested = False
            self.stop_etcd("restart requested (master-restart)")
            self.start_etcd(current)
        elif self.etcd is None and now >= self.next_start:
            self.start_etcd(current)
        self.restart_requested = False
        if self.sshd is None and now >= self.sshd_next:
            self.start_sshd()
        self.write_state()

    # -- sshd ----------------------------------------------------------------------------
    def start_sshd(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        out = open(RUN / "sshd.log", "ab")  # noqa: SIM115
        self.sshd = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.hostdir / "sshd_config")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={"PATH": PATH, "LANG": "C.UTF-8"},
        )
        out.close()
        self.note(f"started sshd pid {self.sshd.pid} on {self.ip}:{self.ssh_port}")

    # -- main ----------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        self.note(f"supervisor up for {self.hostdir}")
        while not self.terminating:
            try:
                self.tick()
            except Exception:  # PID 1 must not die: that would take the whole fake master down with it
                self.note("tick failed:\n" + traceback.format_exc())
            time.sleep(POLL)
        self.stop_etcd("supervisor terminating")
        if self.sshd is not None:
            self.sshd.terminate()
        self.note("supervisor exiting")
        return 0

    def _on_usr1(self, signum: int, frame: object) -> None:
        self.restart_requested = True

    def _on_term(self, signum: int, frame: object) -> None:
        self.terminating = True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m etcdrescue.lab.host")
    p.add_argument("--hostdir", required=True, type=Path)
    p.add_argument("--labroot", required=True, type=Path)
    p.add_argument("--ip", required=True)
    p.add_argument("--ssh-port", required=True, type=int)
    p.add_argument("--profile", default=okd3.SHAPE.platform)
    p.add_argument("--etcd-bin", type=Path, help="directory of the lab's etcd release, first on the pod's PATH")
    p.add_argument("--host-tools", choices=["yes", "no"], default="yes",
                   help="etcd, etcdctl, etcdutl of the lab's release on a login's PATH (no: none at all)")
    args = p.parse_args(argv)
    if os.getpid() != 1:
        print("etcdrescue.lab.host must be PID 1 of its own PID namespace", file=sys.stderr)
        return 2
    shape = shape_named(args.profile)
    pod_path = setup_mounts(args.hostdir, shape, args.etcd_bin, args.host_tools == "yes")
    return Supervisor(args.hostdir, args.ip, args.ssh_port, shape.kubelet, pod_path,
                      Path(shape.kubelet.pod_dir)).run()


if __name__ == "__main__":
    sys.exit(main())
