"""Two libvirt hosts on one machine, for the fleet's end-to-end tests (issue 14).

The recipe of ../shared/reference/fleet-lab/lab.sh, as a context manager: each host is
`unshare --mount --net --uts --pid` around a bash that, as PID 1 of its namespace,
bind-mounts private copies over the libvirt folders and /etc/hosts, names itself
`hostA`/`hostB` and starts its own virtlogd and libvirtd (TCP without auth, lab only).
A veth pair joins the two network namespaces (10.77.0.1 hostA, 10.77.0.2 hostB).

From this (the root) namespace a host is reached through its socket, `FleetHost.uri`;
the hosts reach each other as `qemu+tcp://hostB/system`, `FleetHost.peer_uri`, which is
what a peer-to-peer migration is given. The shared qemu:///system is never contacted.

Teardown SIGKILLs each `unshare` (it ignores SIGTERM); `--kill-child` then kills the
namespace's PID 1, and with it every process of the namespace (libvirtd, QEMU); the
veth goes with its network namespace. The folder is removed last. `unshare` also gets
SIGKILL when the test process dies (PR_SET_PDEATHSIG), so a killed pytest leaves no
host running; the next lab removes the folder such a run left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from .lab import TestGuest, wait_until

# Tools the lab runs: util-linux (essential), iproute2, libvirt-daemon-system and
# qemu-utils, all in the Makefile's DEB_PACKAGES; the tests run as root, as all of e2e.
TOOLS = ("unshare", "nsenter", "ip", "bash", "libvirtd", "virtlogd", "qemu-img", "qemu-io")
HOSTS = (("hostA", "10.77.0.1"), ("hostB", "10.77.0.2"))
# The folders each host gets a private copy of, as (name in the host's folder, mount point).
PRIVATE_FOLDERS = (
    ("etc", "/etc/libvirt"),
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("log", "/var/log/libvirt"),
    ("hosts", "/etc/hosts"),
)
# Where each host's `default` dir pool keeps its volumes, as the host sees it.
IMAGES = "/var/lib/libvirt/images"
LIBVIRTD_LOG = "/var/log/libvirt/libvirtd.log"
LAB_PREFIX = "vmr-fleet-"
OWNER = "owner.pid"  # the test process's PID, in the lab's folder
# Measured: libvirtd answers 1-2 s after its namespace starts; a busy machine is slower.
HOST_START_TIMEOUT_S = 60.0

# PID 1 of a host's namespace. A bash loop rather than `exec sleep`: PID 1 must reap,
# or libvirt waits ~15 s for every QEMU that exits (fleet-lab.md, pitfall 2).
NAMESPACE_INIT = """
set -e
d=$1
for m in $3; do mount --bind "$d/${m%%:*}" "${m#*:}"; done
hostname "$2"
ip link set lo up
virtlogd -d -p "$d/virtlogd.pid"
libvirtd -d -l -p "$d/libvirtd.pid"
set +e
while :; do sleep 1; done
"""


class FleetLabError(RuntimeError):
    """The lab could not be built; the message says what to install or run."""


@dataclass(frozen=True)
class FleetHost:
    """One libvirt host of the lab."""

    name: str  # its host name, as the other host resolves it
    address: str
    folder: Path  # holds its private libvirt folders (etc, run, lib, cache, log)

    @property
    def uri(self) -> str:
        """How a client in the root namespace (the test, a daemon) reaches this host."""
        return f"qemu+unix:///system?socket={self.folder}/run/libvirt-sock"

    @property
    def peer_uri(self) -> str:
        """How the other host's libvirtd reaches this one: a migration's destination."""
        return f"qemu+tcp://{self.name}/system"

    def outside(self, inside: str) -> Path:
        """Where a path under one of the host's private folders is, seen from outside."""
        for name, mount_point in PRIVATE_FOLDERS:
            if inside == mount_point or inside.startswith(mount_point + "/"):
                return self.folder / name / inside[len(mount_point) :].lstrip("/")
        raise ValueError(f"{inside} is not in a private folder of {self.name}")

    @property
    def hook_cache(self) -> Path:
        """The daemon cache its QEMU hook reads, when the lab installs one."""
        return self.folder / "daemon-cache"

    def connect(self) -> libvirt.virConnect:
        return libvirt.open(self.uri)


