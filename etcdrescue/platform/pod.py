"""etcd as a static pod: stopped, started and restarted through its manifest and the kubelet."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..command import Command, Raw, chain, q, sh
from .envfile import env_key

ETCD_CMDLINES = "for pid in $(pgrep -x etcd); do tr '\\0' ' ' < /proc/$pid/cmdline; echo; done"
"""One line per running etcd process: its command line (the flags the kubelet started it with)."""


def port_probe(host: str, port: int) -> str:
    """Exit 0 when something accepts a TCP connection on host:port (bash's /dev/tcp, no extra tools)."""
    return f"timeout 2 bash -c {q(f'exec 3<>/dev/tcp/{host}/{port}')} 2>/dev/null"


@dataclass(frozen=True)
class StaticPod:
    """The kubelet runs etcd while its manifest is in the pod directory.

    Stopping moves the manifest to a directory the kubelet does not read (a copy left in the pod
    directory, under any name, would be a second pod). `restart_command` is the platform's own
    command, or empty where changing the manifest's bytes is the restart (the kubelet re-creates a
    pod whose manifest changed). `logs_script` prints the current etcd container's log.
    """

    manifest: str
    disabled_manifest: str
    disabled_dir: str
    restart_command: tuple[str, ...]
    logs_script: str

    def stop(self, host: str) -> Command:
        m, d = q(self.manifest), q(self.disabled_manifest)
        return Command(
            host=host,
            script=Raw(f"mkdir -p {q(self.disabled_dir)} && test ! -e {d} && mv {m} {d}"),
            purpose="move the etcd manifest out of the kubelet's pod directory",
            skip_if=Raw(f"test ! -e {m} && test -e {d}"),
        )

    def stop_again(self, host: str, to: str, purpose: str) -> Command:
        """Undo of a start: the manifest moved out of the pod directory to `to` (etcd stops)."""
        return Command(host, sh("mv", self.manifest, to), purpose)

    def enabled(self) -> Raw:
        """Exit 0 when the manifest is in the pod directory and none is left in the disabled one."""
        return Raw(f"test -e {q(self.manifest)} && test ! -e {q(self.disabled_manifest)}")

    def start(self, host: str) -> Command:
        m, d = q(self.manifest), q(self.disabled_manifest)
        return Command(host=host, script=Raw(f"test ! -e {m} && mv {d} {m}"),
                       purpose="move the etcd manifest back: the kubelet starts etcd", skip_if=Raw(f"test -e {m}"))

    def restart_without(self, host: str, flag: str) -> tuple[Command, ...]:
        """Ask for a new etcd process; skipped once no running etcd carries `flag` any more."""
        if not self.restart_command:
            return ()
        return (Command(host, sh(*self.restart_command), "restart etcd without the flag",
                        skip_if=Raw(f"! {{ {ETCD_CMDLINES}; }} | grep -q -- {q(flag)}")),)

    def restart(self, host: str, ports: Iterable[int], wait: int = 60) -> Raw:
        """Shell that gives the host a new etcd process: the platform's restart command, else the manifest
        moved out until etcd is down (at most `wait` half-second polls), then back.

        Moving the manifest out and straight back could fall between two of the kubelet's looks at its pod
        directory and restart nothing; and a bounce interrupted half-way leaves the manifest where the
        join's own start command (`start`) moves it back from.
        """
        if self.restart_command:
            return sh(*self.restart_command)
        m, d = q(self.manifest), q(self.disabled_manifest)
        down = self.down(host, ports)
        return Raw(f"mkdir -p {q(self.disabled_dir)} && test ! -e {d} && mv {m} {d} && "
                   f"{{ n=0; until {down}; do test $n -ge {int(wait)} && break; n=$((n+1)); sleep 0.5; done; "
                   f"mv {d} {m}; }}")

    def logs(self, lines: int = 20) -> Raw:
        return Raw(f"{{ {self.logs_script}; }} 2>&1 | tail -n {int(lines)}")

    def copies_script(self) -> str:
        """Prints the other files in the pod directory that define an etcd pod or container.

        The kubelet runs every non-dot file there, whatever its name (`etcd.yaml.bak` included): a second
        definition would start a second etcd on the same ports and data.
        """
        pod_dir = self.manifest.rsplit("/", 1)[0] or "/"
        return (f"for f in {q(pod_dir)}/*; do case \"${{f##*/}}\" in .*) continue;; esac; "
                f"test -f \"$f\" && test \"$f\" != {q(self.manifest)} && "
                f"grep -Eq '^[[:space:]]*(- )?name: (master-)?etcd[[:space:]]*$' \"$f\" && printf '%s ' \"$f\"; "
                "done; true")

    @staticmethod
    def down(host: str, ports: Iterable[int]) -> Raw:
        """Exit 0 when no etcd process runs and none of its ports accept connections."""
        checks = " && ".join(f"! {port_probe(host, p)}" for p in ports)
        return Raw(f"! pgrep -x etcd >/dev/null && {checks}")

    @staticmethod
    def runs_with(flag: str, value: str) -> Raw:
        """Exit 0 when a running etcd has `--flag=value` on its command line or `ETCD_FLAG=value` in its environment
        (etcd reads every flag from either: kubeadm's manifest gives the first, okd3's etcd.conf the second)."""
        return Raw(f"for pid in $(pgrep -x etcd); do tr '\\0' '\\n' < /proc/$pid/cmdline; "
                   f"tr '\\0' '\\n' < /proc/$pid/environ; done 2>/dev/null | "
                   f"grep -qx -e {q(f'--{flag}={value}')} -e {q(env_key(flag) + '=' + value)}")

    @staticmethod
    def runs_without(flag: str) -> Raw:
        """Exit 0 when an etcd process runs and none carries `flag`: the restart without it has happened.

        A killed etcd the kubelet has not reaped yet is still listed by `pgrep`, as a zombie with an empty
        command line: counted as running, it passed this check between the old process's death and the
        new one's start (seen on the lab). Only processes with a command line count.
        """
        return Raw(f"running=$({{ {ETCD_CMDLINES}; }} | grep .) && ! printf '%s\\n' \"$running\" | "
                   f"grep -q -- {q(flag)}")


def put_back(host: str, manifest: str, pristine: str, kept: str) -> tuple[Command, ...]:
    """The manifest's original bytes (`pristine`) back in place by an atomic rename, the edited one kept at `kept`
    first. The kubelet restarts a pod whose manifest changed; the temporary name starts with a dot, which the
    kubelet does not read."""
    pod_dir, name = manifest.rsplit("/", 1)
    tmp = f"{pod_dir}/.{name}.etcdrescue"
    return (
        Command(host, sh("cp", "-p", manifest, kept), "keep the edited manifest for the record",
                skip_if=Raw(f"test -e {q(kept)} || cmp -s {q(pristine)} {q(manifest)}")),
        Command(host, chain(sh("cp", "-p", pristine, tmp), sh("mv", tmp, manifest)),
                "put the original manifest bytes back (atomic rename; the kubelet restarts the pod)",
                skip_if=sh("cmp", "-s", pristine, manifest)),
    )
