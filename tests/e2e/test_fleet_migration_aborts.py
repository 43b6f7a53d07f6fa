"""Live migrations that do not happen (issue 14), on the fleet lab's two libvirt hosts.

Cancelled by the process that runs it, aborted by another client of the source host
(a restarted daemon), over its time limit, or refused by libvirt: each ends in its own
exception of reconciler/libvirt/migrate.py, with the guest still running on A the same
boot and B without a domain of it. The guest's disk holds data, and the guest's
migration bandwidth is capped (libvirt applies it to the disk copy too), so that a
migration is still running when it is cancelled or times out, on a fast machine as on
a slow one: uncapped, CI's machine once copied it all within the 1 s time limit. The
guest itself stays idle (fleet-lab.md, pitfall 9).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

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

from .fleet import Fleet
from .fleet_guests import Guest, boot_guest, boot_id, domain_names, remove_guest

pytestmark = pytest.mark.e2e

BIG_DISK_MIB = 256
# Copying BIG_DISK_MIB at this speed lasts half a minute: no test here lets a
# migration of it complete, each cancels it, times it out or sees it refused.
CAPPED_MIB_PER_S = 8


@pytest.fixture(scope="module")
def big_guest(fleet: Fleet) -> Iterator[Guest]:
    """A guest on A whose disk holds BIG_DISK_MIB of data. Each test leaves it on A."""
    guest = boot_guest(fleet, disk_mib=BIG_DISK_MIB, data_mib=BIG_DISK_MIB)
    guest.source.migrateSetMaxSpeed(CAPPED_MIB_PER_S)
    assert guest.source.migrateGetMaxSpeed() == CAPPED_MIB_PER_S
    yield guest
    remove_guest(fleet, guest.name)


def assert_still_on_a(fleet: Fleet, guest: Guest) -> None:
    a, b = fleet.connections
    domain = a.lookupByName(guest.name)
    assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert domain.isPersistent()
    assert boot_id(domain) == guest.boot_id
    assert guest.name not in domain_names(b)


class Running:
    """A migration run on a thread of its own, until it ends."""

    def __init__(self, migration: LiveMigration) -> None:
        self.copying = threading.Event()
        self.outcome: list[BaseException | MigrationResult] = []
        self._migration = migration
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        def seen(progress: MigrationProgress) -> None:
            if progress.disk_processed > 0 and progress.data_remaining > 0:
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
    fleet: Fleet, big_guest: Guest
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
    assert_still_on_a(fleet, big_guest)


def test_a_migration_aborted_from_another_connection_is_cancelled_too(
    fleet: Fleet, big_guest: Guest
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
    # then the migration ends as cancelled, in libvirt's words, and the guest is on A
    outcome = running.end()
    assert isinstance(outcome, MigrationCancelled), outcome
    assert outcome.reason.startswith("aborted by another client: ")
    assert "canceled by client" in outcome.reason
    assert_still_on_a(fleet, big_guest)


def test_a_migration_over_its_time_limit_is_aborted_and_the_guest_stays_on_a(
    fleet: Fleet, big_guest: Guest
) -> None:
    # given a time limit far below what copying the disk takes
    request = MigrationRequest(fleet.b.peer_uri, time_limit_s=1.0)
    # when the guest migrates
    with pytest.raises(MigrationTimedOut) as timed_out:
        LiveMigration(big_guest.source, request).run(poll_s=0.1)
    # then it is aborted with the reason, the guest running on A, B without it
    assert timed_out.value.reason == "did not complete within 1 s"
    assert_still_on_a(fleet, big_guest)


def test_memory_only_from_storage_libvirt_does_not_know_as_shared_fails_with_its_reason(
    fleet: Fleet, big_guest: Guest
) -> None:
    # given a guest whose disk is on A's own pool, migrated as if the storage were shared
    request = MigrationRequest(fleet.b.peer_uri, storage=StorageMode.SHARED)
    # when it migrates
    with pytest.raises(MigrationFailed) as failed:
        LiveMigration(big_guest.source, request).run()
    # then libvirt refuses, in its words, and the guest runs on A
    assert "Migration without shared storage is unsafe" in failed.value.reason
    assert failed.value.code == libvirt.VIR_ERR_MIGRATE_UNSAFE
    assert_still_on_a(fleet, big_guest)