@dataclass
class Fleet:
    """Hosts A and B, and the test guest copied where both hosts' QEMU can read it."""

    folder: Path
    guest: TestGuest
    hosts: tuple[FleetHost, FleetHost]
    shared: Path  # a plain directory both hosts see at the same path
    # The lab's own connections to A and B, open for its lifetime.
    connections: tuple[libvirt.virConnect, libvirt.virConnect]
    _serial: Iterator[int] = field(default_factory=lambda: iter(range(1, 1 << 30)))

    @property
    def a(self) -> FleetHost:
        return self.hosts[0]

    @property
    def b(self) -> FleetHost:
        return self.hosts[1]

    def new_name(self) -> str:
        return f"fleet-{next(self._serial)}"


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, whatever killed it."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _remove_abandoned_labs(base: Path) -> None:
    """Remove the folders of labs whose test process was killed: their namespaces died
    with it (PR_SET_PDEATHSIG), but nothing was left to remove the folder."""
    for folder in base.glob(LAB_PREFIX + "*"):
        try:
            owner = int((folder / OWNER).read_text(encoding="ascii"))
        except (OSError, ValueError):
            continue  # being created right now, or not a lab's
        if not Path(f"/proc/{owner}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FleetLabError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")


def _prepare_folder(folder: Path, name: str) -> None:
    for sub in ("run", "lib/images", "cache", "log/qemu"):  # no log/qemu: no domain starts
        (folder / sub).mkdir(parents=True)
    shutil.copytree("/etc/libvirt", folder / "etc", symlinks=True)
    # The root host's domains, networks, pools and secrets stay out (pitfall 4).
    for sub in ("qemu", "storage", "secrets"):
        shutil.rmtree(folder / "etc" / sub, ignore_errors=True)
        (folder / "etc" / sub).mkdir()
    with (folder / "etc" / "libvirtd.conf").open("a", encoding="utf-8") as conf:
        conf.write(
            "\n# fleet lab: TCP without authentication between the lab's hosts only\n"
            'listen_tls = 0\nlisten_tcp = 1\nauth_tcp = "none"\n'
            # Migration refuses a destination with the source's own host UUID.
            f'host_uuid = "{uuid.uuid4()}"\n'
            # Warnings, and the QMP commands sent to QEMU (migration_capabilities).
            'log_filters = "2:qemu.qemu_monitor"\n'
            f'log_outputs = "2:file:{LIBVIRTD_LOG}"\n'
        )
    with (folder / "etc" / "qemu.conf").open("a", encoding="utf-8") as conf:
        # Two daemons must not fight over the machine's cgroups.
        conf.write("\ncgroup_controllers = [ ]\n")
    (folder / "hosts").write_text(
        "127.0.0.1 localhost\n" + "".join(f"{address} {host}\n" for host, address in HOSTS),
        encoding="utf-8",
    )


