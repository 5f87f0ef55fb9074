"""N fake masters on one machine (OKD 3.10 or kubeadm), for end-to-end tests and operator rehearsal.

Each master is a mount + PID namespace whose PID 1 (`etcdrescue.lab.host`) bind-mounts
that master's directory tree over its platform's paths (the lab's `LabShape`), runs an sshd
on its own loopback IP and plays the kubelet for the etcd static pod. Everything a recovery
step can touch through SSH therefore behaves as on a real master, while the files stay
inspectable on the host under `<root>/hosts/<name>/`. The etcd release (3.4 to 3.7) is the
lab's choice, linked from `<root>/bin/`.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from etcdrescue.lab import files, okd3, procs
from etcdrescue.lab.base import NSENV, ROOT_MESSAGE, HostRef, LabError, LabHost, missing_prerequisites
from etcdrescue.lab.pki import CertificateAuthority, ssh_keypair, write_atomic
from etcdrescue.lab.shape import RUN_DIR, HostContext, LabShape, Runtime
from etcdrescue.lab.shapes import shape_named
from etcdrescue.lab.versions import RELEASES, EtcdRelease, release

MANIFEST = okd3.PATHS.manifest
DISABLED_MANIFEST = okd3.PATHS.disabled_manifest
"""The okd3 shape's manifest paths (a lab's own are `lab.shape.paths`)."""


class Lab:
    """A lab of `members` fake masters of one platform (`profile`), running one etcd release (`etcd`).

    `profile`: "okd3" (OKD 3.10 masters) or "kubeadm" (kubeadm control-plane nodes); `etcd`: "3.4"
    (Debian's 3.4.23), "3.5", "3.6" or "3.7" (the pinned builds, see `versions.EtcdRelease`); `host_tools`:
    whether a login on a host finds etcd/etcdctl/etcdutl on its PATH (default: the shape's; okd3 yes,
    kubeadm no, as on real hosts of each); `runtime`: the container runtime, okd3's "docker" (default) or "crio"
    (no docker: `crictl`), kubeadm's "containerd" (default) or "crio" (its images unpacked where CRI-O does).
    """

    def __init__(self, root: Path, members: int = 3, *, subnet: int = 10, ssh_port: int = 2222,
                 names: list[str] | None = None, cluster: str = "lab", manifest_style: str | None = None,
                 profile: str = okd3.SHAPE.platform, etcd: str = "3.4", host_tools: bool | None = None,
                 runtime: str | None = None) -> None:
        if names is not None:
            members = len(names)
        if not 1 <= members <= 250 or not 0 <= subnet <= 255:
            raise LabError("members must be 1..250 and subnet 0..255")
        try:
            self.shape: LabShape = shape_named(profile)
        except ValueError as exc:
            raise LabError(str(exc)) from None
        self.release: EtcdRelease = release(etcd)
        try:
            self.runtime: Runtime | None = self.shape.runtime(runtime)
        except ValueError as exc:
            raise LabError(str(exc)) from None
        styles = self.shape.manifest_styles
        manifest_style = styles[0] if manifest_style is None else manifest_style
        if manifest_style not in styles:
            raise LabError(f"manifest_style must be one of {styles}")
        self.root = Path(root).absolute()
        self.subnet = subnet
        self.ssh_port = ssh_port
        self.cluster = cluster
        self.manifest_style = manifest_style
        self.host_tools = self.shape.host_tools if host_tools is None else host_tools
        names = names or [f"master{i:02d}.lab.example" for i in range(1, members + 1)]
        self.hosts = [LabHost(n, f"127.0.{subnet}.{i}", ssh_port, self.root / "hosts" / n)
                      for i, n in enumerate(names, start=1)]
        self.pki = self.root / "pki"
        self.inventory_path = self.root / "inventory.yaml"
        self.known_hosts = self.root / "known_hosts"
        self.identity_file = self.root / "id_ed25519"
        self.bin_dir = self.root / "bin"
        self._wrappers: dict[str, subprocess.Popen[bytes]] = {}

    @classmethod
    def load(cls, root: Path) -> Lab:
        """Reopen an existing lab (e.g. `lab down` from another process) with its original shape."""
        try:
            cfg = json.loads((Path(root) / "lab.json").read_text())
        except FileNotFoundError:
            raise LabError(f"{root} is not a lab (no lab.json)") from None
        return cls(Path(root), subnet=cfg["subnet"], ssh_port=cfg["ssh_port"], names=cfg["names"],
                   cluster=cfg["cluster"], manifest_style=cfg["manifest_style"],
                   profile=cfg.get("profile", okd3.SHAPE.platform), etcd=cfg.get("etcd", "3.4"),
                   host_tools=cfg.get("host_tools"), runtime=cfg.get("runtime"))

    @property
    def profile(self) -> str:
        return self.shape.platform

    @property
    def etcdctl(self) -> Path:
        """The lab release's etcdctl, for use from outside the hosts (it may be hidden inside them)."""
        return self.bin_dir / "etcdctl"

    # -- addressing ------------------------------------------------------------------------
    def host(self, name_or_index: HostRef) -> LabHost:
        """A host by LabHost, member name, short name ("master02"), IP, or 0-based index."""
        if isinstance(name_or_index, LabHost):
            return name_or_index
        if isinstance(name_or_index, int):
            return self.hosts[name_or_index]
        for h in self.hosts:
            if name_or_index in (h.name, h.ip, h.name.split(".")[0]):
                return h
        raise LabError(f"no lab host {name_or_index!r}")

    def host_path(self, host: HostRef, path: str) -> Path:
        h = self.host(host)
        path_map = self.shape.path_map
        for prefix, sub in path_map.items():
            if path == prefix or path.startswith(prefix + "/"):
                return h.dir / sub / path[len(prefix):].lstrip("/")
        raise LabError(f"{path} is not a per-host path in the lab (known: {', '.join(path_map)})")

    # -- files -----------------------------------------------------------------------------
    def _require_root(self) -> None:
        if os.geteuid() != 0:
            raise LabError(ROOT_MESSAGE)
        missing = missing_prerequisites()
        if missing:
            raise LabError("lab prerequisites missing: " + "; ".join(missing))

    def create(self) -> None:
        """Write whatever is missing; existing keys, certs and host state are never replaced."""
        self._require_root()
        binaries = self.release.binaries()
        self.root.mkdir(parents=True, exist_ok=True)
        cfg = {"subnet": self.subnet, "ssh_port": self.ssh_port, "names": [h.name for h in self.hosts],
               "cluster": self.cluster, "manifest_style": self.manifest_style, "profile": self.profile,
               "etcd": self.release.minor, "etcd_build": self.release.full, "host_tools": self.host_tools,
               "runtime": self.runtime.name if self.runtime else None}
        if not (self.root / "lab.json").exists():
            write_atomic(self.root / "lab.json", json.dumps(cfg, indent=2) + "\n")
        self._link_binaries(binaries)
        ca_crt, ca_key = self.pki / "ca.crt", self.pki / "ca.key"
        if ca_crt.exists() and ca_key.exists():
            ca = CertificateAuthority.load(ca_crt, ca_key)
        else:
            ca = CertificateAuthority.create()
            ca.save(ca_crt, ca_key)
        if not (self.pki / "client.crt").exists():
            crt, key = ca.issue("etcd-lab-client", [], [])
            write_atomic(self.pki / "client.key", key, 0o600)
            write_atomic(self.pki / "client.crt", crt)
        if not self.identity_file.exists():
            priv, pub = ssh_keypair()
            write_atomic(self.identity_file.with_name("id_ed25519.pub"), pub + " etcdrescue-lab\n")
            write_atomic(self.identity_file, priv, 0o600)
        pub = self.identity_file.with_name("id_ed25519.pub").read_text()
        write_atomic(self.root / "authorized_keys", pub, 0o600)
        for h in self.hosts:
            self._create_host(h, ca)
        known = [f"[{h.ip}]:{h.ssh_port} {(h.dir / 'ssh_host_ed25519_key.pub').read_text().strip()}"
                 for h in self.hosts]
        write_atomic(self.known_hosts, "\n".join(known) + "\n")
        write_atomic(self.inventory_path, files.inventory(
            self.cluster, self.ssh_port, str(self.identity_file), str(self.known_hosts), self.hosts, self.profile))

    def _link_binaries(self, binaries: dict[str, Path]) -> None:
        """`<root>/bin/` links to the release's programs: first on the pod's PATH, and the lab's own etcdctl."""
        self.bin_dir.mkdir(exist_ok=True)
        for entry in self.bin_dir.iterdir():
            if entry.name not in binaries or not entry.is_symlink() or os.readlink(entry) != str(binaries[entry.name]):
                entry.unlink()
        for name, target in binaries.items():
            if not (self.bin_dir / name).is_symlink():
                (self.bin_dir / name).symlink_to(target)

    def context(self, h: LabHost) -> HostContext:
        return HostContext(h, tuple(self.hosts), self.release, self.manifest_style)

    def _create_host(self, h: LabHost, ca: CertificateAuthority) -> None:
        for sub in ("run", "usr-local-bin", ".overlay-work"):
            (h.dir / sub).mkdir(parents=True, exist_ok=True)
        for d in self.shape.dirs:
            self.host_path(h, d).mkdir(parents=True, exist_ok=True)
        data = self.host_path(h, self.shape.paths.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        for spec in self.shape.certificates(h):
            crt = self.host_path(h, spec.cert)
            if spec.ca:
                if not crt.exists():
                    write_atomic(crt, ca.cert_pem)
                if spec.key is not None and not self.host_path(h, spec.key).exists():
                    write_atomic(self.host_path(h, spec.key), ca.key_pem, 0o600)
            elif not crt.exists():
                pem, key = ca.issue(spec.common_name, list(spec.dns), list(spec.ips), server_auth=spec.server_auth)
                write_atomic(self.host_path(h, spec.key or spec.cert + ".key"), key, 0o600)
                write_atomic(crt, pem)
        if self.image_layer:
            self._unpack_images(h)
        marker = h.dir / ".created"
        if not marker.exists():  # first creation only: later the tool owns etcd's settings and the manifests
            for f in self.shape.initial_files(self.context(h)):
                write_atomic(self.host_path(h, f.path), f.text, f.mode)
            marker.touch()
        hostkey = h.dir / "ssh_host_ed25519_key"
        if not hostkey.exists():
            priv, pub = ssh_keypair()
            write_atomic(hostkey.with_name("ssh_host_ed25519_key.pub"), pub + f" root@{h.name}\n")
            write_atomic(hostkey, priv, 0o600)
        write_atomic(h.dir / "sshd_config", files.sshd_config(h.ip, h.ssh_port, str(h.dir), str(self.root)))
        for f in (*self.shape.helper_files, *(self.runtime.files if self.runtime else ())):
            write_atomic(self.host_path(h, f.path), f.text, f.mode)
        for other in (r for r in self.shape.runtimes if r is not self.runtime):
            for f in other.files:
                self.host_path(h, f.path).unlink(missing_ok=True)
        for name in self.runtime.hides if self.runtime else ():
            hidden = self.host_path(h, f"/usr/local/bin/{name}")  # a whiteout in the host's /usr/local/bin layer
            hidden.unlink(missing_ok=True)
            os.mknod(hidden, stat.S_IFCHR | 0o600, os.makedev(0, 0))

    @property
    def image_layer(self) -> str:
        """Where this lab's runtime unpacks an image layer ("": its etcd image is not unpacked)."""
        return (self.runtime.image_layer if self.runtime else "") or self.shape.image_layer

    def _unpack_images(self, h: LabHost) -> None:
        """The node's image layers where its runtime unpacked them: a pause image, the etcd image its manifest
        names (`/usr/local/bin/{etcd,etcdctl,etcdutl}`, links to the lab's release) and, where this machine has
        one, the image of the minor before (a node upgraded from it keeps it unpacked). Layer numbers differ from
        node to node, as a runtime's do; nothing is replaced once there."""
        index = self.hosts.index(h)
        layers: list[tuple[int, dict[str, Path]]] = [(17 + 3 * index, self.release.binaries())]
        before = RELEASES[RELEASES.index(self.release.minor) - 1] if self.release.minor != RELEASES[0] else None
        if before is not None and release(before).available():
            layers.append((9 + 2 * index, release(before).binaries()))
        pause = self.host_path(h, self.image_layer.format(layer=3 + index))
        if not (pause / "pause").exists():
            pause.mkdir(parents=True, exist_ok=True)
            write_atomic(pause / "pause", "#!/bin/sh\nexec sleep infinity\n", 0o755)
        for layer, binaries in layers:
            bindir = self.host_path(h, self.image_layer.format(layer=layer)) / "usr/local/bin"
            bindir.mkdir(parents=True, exist_ok=True)
            for name, target in binaries.items():
                if not (bindir / name).is_symlink() and not (bindir / name).exists():
                    _place(target, bindir / name)

    # -- lifecycle -------------------------------------------------------------------------
    def supervisor_pid(self, host: HostRef) -> int | None:
        """Host-side PID of the host's namespace init, if it is running."""
        h = self.host(host)
        try:
            pid = int((h.dir / "supervisor.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if procs.is_supervisor(pid, h.dir) else None

    def _start_host(self, h: LabHost) -> None:
        if self.supervisor_pid(h) is not None:
            return
        procs.kill_and_wait(procs.host_processes(h.dir))  # leftovers of a half-dead host
        env = dict(NSENV, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        cmd = ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private",
               sys.executable, "-m", procs.MODULE, "--hostdir", str(h.dir), "--labroot", str(self.root),
               "--ip", h.ip, "--ssh-port", str(h.ssh_port), "--profile", self.profile,
               "--etcd-bin", str(self.bin_dir), "--host-tools", "yes" if self.host_tools else "no"]
        with open(h.dir / "supervisor.log", "ab") as log:
            wrapper = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=env, cwd="/", start_new_session=True)
        self._wrappers[h.name] = wrapper
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            kids = procs.children(wrapper.pid)
            # The forked child is still `unshare` until it execs the supervisor: wait for that.
            if kids and procs.is_supervisor(kids[0], h.dir):
                write_atomic(h.dir / "supervisor.pid", f"{kids[0]}\n")
                return
            if wrapper.poll() is not None:
                break
            time.sleep(0.01)
        raise LabError(f"{h.name}: supervisor did not start; see {h.dir / 'supervisor.log'}")

    def up(self, timeout: float = 60) -> None:
        self.create()
        for mp in self.shape.mount_points:
            Path(mp).mkdir(parents=True, exist_ok=True)
        for h in self.hosts:
            busy = [p for p in (h.ssh_port, *self.shape.etcd_ports)
                    if self.supervisor_pid(h) is None and procs.port_open(h.ip, p, 0.2)]
            if busy:
                raise LabError(f"{h.name}: {h.ip} port(s) {busy} in use outside this lab "
                               f"(another lab on subnet {self.subnet}?)")
        for h in self.hosts:
            self._start_host(h)
        deadline = time.monotonic() + timeout
        for h in self.hosts:
            while not procs.port_open(h.ip, h.ssh_port):
                if time.monotonic() > deadline or self.supervisor_pid(h) is None:
                    raise LabError(f"{h.name}: sshd not listening on {h.ip}:{h.ssh_port}; "
                                   f"see {h.dir / 'run/sshd.log'} and {h.dir / 'supervisor.log'}")
                time.sleep(0.05)
        self.wait_healthy(timeout=max(1.0, deadline - time.monotonic()))
        self._settle(deadline)

    def _settle(self, deadline: float) -> None:
        """Once the new cluster is up, write the shape's settled files (kubeadm: the manifests `init` and
        `join` leave) on hosts that still have the bootstrap ones; each such etcd restarts once.

        Followers first, the leader last: a leader stopped while its followers are also stopping spends
        its stop timeout (~8 s on 3.5) trying to hand leadership over; once they are back it takes ms.
        """
        pending: dict[str, list[tuple[Path, str, int]]] = {}
        for h in self.hosts:
            ctx = self.context(h)
            settled = self.shape.settled_files(ctx)
            if (h.dir / ".settled").exists() or not settled:
                continue
            initial = {f.path: f.text for f in self.shape.initial_files(ctx)}
            pending[h.name] = [(self.host_path(h, f.path), f.text, f.mode) for f in settled
                               if self.host_path(h, f.path).exists()
                               and self.host_path(h, f.path).read_text() == initial.get(f.path)]
        if not pending:
            return
        leader = self.leader()
        for group in ([n for n in pending if leader is None or n != leader.name],
                      [n for n in pending if leader is not None and n == leader.name]):
            starts = {n: int(self.state(n).get("restarts") or 0) for n in group if pending[n]}
            for name in group:
                for path, text, mode in pending[name]:
                    write_atomic(path, text, mode)
                (self.host(name).dir / ".settled").touch()
            for name, before in starts.items():
                while int(self.state(name).get("restarts") or 0) <= before:
                    if time.monotonic() > deadline:
                        raise LabError(f"{name}: etcd did not restart on its settled manifest; "
                                       f"status: {self.status()}")
                    time.sleep(0.05)
            if starts:
                self.wait_healthy(timeout=max(1.0, deadline - time.monotonic()))

    def down(self) -> None:
        for h in self.hosts:
            pids = procs.host_processes(h.dir)
            sup = self.supervisor_pid(h)
            if sup is not None and sup not in pids:
                pids.append(sup)
            pids.sort(key=lambda p: p != sup)  # namespace init first
            procs.kill_and_wait(pids)
            wrapper = self._wrappers.pop(h.name, None)
            if wrapper is not None:
                wrapper.wait(timeout=10)
            (h.dir / "supervisor.pid").unlink(missing_ok=True)
        deadline = time.monotonic() + 10
        for h in self.hosts:
            for port in (h.ssh_port, *self.shape.etcd_ports):
                while procs.port_open(h.ip, port, timeout=0.2):
                    if time.monotonic() > deadline:
                        raise LabError(f"{h.ip}:{port} still open after down()")
                    time.sleep(0.05)

    def destroy(self) -> None:
        if self.root.exists():
            self.down()
            shutil.rmtree(self.root)

    def exec(self, host: HostRef, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `bash -c script` as the tool would over SSH: in the host's mount + PID namespace."""
        h = self.host(host)
        pid = self.supervisor_pid(h)
        if pid is None:
            raise LabError(f"{h.name} is not running (lab up first)")
        return subprocess.run(["nsenter", "-t", str(pid), "-m", "-p", "--", "bash", "-c", script],
                              capture_output=True, text=True, timeout=timeout, env=NSENV, cwd="/")

    # -- etcd access -----------------------------------------------------------------------
    def client(self, host: HostRef | None = None, timeout: float = 10) -> Any:
        """An etcd3 client over TLS with the lab client cert (the caller closes it)."""
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        import etcd3

        h = self.host(0 if host is None else host)
        return etcd3.client(host=h.ip, port=2379, ca_cert=str(self.pki / "ca.crt"),
                            cert_key=str(self.pki / "client.key"), cert_cert=str(self.pki / "client.crt"),
                            timeout=timeout)

    def put_keys(self, prefix: str, count: int, start: int = 0) -> None:
        """Keys `<prefix><i:05d>` = `value-<i:05d>` for i in start..start+count-1."""
        c = self.client()
        try:
            for i in range(start, start + count):
                c.put(f"{prefix}{i:05d}", f"value-{i:05d}")
        finally:
            c.close()

    def read_prefix(self, prefix: str, host: HostRef | None = None) -> dict[str, str]:
        c = self.client(host)
        try:
            return {meta.key.decode(): value.decode() for value, meta in c.get_prefix(prefix)}
        finally:
            c.close()

    def member_list(self, host: HostRef | None = None) -> list[dict[str, Any]]:
        c = self.client(host)
        try:
            return [{"name": m.name, "id": int(m.id), "peer_urls": list(m.peer_urls),
                     "client_urls": list(m.client_urls)} for m in c.members]
        finally:
            c.close()

    def leader(self, host: HostRef | None = None) -> LabHost | None:
        """The member the cluster (as `host` sees it) has as leader, if any."""
        c = self.client(host)
        try:
            lead = c.status().leader
        finally:
            c.close()
        return None if lead is None else next((h for h in self.hosts if h.name == lead.name), None)

    @functools.cached_property
    def _ssl_context(self) -> ssl.SSLContext:
        """One client context per lab: `healthy` is polled (by gates' tests and the benches) every 100 ms."""
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "client.crt"), str(self.pki / "client.key"))
        return ctx

    def healthy(self, host: HostRef, timeout: float = 3) -> bool:
        """etcd's own /health: a leader is known and a linearizable read succeeds (needs quorum)."""
        h = self.host(host)
        conn = http.client.HTTPSConnection(h.ip, 2379, context=self._ssl_context, timeout=timeout)
        try:
            conn.request("GET", "/health")
            body = json.loads(conn.getresponse().read())
        except (OSError, ValueError, http.client.HTTPException):
            return False
        finally:
            conn.close()
        return bool(body.get("health") in ("true", True))

    def wait_healthy(self, hosts: Iterable[HostRef] | None = None, timeout: float = 60) -> None:
        todo = [self.host(h) for h in (self.hosts if hosts is None else hosts)]
        deadline = time.monotonic() + timeout
        while todo:
            todo = [h for h in todo if not self.healthy(h)]
            if not todo:
                return
            if time.monotonic() > deadline:
                raise LabError(f"not healthy after {timeout:.0f}s: {', '.join(h.name for h in todo)}; "
                               f"status: {self.status()}")
            time.sleep(0.2)

    # -- etcd pod control (as the tool does it: through the manifest) ------------------------
    def etcd_pid(self, host: HostRef) -> int | None:
        """etcd's PID as seen inside the host (what `pgrep -x etcd` prints there)."""
        state = self.state(host)
        return int(state["etcd_pid"]) if state.get("etcd_pid") else None

    def state(self, host: HostRef) -> dict[str, str]:
        try:
            text = self.host_path(host, f"{RUN_DIR}/state").read_text()
        except OSError:
            return {}
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def wait_stopped(self, host: HostRef, timeout: float = 30) -> None:
        h = self.host(host)
        deadline = time.monotonic() + timeout
        while self.etcd_pid(h) is not None or procs.port_open(h.ip, 2379, 0.2) or procs.port_open(
                h.ip, 2380, 0.2):
            if time.monotonic() > deadline:
                raise LabError(f"{h.name}: etcd still running {timeout:.0f}s after its manifest was removed; "
                               f"status: {self.status()}")
            time.sleep(0.1)

    def stop_etcd(self, host: HostRef, timeout: float = 30) -> None:
        """Move the etcd manifest to the platform's disabled dir (created if missing, as the tool does)."""
        paths = self.shape.paths
        live = self.host_path(host, paths.manifest)
        if live.exists():
            disabled = self.host_path(host, paths.disabled_manifest)
            disabled.parent.mkdir(parents=True, exist_ok=True)
            os.replace(live, disabled)
        self.wait_stopped(host, timeout)

    def start_etcd(self, host: HostRef, *, wait: bool = True, timeout: float = 60) -> None:
        paths = self.shape.paths
        live, disabled = self.host_path(host, paths.manifest), self.host_path(host, paths.disabled_manifest)
        if disabled.exists():
            os.replace(disabled, live)
        elif not live.exists():
            raise LabError(f"{self.host(host).name}: no manifest at {paths.manifest} or {paths.disabled_manifest}")
        if wait:
            self.wait_healthy([host], timeout)

    def _run(self, host: HostRef, script: str, timeout: float = 120) -> str:
        res = self.exec(host, "set -euo pipefail\n" + script, timeout)
        if res.returncode != 0:
            raise LabError(f"{self.host(host).name}: script failed ({res.returncode}): {res.stderr.strip()}")
        return res.stdout

    def _fresh_dir(self, host: HostRef, stem: str) -> str:
        base = f"{self.shape.paths.data_dir}/{stem}-{time.strftime('%Y%m%d%H%M%S')}"
        path, n = base, 0
        while self.host_path(host, path).exists():
            n += 1
            path = f"{base}.{n}"
        return path

    def backup_openshift(self, host: HostRef) -> str:
        """openshift-ansible's pre-upgrade backup: v2 `etcdctl backup` plus a live copy of the v3 db."""
        if "openshift" not in self.shape.backup_kinds:
            raise LabError(f"backup_openshift is an okd3 backup; a {self.profile} lab takes snapshot_save")
        d, data = self._fresh_dir(host, "openshift-backup"), self.shape.paths.data_dir
        self._run(host, f"""
ETCDCTL_API=2 {self.etcdctl} backup --data-dir {data} --backup-dir {d} >/dev/null
mkdir -p {d}/member/snap
cp {data}/member/snap/db {d}/member/snap/db
""")
        return d

    def snapshot_save(self, host: HostRef, path: str | None = None) -> str:
        """`etcdctl snapshot save` of the host's member into a file on that host (kubeadm's usual backup).

        Run from outside the host with the lab's etcdctl and client certificate: a kubeadm host has no
        etcdctl of its own. Returns the path as the host sees it (default under the data dir).
        """
        h = self.host(host)
        if path is None:
            base = f"{self.shape.paths.data_dir}/snapshot-{time.strftime('%Y%m%d%H%M%S')}"
            path, n = f"{base}.db", 0
            while self.host_path(h, path).exists():
                n += 1
                path = f"{base}.{n}.db"
        dest = self.host_path(h, path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(
            [str(self.etcdctl), "--endpoints", h.client_url, "--cacert", str(self.pki / "ca.crt"),
             "--cert", str(self.pki / "client.crt"), "--key", str(self.pki / "client.key"), "snapshot", "save",
             str(dest)],
            capture_output=True, text=True, timeout=120, env=dict(NSENV, ETCDCTL_API="3"), cwd="/")
        if res.returncode != 0:
            raise LabError(f"{h.name}: snapshot save failed ({res.returncode}): {res.stderr.strip()}")
        return path

    def backup_copy(self, host: HostRef) -> str:
        """A cold copy of member/ taken with etcd stopped (what a careful admin does by hand)."""
        d = self._fresh_dir(host, "copy")
        self.stop_etcd(host)
        try:
            self._run(host, f"mkdir -p {d} && cp -a {self.shape.paths.member_dir} {d}/member")
        finally:
            self.start_etcd(host)
        return d

    def break_quorum(self, hosts: Sequence[HostRef]) -> None:
        """Turn members into broken masters: data gone, a corrupt WAL, and the kubelet crash-looping etcd."""
        targets = [self.host(h) for h in hosts]
        for h in targets:
            self.stop_etcd(h)
        for h in targets:
            member = self.host_path(h, self.shape.paths.member_dir)
            shutil.rmtree(member, ignore_errors=True)
            (member / "snap").mkdir(mode=0o700, parents=True)
            (member / "wal").mkdir(mode=0o700)
            member.chmod(0o700)
            (member / "wal/0000000000000000-0000000000000000.wal").write_bytes(b"\xde\xad\xbe\xef" * 1024)
        for h in targets:
            self.start_etcd(h, wait=False)

    def status(self) -> list[dict[str, Any]]:
        out = []
        paths = self.shape.paths
        for h in self.hosts:
            manifest = ("enabled" if self.host_path(h, paths.manifest).exists() else
                        "disabled" if self.host_path(h, paths.disabled_manifest).exists() else "missing")
            up = self.supervisor_pid(h) is not None
            state = self.state(h) if up else {}
            out.append({"name": h.name, "ip": h.ip, "supervisor": up, "manifest": manifest,
                        "etcd_pid": self.etcd_pid(h) if up else None,
                        "manifest_file": state.get("manifest") or None,
                        "starts": int(state.get("restarts") or 0),
                        "last_exit": state.get("last_exit") or None,
                        "healthy": up and self.healthy(h)})
        return out


def _place(target: Path, dest: Path) -> None:
    """An image layer's binary: a link to the release's build, but a hard link (or, across file systems, a copy)
    of one in a system PATH directory (Debian's 3.4), which a host without tools sees whited out: a symbolic link
    there would dangle inside the host, where the runtime's unpacked file is a real one."""
    if target.parent in (Path(d) for d in NSENV["PATH"].split(":")):
        try:
            os.link(target, dest)
        except OSError:
            shutil.copy2(target, dest)
    else:
        dest.symlink_to(target)
