"""PID 1 of one lab master: mounts its files over the real paths, runs its sshd, and
plays the kubelet for the etcd static pod.

Run as `unshare --mount --pid --fork --mount-proc --propagation private
python -m etcdrescue.lab.host --hostdir D --labroot R --ip IP --ssh-port P`.

Kubelet semantics that matter to the recovery tool (and that this imitates):
- like the real kubelet, every non-hidden regular file in /etc/origin/node/pod is read as
  a manifest (subdirectories and dot-files are ignored), so a leftover `etcd.yaml.bak`
  there would still run etcd; the one whose pod is `master-etcd` is the etcd pod;
- the manifest present => etcd runs; manifest gone => SIGTERM, SIGKILL after 10 s;
- manifest bytes changed => restart; etcd exited by itself => restart after 1, 2, 4, 5 s...;
- every start is a new "container" with a fresh log (`master-logs` shows only the current one);
- a changed manifest waits for /run/etcdlab/sync-delay seconds if that file exists (a real
  kubelet's sync period; tests use it to widen the window between "file changed" and "pod restarted");
- the pod dir is polled every 0.2 s: a manifest moved out and back between two polls is
  never seen as gone, so a crash-looping etcd then keeps its backoff (up to 5 s here; the
  real kubelet's CrashLoopBackOff goes up to 5 min).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO

import yaml

POD_DIR = Path("/etc/origin/node/pod")
POD_NAME = "master-etcd"
RUN = Path("/run/etcdlab")
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


def setup_mounts(hostdir: Path) -> None:
    """Make this namespace see the host's own files at the OKD paths."""
    binds = {
        hostdir / "etc/origin": "/etc/origin",
        hostdir / "etc/etcd": "/etc/etcd",
        hostdir / "var/lib/etcd": "/var/lib/etcd",
        hostdir / "run": str(RUN),
    }
    for src, dst in binds.items():
        src.mkdir(parents=True, exist_ok=True)
        Path(dst).mkdir(parents=True, exist_ok=True)
        _mount("--bind", str(src), dst)
    # A plain root login, like a fresh master's: this machine's own ~/.bashrc (pyenv, cargo) costs
    # ~0.3 s per SSH session and its pyenv rehash lock stalls parallel logins for up to 60 s.
    rc = hostdir / "root-shell-rc"
    rc.write_text("# lab master: plain root shell\n")
    for name in (".bashrc", ".profile", ".bash_profile"):
        target = Path.home() / name
        if target.is_file():
            _mount("--bind", str(rc), str(target))
    upper, work = hostdir / "usr-local-bin", hostdir / ".overlay-work"
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    _mount("-t", "overlay", "overlay", "-o",
           f"lowerdir=/usr/local/bin,upperdir={upper},workdir={work}", "/usr/local/bin")


class Supervisor:
    def __init__(self, hostdir: Path, ip: str, ssh_port: int) -> None:
        self.hostdir = hostdir
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
        self.last_exit = code
        ran = time.monotonic() - self.etcd_started
        self.note(f"etcd pid {pid} exited with {code} after {ran:.1f}s")
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
            pod = yaml.safe_load(manifest)
            script = pod["spec"]["containers"][0]["args"][0]
            if not isinstance(script, str):
                raise TypeError("args[0] is not a string")
        except Exception as exc:  # a broken manifest is not started, as the kubelet would refuse it
            self.note(f"cannot use {self.manifest_file}: {exc}")
            self.next_start = float("inf")
            self.write_state()
            return
        log_path = RUN / "etcd.log"
        if log_path.exists():
            os.replace(log_path, RUN / "etcd.log.1")
        with open(log_path, "ab") as out:
            self.etcd = subprocess.Popen(
                ["bash", "-c", script], cwd="/var/lib/etcd", stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "HOSTNAME": self.ip},
            )
        self.etcd_started = time.monotonic()
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
            entries = sorted(os.scandir(POD_DIR), key=lambda e: e.name)
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
                name = yaml.safe_load(raw)["metadata"]["name"]
            except (yaml.YAMLError, TypeError, KeyError):
                name = None
            if name == POD_NAME or (name is None and entry.name == "etcd.yaml"):
                found.append((entry.name, raw))
        names = ", ".join(n for n, _ in found)
        if len(found) > 1 and names not in self.warned:
            self.warned.add(names)
            self.note(f"duplicate static pod {POD_NAME} in {POD_DIR}: {names}; using {found[0][0]}")
        self.manifest_file = str(POD_DIR / found[0][0]) if found else None
        return found[0][1] if found else None

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
    args = p.parse_args(argv)
    if os.getpid() != 1:
        print("etcdrescue.lab.host must be PID 1 of its own PID namespace", file=sys.stderr)
        return 2
    setup_mounts(args.hostdir)
    return Supervisor(args.hostdir, args.ip, args.ssh_port).run()


if __name__ == "__main__":
    sys.exit(main())