def _install_qemu_hook(host: FleetHost) -> None:
    """The two-line hook docs/install.md shows, with this interpreter (the project's
    venv) and the host's daemon cache; libvirtd looks for it when it starts."""
    hooks = host.folder / "etc" / "hooks"
    hooks.mkdir(exist_ok=True)
    script = hooks / "qemu"
    script.write_text(
        "#!/bin/sh\n"
        f'exec {sys.executable} -m reconciler hook qemu --cache-dir {host.hook_cache} -- "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)


def _namespace_init_pid(unshare: subprocess.Popen[bytes]) -> int:
    """The host PID of the namespace's PID 1: the one child `unshare --fork` made."""

    def child() -> int | None:
        if unshare.poll() is not None:
            raise FleetLabError(f"unshare exited with {unshare.returncode}")
        path = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")
        children = path.read_text().split()
        return int(children[0]) if children else None

    return wait_until("the namespace's PID 1", child, 10.0, interval=0.05)


def _start_host(folder: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    mounts = " ".join(f"{sub}:{point}" for sub, point in PRIVATE_FOLDERS)
    log = (folder / "init.log").open("wb")
    with log:
        unshare = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--net",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "bash",
                "-c",
                NAMESPACE_INIT,
                "_",
                str(folder),
                name,
                mounts,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # the fixtures run in one thread: fork is safe
        )
    return unshare, _namespace_init_pid(unshare)


def _wait_for_libvirtd(host: FleetHost) -> libvirt.virConnect:
    def opened() -> libvirt.virConnect | None:
        if not (host.folder / "run" / "libvirt-sock").exists():
            return None
        try:
            return libvirt.open(host.uri)
        except libvirt.libvirtError:
            return None

    try:
        return wait_until(f"libvirtd of {host.name}", opened, HOST_START_TIMEOUT_S, 0.1)
    except TimeoutError as error:
        log = (host.folder / "init.log").read_text(errors="replace")[-2000:]
        raise FleetLabError(f"{error}; its namespace said:\n{log}") from None


def _define_default_pool(conn: libvirt.virConnect) -> None:
    pool = conn.storagePoolDefineXML(
        f"<pool type='dir'><name>default</name><target><path>{IMAGES}</path></target></pool>"
    )
    pool.create()


@contextlib.contextmanager
def fleet_lab(guest_dir: Path, base: Path, *, qemu_hook: bool = False) -> Iterator[Fleet]:
    """Hosts A and B up, each with a started `default` dir pool; everything gone after.
    `qemu_hook`: each host's libvirtd runs `reconciler hook qemu` as its QEMU hook, with
    the cache folder `FleetHost.hook_cache` (a daemon's `cacheDir`)."""
    if missing := missing_tools():
        raise FleetLabError(
            f"the fleet lab needs {', '.join(missing)}: run `make deps` (Debian packages"
            " util-linux, iproute2, libvirt-daemon-system, qemu-utils)"
        )
    _remove_abandoned_labs(base)
    folder = Path(tempfile.mkdtemp(prefix=LAB_PREFIX, dir=base))
    folder.chmod(0o755)  # QEMU runs as libvirt-qemu and must reach the guest and disks
    (folder / OWNER).write_text(str(os.getpid()), encoding="ascii")
    veth = f"vmrf{secrets.token_hex(3)}"  # 10 characters + a/b: under IFNAMSIZ
    unshares: list[subprocess.Popen[bytes]] = []
    connections: list[libvirt.virConnect] = []
    try:
        guest_copy = folder / "guest"
        shared = folder / "shared"
        for sub in (guest_copy, shared):
            sub.mkdir(mode=0o755)
        for source in ("vmlinuz", "initrd.img"):
            shutil.copyfile(guest_dir / source, guest_copy / source)
            (guest_copy / source).chmod(0o644)
        hosts = tuple(FleetHost(name, address, folder / name) for name, address in HOSTS)
        init_pids = []
        for host in hosts:
            _prepare_folder(host.folder, host.name)
            if qemu_hook:
                _install_qemu_hook(host)
            unshare, init_pid = _start_host(host.folder, host.name)
            unshares.append(unshare)
            init_pids.append(init_pid)
        _run("ip", "link", "add", f"{veth}a", "type", "veth", "peer", "name", f"{veth}b")
        for host, init_pid, end in zip(hosts, init_pids, "ab", strict=True):
            _run("ip", "link", "set", f"{veth}{end}", "netns", str(init_pid))
            inside = ("nsenter", "-t", str(init_pid), "-n", "ip")
            _run(*inside, "addr", "add", f"{host.address}/24", "dev", f"{veth}{end}")
            _run(*inside, "link", "set", f"{veth}{end}", "up")
        for host in hosts:
            conn = _wait_for_libvirtd(host)
            connections.append(conn)
            _define_default_pool(conn)
        yield Fleet(
            folder=folder,
            guest=TestGuest(
                kernel=guest_copy / "vmlinuz",
                initrd=guest_copy / "initrd.img",
                kernel_release=(guest_dir / "kernel-release").read_text().strip(),
            ),
            hosts=(hosts[0], hosts[1]),
            shared=shared,
            connections=(connections[0], connections[1]),
        )
    finally:
        for conn in connections:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
        try:
            _stop(unshares)
        finally:
            # Only left in this namespace when setup failed before moving it; else it
            # went with the namespaces.
            subprocess.run(["ip", "link", "del", f"{veth}a"], capture_output=True, check=False)
            shutil.rmtree(folder, ignore_errors=True)


def _stop(unshares: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL each unshare and wait until its namespace's processes are gone."""
    init_pids = []
    for unshare in unshares:
        with contextlib.suppress(FleetLabError, TimeoutError, OSError):
            init_pids.append(_namespace_init_pid(unshare))
        unshare.kill()  # it ignores SIGTERM (pitfall 3)
        unshare.wait()
    # --kill-child has killed each PID 1, and the kernel every process of its namespace;
    # wait for that, so that the folder is removed after QEMU let go of it.
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in init_pids):
        if time.monotonic() > deadline:
            raise FleetLabError(f"the lab's namespaces outlived their unshare: {init_pids}")
        time.sleep(0.05)
