"""Fixtures for the end-to-end tests: a real libvirtd (qemu:///system) running QEMU under TCG.

`make e2e` prepares everything and runs these tests: `make e2e-deps` starts libvirtd with
scripts/start-libvirtd.sh (no systemd needed) and builds the tiny guest with
tests/guest/build-guest.sh into .cache/guest/. By hand, as root:

    scripts/start-libvirtd.sh && tests/guest/build-guest.sh && .venv/bin/pytest -q tests/e2e

End-to-end tests never skip: a missing daemon or guest is a failure that says what to run.

The fixtures, and how an engine-level test uses them:

- `system_conn` (session): the open qemu:///system connection.
- `guest` (session): the built kernel and initramfs, copied where QEMU may read them.
  `guest.kernel_boot()` is the value for a VM manifest's `spec.kernelBoot`
  ({kernel, initrd, cmdline}); the guest needs no disk. Its /init starts qemu-ga on
  org.qemu.guest_agent.0, onlines hot-plugged vCPUs, runs DHCP on every NIC, mounts a
  NoCloud seed labelled `cidata` at /mnt/cidata, and powers off on the ACPI power button
  or the agent's guest-shutdown. 128 MiB of memory is enough. The cloud kernel has no
  AHCI driver: a seed CD-ROM must sit on IDE (machine `pc`) or virtio-scsi.
- `e2e_namespace` (function): a namespace of its own for the test's manifests
  (`metadata.namespace`). The engine names domains `<vm>.<namespace>`; at teardown every
  domain in that namespace is destroyed and undefined, and nothing else is touched.
- `e2e_pool` (module): a started dir storage pool in a fresh directory; give its `name`
  to the engine as the host's storage pool. Its volumes are test data: they, the pool and
  the directory are deleted after the module.
- `e2e_network` (module): a started isolated network with DHCP on 10.213.<n>.0/24 on a
  bridge of its own; `subnet`, `gateway` and `dhcp_range` tell which addresses to use
  (.2-.99 are free for reservations). Destroyed and undefined after the module.
- `host` (function): a `tests.hosts.Host` over all of the above, for engine-level passes
  (`host.write(...)`, `host.reconcile()`, `host.write_statuses(result)`); it sees only the
  test's namespace. A module overrides it by requesting `host` in its own `host` fixture.
- `e2e_session` (session): the session's token and work directory, for fixtures a test
  module builds itself (see test_guest_boots.py for a module-scoped running domain).
- `fleet` (module): two more libvirt hosts, A and B, each its own libvirtd in private
  namespaces joined by a veth (tests/e2e/fleet.py; it needs no qemu:///system). Reach a
  host with `fleet.a.uri` (or `.connect()`); a migration's destination is
  `fleet.b.peer_uri` (`qemu+tcp://hostB/system`). Each host has a `default` dir pool at
  /var/lib/libvirt/images (`host.outside(path)` is where that is from here), and
  `fleet.guest` is the tiny guest, readable by both. See test_fleet_migration.py.
- `two_hosts` (function): the fleet's hosts, each with a `reconciler run` daemon on one
  bare remote (tests/e2e/fleet_daemons.py). See test_fleet_daemons.py.

A start takes about 0.5 s in libvirtd and 5 s more until the guest agent answers (with
scripts/start-libvirtd.sh's /dev/kvm fix; without it libvirt re-probes QEMU on every
define and start): start as few domains as the tests allow, and share a running one
within a module when the tests only observe it. lab.py has the waits
(`wait_for_agent`, `wait_for_state`, `wait_for_lease`) and `agent_command`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import secrets
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest

from tests.hosts import CLASS, Host

from .fleet import Fleet, FleetLabError, fleet_lab
from .fleet_daemons import TwoHosts, two_daemons
from .lab import (
    LabNetwork,
    LabPool,
    SystemConnection,
    TestGuest,
    dir_pool,
    domain_in_namespace,
    isolated_network,
    remove_domains,
)

SYSTEM_URI = "qemu:///system"
REPO = Path(__file__).resolve().parents[2]
GUEST_DIR = Path(os.environ.get("VMR_GUEST_DIR", REPO / ".cache" / "guest"))
# /var/tmp rather than pytest's tmp_path: QEMU runs as libvirt-qemu and cannot enter
# pytest's 0700 /tmp/pytest-of-root, nor a repository cloned under /root.
WORKDIR_BASE = Path("/var/tmp")

# libvirt prints every error to stderr besides raising it; the waits poll through
# expected errors ("agent not connected"), so keep only the exceptions.
libvirt.registerErrorHandler(lambda _ctx, _error: None, None)


@dataclass
class E2ESession:
    """What names and directories this test session owns on the shared libvirtd."""

    token: str
    workdir: Path
    _serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    # Third octets of 10.213.x.0/24 to try for networks, in a per-session order so that
    # sessions running side by side rarely pick the same one.
    subnet_octets: Iterator[int] = field(
        default_factory=lambda: iter(random.sample(range(1, 255), 254))
    )

    @property
    def prefix(self) -> str:
        return f"e2e-{self.token}"

    def new_name(self) -> str:
        """A name no other object of this or another session has: `e2e-<token>-<n>`."""
        return f"{self.prefix}-{next(self._serial)}"

    def owns_domain(self, domain_name: str) -> bool:
        namespace = domain_name.rpartition(".")[2]
        return namespace == self.prefix or namespace.startswith(self.prefix + "-")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart libvirtd run last, so that nothing else sees the restart."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_libvirtd") is not None)


@pytest.fixture(scope="session")
def system_conn() -> Iterator[libvirt.virConnect]:
    """The qemu:///system connection; fails (never skips) when libvirtd does not answer."""
    try:
        conn = SystemConnection(SYSTEM_URI)
    except libvirt.libvirtError as error:
        pytest.fail(
            f"{SYSTEM_URI} is not available: {error}\n"
            "The end-to-end tests need a running libvirtd. Run `make e2e` (it starts one),"
            " or as root: scripts/start-libvirtd.sh",
            pytrace=False,
        )
    try:
        yield conn  # type: ignore[misc]
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


