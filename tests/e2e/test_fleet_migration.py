"""Live migration between two real libvirt hosts (issue 14), by reconciler/libvirt/migrate.py.

The fleet lab (tests/e2e/fleet.py) runs hosts A and B, each its own libvirtd in
namespaces of its own. The tiny guest runs on A from a qcow2 disk in A's `default`
pool; the source's libvirtd migrates it peer to peer to `qemu+tcp://hostB/system`.
An operator would notice: the guest runs on B the same boot (its boot id and uptime go
on, its agent answers, what it wrote to its disk is there), A no longer has it, and
its `<metadata>` came along. A cancelled or timed-out migration leaves it running on
A, and B without it. Test guests stay idle while they migrate (fleet-lab.md, pitfall 9).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import libvirt
import pytest

from reconciler.libvirt.migrate import (
    LiveMigration,
    MigrationCancelled,
    MigrationFailed,
    MigrationProgress,
    MigrationRequest,
    MigrationResult,
    MigrationTimedOut,
    StorageMode,
    abort_outgoing_migration,
)

from .fleet import (
    DomainEvents,
    Fleet,
    create_qcow2,
    disk_xml,
    guest_domain_xml,
    guest_output,
    log_size,
    migration_capabilities,
)
from .lab import remove_domains, wait_for_agent, wait_until

pytestmark = pytest.mark.e2e

MARKER = "vmr-fleet-marker"
METADATA_URI = "https://vm-gitops.io/tests/fleet"
METADATA = "<applied revision='r1'>the spec as applied</applied>"
# A disk full of data takes seconds to copy here (about 200 MB/s, after about a second
# of preparing the destination): long enough to cancel or time out a migration.
BIG_DISK_MIB = 256


@dataclass
class Guest:
    """A running test guest on host A: its name, its domain there and what it was."""

    name: str
    source: libvirt.virDomain
    boot_id: str


@pytest.fixture(scope="module")
def connections(fleet: Fleet) -> Iterator[tuple[libvirt.virConnect, libvirt.virConnect]]:
    a, b = fleet.a.connect(), fleet.b.connect()
    yield a, b
    for conn in (a, b):
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def boot_guest(
    fleet: Fleet, conn: libvirt.virConnect, disk_mib: int, data_mib: int, *, shared: bool = False
) -> Guest:
    """A guest on A with a qcow2 disk in A's pool, or (`shared`) in the lab's shared folder."""
    name = fleet.new_name()
    if shared:
        path = str(fleet.shared / f"{name}.qcow2")
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", path, f"{disk_mib}M"], check=True
        )
        disk = disk_xml(path, cache="none")  # no host page cache between the two hosts
    else:
        disk = disk_xml(create_qcow2(fleet.a, name, disk_mib, data_mib))
    domain = conn.defineXML(guest_domain_xml(name, fleet.guest, disk))
    domain.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        METADATA,
        "vmr",
        METADATA_URI,
        libvirt.VIR_DOMAIN_AFFECT_CONFIG,
    )
    domain.create()
    wait_for_agent(domain)
    boot_id = guest_output(domain, "cat /proc/sys/kernel/random/boot_id").strip()
    return Guest(name, domain, boot_id)


def remove_guest(fleet: Fleet, connections: tuple[libvirt.virConnect, ...], name: str) -> None:
    for conn in connections:
        remove_domains(conn, lambda candidate: candidate == name)
    for host in fleet.hosts:
        host.outside(f"/var/lib/libvirt/images/{name}.qcow2").unlink(missing_ok=True)
    (fleet.shared / f"{name}.qcow2").unlink(missing_ok=True)


def domain_names(conn: libvirt.virConnect) -> list[str]:
    return [domain.name() for domain in conn.listAllDomains()]


def uptime(domain: libvirt.virDomain) -> float:
    return float(guest_output(domain, "cut -d' ' -f1 /proc/uptime"))


def copying(progress: MigrationProgress) -> bool:
    return progress.disk_processed > 0 and progress.data_remaining > 0


# ---------------------------------------------------------------- one migration A -> B


@dataclass
class Migrated:
    guest: Guest
    uptime_before: float
    result: MigrationResult
    progress: list[MigrationProgress]  # the readings run() handed on while it ran
    events_a: list[tuple[int, int]]
    events_b: list[tuple[int, int]]
    capabilities: list[dict[str, bool]]  # what A's libvirtd set in QEMU meanwhile


@pytest.fixture(scope="module")
def migrated(
    fleet: Fleet, connections: tuple[libvirt.virConnect, libvirt.virConnect]
) -> Iterator[Migrated]:
    """A guest that wrote a marker to its disk on A, then migrated to B (copied storage)."""
    a, _b = connections
    guest = boot_guest(fleet, a, disk_mib=64, data_mib=0)
    try:
        guest_output(guest.source, f"echo {MARKER} | dd of=/dev/vda conv=fsync 2>/dev/null")
        before = uptime(guest.source)
        watches = DomainEvents(fleet.a), DomainEvents(fleet.b)
        since = log_size(fleet.a)
        try:
            progress: list[MigrationProgress] = []
            migration = LiveMigration(guest.source, MigrationRequest(fleet.b.peer_uri))
            result = migration.run(progress.append, poll_s=0.1)
            # The last events may trail the call by a moment.
            wait_until(
                f"the hosts' last events; A saw {watches[0].seen}, B {watches[1].seen}",
                lambda: last_events_seen(watches, guest.name),
                10,
            )
        finally:
            for watch in watches:
                watch.close()
        yield Migrated(
            guest,
            before,
            result,
            progress,
            watches[0].of(guest.name),
            watches[1].of(guest.name),
            migration_capabilities(fleet.a, since),
        )
    finally:
        remove_guest(fleet, connections, guest.name)


STOPPED_MIGRATED = (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED)
RESUMED_MIGRATED = (libvirt.VIR_DOMAIN_EVENT_RESUMED, libvirt.VIR_DOMAIN_EVENT_RESUMED_MIGRATED)


def last_events_seen(watches: tuple[DomainEvents, DomainEvents], name: str) -> bool | None:
    a, b = watches
    return True if STOPPED_MIGRATED in a.of(name) and RESUMED_MIGRATED in b.of(name) else None


def test_the_guest_runs_on_b_defined_there(
    migrated: Migrated, connections: tuple[libvirt.virConnect, libvirt.virConnect]
) -> None:
    domain = connections[1].lookupByName(migrated.guest.name)

    assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert domain.isPersistent()


def test_the_guest_is_gone_from_a(
    migrated: Migrated, connections: tuple[libvirt.virConnect, libvirt.virConnect]
) -> None:
    assert migrated.guest.name not in domain_names(connections[0])


def test_the_guest_on_b_is_the_same_boot_and_its_agent_answers(
    migrated: Migrated, connections: tuple[libvirt.virConnect, libvirt.virConnect]
) -> None:
    domain = connections[1].lookupByName(migrated.guest.name)

    assert guest_output(domain, "cat /proc/sys/kernel/random/boot_id").strip() == (
        migrated.guest.boot_id
    )
    assert uptime(domain) > migrated.uptime_before


def test_what_the_guest_wrote_to_its_disk_on_a_reads_back_on_b(
    migrated: Migrated, connections: tuple[libvirt.virConnect, libvirt.virConnect]
) -> None:
    domain = connections[1].lookupByName(migrated.guest.name)

    assert guest_output(domain, f"head -c {len(MARKER)} /dev/vda") == MARKER


def test_the_domain_metadata_arrives_with_it(
    migrated: Migrated, connections: tuple[libvirt.virConnect, libvirt.virConnect]
) -> None:
    domain = connections[1].lookupByName(migrated.guest.name)

    for flags in (libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG):
        text = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_URI, flags)
        assert 'revision="r1"' in text and "the spec as applied" in text


def test_the_destination_keeps_the_completed_jobs_statistics(
    migrated: Migrated, connections: tuple[libvirt.virConnect, libvirt.virConnect]
) -> None:
    domain = connections[1].lookupByName(migrated.guest.name)

    # Without KEEP_COMPLETED, libvirt forgets them once read.
    stats = domain.jobStats(
        libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED
    )

    assert stats["type"] == libvirt.VIR_DOMAIN_JOB_COMPLETED
    assert stats["operation"] == libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN
    assert stats["memory_processed"] > 0 and stats["memory_remaining"] == 0


def test_the_source_reported_the_jobs_progress_up_to_the_memory_passes(
    migrated: Migrated,
) -> None:
    lines = [reading.line() for reading in migrated.progress]

    assert lines and lines[0].startswith("preparing the destination"), lines
    assert migrated.result.last_progress == migrated.progress[-1]
    assert migrated.progress[-1].memory_iteration >= 1, lines
    assert lines[-1].startswith("memory pass "), lines


def test_both_hosts_tell_of_the_migration_in_their_lifecycle_events(migrated: Migrated) -> None:
    # What a host's daemon watching its libvirt sees. B: started "migrated" (paused,
    # while memory arrives), defined (the persistent definition), resumed "migrated".
    # A: suspended "migrated" for the switch-over, stopped "migrated"; libvirt 9.0 sends
    # no undefined event for UNDEFINE_SOURCE: the domain is simply gone from A.
    assert migrated.events_b == [
        (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED),
        (libvirt.VIR_DOMAIN_EVENT_DEFINED, libvirt.VIR_DOMAIN_EVENT_DEFINED_ADDED),
        RESUMED_MIGRATED,
    ]
    assert migrated.events_a == [
        (libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED),
        STOPPED_MIGRATED,
    ]


def test_a_migration_without_auto_converge_leaves_it_off_in_qemu(migrated: Migrated) -> None:
    # The capabilities set for the migration itself: libvirt sets them again to reset.
    assert migrated.capabilities
    assert not any(caps.get("auto-converge") for caps in migrated.capabilities)


def test_auto_converge_asked_for_is_set_in_qemu_for_the_migration(
    fleet: Fleet, connections: tuple[libvirt.virConnect, libvirt.virConnect]
) -> None:
    # given a running guest on A
    guest = boot_guest(fleet, connections[0], disk_mib=64, data_mib=0)
    try:
        since = log_size(fleet.a)
        # when it migrates with auto-converge (an idle guest converges without throttling,
        # so libvirt's job statistics never show it; fleet-lab.md, pitfall 8)
        LiveMigration(guest.source, MigrationRequest(fleet.b.peer_uri, auto_converge=True)).run()
        # then A's libvirtd turned QEMU's auto-converge on for it, and the guest is on B
        capabilities = migration_capabilities(fleet.a, since)
        assert any(caps.get("auto-converge") for caps in capabilities), capabilities
        assert connections[1].lookupByName(guest.name).isActive()
    finally:
        remove_guest(fleet, connections, guest.name)


def test_a_guest_on_a_shared_directory_moves_by_its_memory_only(
    fleet: Fleet, connections: tuple[libvirt.virConnect, libvirt.virConnect]
) -> None:
    # given a guest whose disk is in a plain directory both hosts see, a marker on it
    a, b = connections
    guest = boot_guest(fleet, a, disk_mib=64, data_mib=0, shared=True)
    try:
        guest_output(guest.source, f"echo {MARKER} | dd of=/dev/vda conv=fsync 2>/dev/null")
        # when it migrates as shared-directory storage (libvirt 9.0 needs UNSAFE for it)
        request = MigrationRequest(fleet.b.peer_uri, storage=StorageMode.SHARED_DIRECTORY)
        LiveMigration(guest.source, request).run()
        # then it runs on B from the same file, the same boot; no disk was copied into B
        domain = b.lookupByName(guest.name)
        assert str(fleet.shared / f"{guest.name}.qcow2") in domain.XMLDesc(0)
        assert guest_output(domain, f"head -c {len(MARKER)} /dev/vda") == MARKER
        assert guest_output(domain, "cat /proc/sys/kernel/random/boot_id").strip() == (
            guest.boot_id
        )
        assert not fleet.b.outside(f"/var/lib/libvirt/images/{guest.name}.qcow2").exists()
    finally:
        remove_guest(fleet, connections, guest.name)


# ---------------------------------------------------------------- migrations that do not happen


@pytest.fixture(scope="module")
def big_guest(
    fleet: Fleet, connections: tuple[libvirt.virConnect, libvirt.virConnect]
) -> Iterator[Guest]:
    """A guest on A whose disk holds BIG_DISK_MIB of data: its migration lasts seconds.
    Each test using it leaves it running on A, as they prove."""
    guest = boot_guest(fleet, connections[0], disk_mib=BIG_DISK_MIB, data_mib=BIG_DISK_MIB)
    yield guest
    remove_guest(fleet, connections, guest.name)


def assert_still_on_a(guest: Guest, connections: tuple[libvirt.virConnect, ...]) -> None:
    a, b = connections
    domain = a.lookupByName(guest.name)
    assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert domain.isPersistent()
    assert guest_output(domain, "cat /proc/sys/kernel/random/boot_id").strip() == guest.boot_id
    assert guest.name not in domain_names(b)


class Running:
    """A migration run on a thread of its own; `outcome` is its result or exception."""

    def __init__(self, migration: LiveMigration) -> None:
        self.copying = threading.Event()
        self.outcome: list[BaseException | MigrationResult] = []
        self._migration = migration
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        def seen(progress: MigrationProgress) -> None:
            if copying(progress):
                self.copying.set()

        try:
            self.outcome.append(self._migration.run(seen, poll_s=0.1))
        except Exception as error:  # handed to the test's thread
            self.outcome.append(error)

    def wait_until_copying(self) -> None:
        assert self.copying.wait(60), f"the migration never started copying: {self.outcome}"

    def end(self) -> BaseException | MigrationResult:
        self._thread.join(60)
        assert len(self.outcome) == 1, "the migration did not end"
        return self.outcome[0]


def test_a_cancelled_migration_leaves_the_guest_running_on_a(
    fleet: Fleet, connections: tuple[libvirt.virConnect, libvirt.virConnect], big_guest: Guest
) -> None:
    # given a migration copying the guest's disk to B
    migration = LiveMigration(big_guest.source, MigrationRequest(fleet.b.peer_uri))
    running = Running(migration)
    running.wait_until_copying()
    # when another thread cancels it
    migration.cancel()
    # then it ends as cancelled, the guest running on A the same boot, B without it
    outcome = running.end()
    assert isinstance(outcome, MigrationCancelled), outcome
    assert outcome.reason == "cancelled on request"
    assert_still_on_a(big_guest, connections)


def test_a_migration_aborted_from_another_connection_is_cancelled_too(
    fleet: Fleet, connections: tuple[libvirt.virConnect, libvirt.virConnect], big_guest: Guest
) -> None:
    # given a migration copying the guest's disk to B
    running = Running(LiveMigration(big_guest.source, MigrationRequest(fleet.b.peer_uri)))
    running.wait_until_copying()
    # when another client of A (a restarted daemon, say) aborts the domain's migration
    other = fleet.a.connect()
    try:
        assert abort_outgoing_migration(other.lookupByName(big_guest.name))
    finally:
        other.close()
    # then the migration ends as cancelled, with libvirt's words, and the guest is on A
    outcome = running.end()
    assert isinstance(outcome, MigrationCancelled), outcome
    assert outcome.reason.startswith("aborted by another client: ")
    assert "canceled by client" in outcome.reason
    assert_still_on_a(big_guest, connections)


def test_a_migration_over_its_time_limit_is_aborted_and_the_guest_stays_on_a(
    fleet: Fleet, connections: tuple[libvirt.virConnect, libvirt.virConnect], big_guest: Guest
) -> None:
    # given a time limit far below what copying the disk takes
    request = MigrationRequest(fleet.b.peer_uri, time_limit_s=1.0)
    # when the guest migrates
    with pytest.raises(MigrationTimedOut) as timed_out:
        LiveMigration(big_guest.source, request).run(poll_s=0.1)
    # then it is aborted with the reason, the guest running on A, B without it
    assert timed_out.value.reason == "did not complete within 1 s"
    assert_still_on_a(big_guest, connections)


def test_memory_only_from_storage_libvirt_does_not_know_as_shared_fails_with_its_reason(
    fleet: Fleet, connections: tuple[libvirt.virConnect, libvirt.virConnect], big_guest: Guest
) -> None:
    # given a guest whose disk is on A's own pool, migrated as if the storage were shared
    request = MigrationRequest(fleet.b.peer_uri, storage=StorageMode.SHARED)
    # when it migrates
    with pytest.raises(MigrationFailed) as failed:
        LiveMigration(big_guest.source, request).run()
    # then libvirt refuses, in its words, and the guest runs on A
    assert "Migration without shared storage is unsafe" in failed.value.reason
    assert failed.value.code == libvirt.VIR_ERR_MIGRATE_UNSAFE
    assert_still_on_a(big_guest, connections)
