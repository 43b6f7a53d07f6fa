"""A libvirtd of the bench's own: the real daemon and QEMU driver, touching nobody's domains.

`reconciler apply` owns every domain of the project on the host it is pointed at: one
whose VM is not in its repository is shut down and undefined (SPEC §10). On a shared
qemu:///system that includes the domains of the end-to-end tests and of any other
benchmark running meanwhile, so bench/oneshot.py never runs against it. It starts
this host instead, the recipe of tests/e2e/fleet.py for one host: `unshare --mount
--net --pid` around a bash that, as PID 1 of its namespace, bind-mounts private copies
over the libvirt folders and starts its own virtlogd and libvirtd. The harness and
the tools reach it through its socket (`uri`). Teardown SIGKILLs `unshare`, whose
--kill-child takes the namespace and every process in it; the folder goes last.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt

PRIVATE_FOLDERS = (
    ("etc", "/etc/libvirt"),
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("log", "/var/log/libvirt"),
)
START_TIMEOUT_S = 60.0
UNSHARE = ("unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc")
# PID 1 of the namespace: a bash loop, which reaps, rather than `exec sleep`.
NAMESPACE_INIT = """
set -e
d=$1
for m in $2; do mount --bind "$d/${m%%:*}" "${m#*:}"; done
virtlogd -d -p "$d/virtlogd.pid"
libvirtd -d -p "$d/libvirtd.pid"
set +e
while :; do sleep 1; done
"""


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the harness dies, whatever killed it."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _prepare(folder: Path) -> None:
    for sub in ("run", "lib/images", "cache", "log/qemu"):
        (folder / sub).mkdir(parents=True)
    shutil.copytree("/etc/libvirt", folder / "etc", symlinks=True)
    # The machine's domains, networks, pools and secrets stay out.
    for sub in ("qemu", "storage", "secrets"):
        shutil.rmtree(folder / "etc" / sub, ignore_errors=True)
        (folder / "etc" / sub).mkdir()
    with (folder / "etc" / "qemu.conf").open("a", encoding="utf-8") as conf:
        conf.write("\ncgroup_controllers = [ ]\n")  # two daemons, one machine's cgroups


@contextlib.contextmanager
def private_libvirtd(folder: Path) -> Iterator[str]:
    """A started libvirtd whose state lives in `folder`; yields its URI."""
    _prepare(folder)
    mounts = " ".join(f"{sub}:{point}" for sub, point in PRIVATE_FOLDERS)
    with (folder / "init.log").open("wb") as log:
        unshare = subprocess.Popen(
            [*UNSHARE, "bash", "-c", NAMESPACE_INIT, "_", str(folder), mounts],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # the harness is one thread: fork is safe
        )
    try:
        uri = f"qemu+unix:///system?socket={folder}/run/libvirt-sock"
        _wait_for(uri, unshare, folder)
        yield uri
    finally:
        children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children")
        init = children.read_text().split() if children.exists() else []
        unshare.kill()  # it ignores SIGTERM
        unshare.wait()
        deadline = time.monotonic() + 30
        while init and Path(f"/proc/{init[0]}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _wait_for(uri: str, unshare: subprocess.Popen[bytes], folder: Path) -> None:
    """Until the daemon answers, and has probed QEMU once (not in the first timed run)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if unshare.poll() is not None:
            break
        if (folder / "run" / "libvirt-sock").exists():
            with contextlib.suppress(libvirt.libvirtError):
                conn = libvirt.open(uri)
                conn.getDomainCapabilities(None, None, None, None, 0)
                conn.close()
                return
        time.sleep(0.1)
    log = (folder / "init.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the bench's libvirtd did not answer; its namespace said:\n{log}")