@pytest.fixture(scope="session")
def e2e_session(system_conn: libvirt.virConnect) -> Iterator[E2ESession]:
    token = secrets.token_hex(3)
    workdir = WORKDIR_BASE / f"vmr-e2e-{token}"
    workdir.mkdir(mode=0o755)
    workdir.chmod(0o755)  # whatever the umask
    session = E2ESession(token=token, workdir=workdir)
    try:
        yield session
    finally:
        try:
            # A net under the per-test cleanups: nothing of this session outlives it.
            remove_domains(system_conn, session.owns_domain)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def require_built_guest() -> None:
    """Fail, saying what to run, unless tests/guest/build-guest.sh has built the guest."""
    names = ("vmlinuz", "initrd.img", "build.key", "kernel-release")
    if not all((GUEST_DIR / name).is_file() for name in names):
        pytest.fail(
            f"the test guest is not built in {GUEST_DIR}.\n"
            "Run `make e2e-deps`, or as root: tests/guest/build-guest.sh",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def guest(e2e_session: E2ESession) -> TestGuest:
    """The tiny guest's kernel and initramfs; fails with instructions when not built."""
    require_built_guest()
    kernel, initrd = GUEST_DIR / "vmlinuz", GUEST_DIR / "initrd.img"
    # A private copy in the world-readable work directory: libvirt relabels the files
    # it boots, and the cache may sit under a directory libvirt-qemu cannot enter.
    target = e2e_session.workdir / "guest"
    target.mkdir(mode=0o755)
    for source in (kernel, initrd):
        shutil.copyfile(source, target / source.name)
        (target / source.name).chmod(0o644)
    return TestGuest(
        kernel=target / kernel.name,
        initrd=target / initrd.name,
        kernel_release=(GUEST_DIR / "kernel-release").read_text().strip(),
    )


@pytest.fixture
def e2e_namespace(system_conn: libvirt.virConnect, e2e_session: E2ESession) -> Iterator[str]:
    """A fresh namespace for one test; its domains (`<vm>.<namespace>`) go at teardown."""
    namespace = e2e_session.new_name()
    yield namespace
    remove_domains(system_conn, lambda name: domain_in_namespace(name, namespace))


@pytest.fixture(scope="module")
def e2e_pool(system_conn: libvirt.virConnect, e2e_session: E2ESession) -> Iterator[LabPool]:
    """A started dir pool of the module's own; its volumes are deleted with it."""
    name = "vmr-" + e2e_session.new_name()
    with dir_pool(system_conn, name, e2e_session.workdir / name) as pool:
        yield pool


@pytest.fixture(scope="module")
def e2e_network(system_conn: libvirt.virConnect, e2e_session: E2ESession) -> Iterator[LabNetwork]:
    """A started isolated network with DHCP on a private /24 and bridge of the module's own."""
    name = "vmr-" + e2e_session.new_name()
    # Linux bridge names have at most 15 characters: "vmr<token>-<n>".
    bridge = f"vmr{e2e_session.token}-{name.rpartition('-')[2]}"
    with isolated_network(system_conn, name, bridge, e2e_session.subnet_octets) as network:
        yield network


@pytest.fixture
def host(
    system_conn: libvirt.virConnect,
    e2e_pool: LabPool,
    e2e_network: LabNetwork,
    e2e_namespace: str,
    tmp_path: Path,
) -> Host:
    """A host the engine reconciles (tests/hosts.py) on the real libvirtd: a repository with
    the VirtualMachineClass, the module's pool and network, and eyes only for the test's
    namespace (other tests' VMs on the shared libvirtd are not its to delete)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
    return Host(
        repo,
        system_conn,
        storage_pool=e2e_pool.name,
        network=e2e_network.name,
        namespaces=(e2e_namespace,),
    )


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    """Two libvirt hosts, A and B, each in namespaces of its own (tests/e2e/fleet.py), for
    one module; it needs no qemu:///system. Up in about a second; gone after the module,
    processes, veth and folder, whatever the tests did."""
    require_built_guest()
    try:
        with fleet_lab(GUEST_DIR, WORKDIR_BASE) as lab:
            yield lab
    except FleetLabError as error:
        pytest.fail(f"the fleet lab: {error}", pytrace=False)


@pytest.fixture
def two_hosts(fleet: Fleet, tmp_path: Path) -> Iterator[TwoHosts]:
    """The fleet's hosts A and B, each with a `reconciler run` daemon (not started yet) on
    one bare remote (tests/e2e/fleet_daemons.py); every domain and volume of its
    namespace is gone from both hosts after the test."""
    with two_daemons(fleet, tmp_path) as hosts:
        yield hosts
