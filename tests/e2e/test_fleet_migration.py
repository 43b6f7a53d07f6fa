"""Live migration between two real libvirt hosts (issue 14), by reconciler/libvirt/migrate.py.

The fleet lab (tests/e2e/fleet.py) runs hosts A and B, each its own libvirtd in
namespaces of its own. The tiny guest runs on A from a qcow2 disk in A's `default`
pool; A's libvirtd migrates it peer to peer to `qemu+tcp://hostB/system`. What an
operator would notice: the guest runs on B the same boot (its boot id and uptime go
on, its agent answers, what it wrote to its disk is there), A no longer has it, its
`<metadata>` came along, and both hosts told of it in their lifecycle events.
Migrations that do not happen are in test_fleet_migration_aborts.py. Test guests stay
idle while they migrate (fleet-lab.md, pitfall 9).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libvirt
import pytest

from reconciler.libvirt.migrate import (
    LiveMigration,
    MigrationProgress,
    MigrationRequest,
    MigrationResult,
    StorageMode,
)

from .fleet import IMAGES, Fleet
from .fleet_guests import (
    MARKER,
    DomainEvents,
    Guest,
    boot_guest,
    boot_id,
    domain_names,
    guest_output,
    log_size,
    migration_capabilities,
    read_marker,
    remove_guest,
    write_marker,
)
from .lab import wait_until

pytestmark = pytest.mark.e2e

METADATA_URI = "https://vm-gitops.io/tests/fleet"
METADATA = "<applied revision='r1'>the spec as applied</applied>"
STOPPED_MIGRATED = (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED)
RESUMED_MIGRATED = (libvirt.VIR_DOMAIN_EVENT_RESUMED, libvirt.VIR_DOMAIN_EVENT_RESUMED_MIGRATED)


def uptime(domain: libvirt.virDomain) -> float:
    return float(guest_output(domain, "cut -d' ' -f1 /proc/uptime"))


@dataclass
class Migrated:
    guest: Guest
    uptime_before: float
    result: MigrationResult
    progress: list[MigrationProgress]  # the readings run() handed on while it ran
    events_a: list[tuple[int, int]]  # (event, detail) of the guest's domain on A
    events_b: list[tuple[int, int]]
    capabilities: list[dict[str, bool]]  # what A's libvirtd set in QEMU meanwhile

    def on_b(self, fleet: Fleet) -> libvirt.virDomain:
        return fleet.connections[1].lookupByName(self.guest.name)


def last_events_seen(watches: tuple[DomainEvents, DomainEvents], name: str) -> bool | None:
    a, b = watches
    return True if STOPPED_MIGRATED in a.of(name) and RESUMED_MIGRATED in b.of(name) else None


@pytest.fixture(scope="module")
def migrated(fleet: Fleet) -> Iterator[Migrated]:
    """A guest that wrote a marker to its disk on A, then migrated to B (copied storage)."""
    guest = boot_guest(fleet, disk_mib=64)
    try:
        guest.source.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            METADATA,
            "vmr",
            METADATA_URI,
            libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG,
        )
        write_marker(guest.source)
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
        remove_guest(fleet, guest.name)


def test_the_guest_runs_on_b_defined_there(migrated: Migrated, fleet: Fleet) -> None:
    domain = migrated.on_b(fleet)

    assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert domain.isPersistent()


def test_the_guest_is_gone_from_a(migrated: Migrated, fleet: Fleet) -> None:
    assert migrated.guest.name not in domain_names(fleet.connections[0])


def test_the_guest_on_b_is_the_same_boot_and_its_agent_answers(
    migrated: Migrated, fleet: Fleet
) -> None:
    domain = migrated.on_b(fleet)

    assert boot_id(domain) == migrated.guest.boot_id
    assert uptime(domain) > migrated.uptime_before


def test_what_the_guest_wrote_to_its_disk_on_a_reads_back_on_b(
    migrated: Migrated, fleet: Fleet
) -> None:
    assert read_marker(migrated.on_b(fleet)) == MARKER


def test_the_domain_metadata_arrives_with_it(migrated: Migrated, fleet: Fleet) -> None:
    domain = migrated.on_b(fleet)

    for flags in (libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG):
        text = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_URI, flags)
        assert 'revision="r1"' in text and "the spec as applied" in text


def test_the_destination_keeps_the_completed_jobs_statistics(
    migrated: Migrated, fleet: Fleet
) -> None:
    # Without KEEP_COMPLETED, libvirt forgets them once read.
    stats = migrated.on_b(fleet).jobStats(
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
    assert migrated.capabilities
    assert not any(caps.get("auto-converge") for caps in migrated.capabilities)


def test_auto_converge_asked_for_is_set_in_qemu_for_the_migration(fleet: Fleet) -> None:
    # given a running guest on A
    guest = boot_guest(fleet, disk_mib=64)
    try:
        since = log_size(fleet.a)
        # when it migrates with auto-converge (an idle guest converges without throttling,
        # so libvirt's job statistics never show it; fleet-lab.md, pitfall 8)
        request = MigrationRequest(fleet.b.peer_uri, auto_converge=True)
        LiveMigration(guest.source, request).run()
        # then A's libvirtd turned QEMU's auto-converge on for it, and the guest is on B
        capabilities = migration_capabilities(fleet.a, since)
        assert any(caps.get("auto-converge") for caps in capabilities), capabilities
        assert fleet.connections[1].lookupByName(guest.name).isActive()
    finally:
        remove_guest(fleet, guest.name)


def test_a_guest_on_a_shared_directory_moves_by_its_memory_only(fleet: Fleet) -> None:
    # given a guest whose disk is in a plain directory both hosts see, a marker on it
    guest = boot_guest(fleet, disk_mib=64, shared=True)
    try:
        write_marker(guest.source)
        # when it migrates as shared-directory storage (libvirt 9.0 needs UNSAFE for it)
        request = MigrationRequest(fleet.b.peer_uri, storage=StorageMode.SHARED_DIRECTORY)
        LiveMigration(guest.source, request).run()
        # then it runs on B from the same file, the same boot; no disk was copied into B
        domain = fleet.connections[1].lookupByName(guest.name)
        assert str(fleet.shared / f"{guest.name}.qcow2") in domain.XMLDesc(0)
        assert read_marker(domain) == MARKER
        assert boot_id(domain) == guest.boot_id
        assert not fleet.b.outside(f"{IMAGES}/{guest.name}.qcow2").exists()
    finally:
        remove_guest(fleet, guest.name)
