"""reconciler/libvirt/migrate.py without a second host: its flags, its progress line, and a
migration libvirt refuses, on libvirt's test driver (which migrates nothing).

The migrations that happen, are cancelled or time out are in
tests/e2e/test_fleet_migration.py, on two real libvirt hosts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from reconciler.libvirt.connection import open_connection
from reconciler.libvirt.migrate import (
    LiveMigration,
    MigrationError,
    MigrationFailed,
    MigrationProgress,
    MigrationRequest,
    StallWatch,
    StorageMode,
    abort_outgoing_migration,
    completion_limit_s,
    migration_flags,
    without_hook_command,
)

HOST_XML = Path(__file__).with_name("host.xml")
ALWAYS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)
# virDomainGetJobStats of a migration on the fleet lab, copying a 256 MiB disk.
COPYING_DISKS = {
    "type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED,
    "operation": libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT,
    "time_elapsed": 1515,
    "data_total": 268435456,
    "data_processed": 62914560,
    "data_remaining": 205520896,
    "disk_total": 268435456,
    "disk_processed": 62914560,
    "memory_iteration": 0,
}


@pytest.fixture
def domain() -> Iterator[libvirt.virDomain]:
    """The test driver's running domain `test`."""
    connection = open_connection(f"test://{HOST_XML}")
    yield connection.lookupByName("test")
    connection.close()


@pytest.mark.parametrize(
    ("storage", "extra"),
    [
        (StorageMode.COPY, libvirt.VIR_MIGRATE_NON_SHARED_DISK),
        (StorageMode.SHARED, 0),
        (StorageMode.SHARED_DIRECTORY, libvirt.VIR_MIGRATE_UNSAFE),
    ],
)
def test_every_migration_is_live_peer_to_peer_and_moves_the_definition(
    storage: StorageMode, extra: int
) -> None:
    assert migration_flags(MigrationRequest("qemu+tls://hv2/system", storage)) == ALWAYS | extra


def test_only_a_shared_directory_migrates_unsafe() -> None:
    unsafe = [
        mode
        for mode in StorageMode
        if migration_flags(MigrationRequest("qemu+tls://hv2/system", mode))
        & libvirt.VIR_MIGRATE_UNSAFE
    ]

    assert unsafe == [StorageMode.SHARED_DIRECTORY]


@pytest.mark.parametrize("wanted", [True, False])
def test_auto_converge_is_passed_only_when_asked_for(wanted: bool) -> None:
    flags = migration_flags(MigrationRequest("qemu+tls://hv2/system", auto_converge=wanted))

    assert bool(flags & libvirt.VIR_MIGRATE_AUTO_CONVERGE) is wanted


@pytest.mark.parametrize(
    ("gib", "limit"), [(0.1, 800.0), (1.0, 800.0), (1.5, 1600.0), (20.0, 16000.0)]
)
def test_the_time_limit_is_800_s_per_started_gib(gib: float, limit: float) -> None:
    assert completion_limit_s(int(gib * (1 << 30))) == limit


def test_progress_while_disks_are_copied_reads_as_such() -> None:
    progress = MigrationProgress.from_job_stats(COPYING_DISKS)

    assert progress is not None
    assert progress.percent == 23
    assert progress.line() == "copying disks: 23% (60 of 256 MiB)"


def test_progress_during_a_memory_pass_shows_the_throttle() -> None:
    stats = COPYING_DISKS | {
        "data_total": 402653184,
        "data_processed": 377487360,
        "memory_iteration": 2,
        "auto_converge_throttle": 20,
    }

    progress = MigrationProgress.from_job_stats(stats)

    assert progress is not None
    assert progress.line() == "memory pass 2: 93% (360 of 384 MiB), vCPUs throttled 20%"


def test_no_job_is_no_progress() -> None:
    assert MigrationProgress.from_job_stats({"type": libvirt.VIR_DOMAIN_JOB_NONE}) is None


def reading(left_mib: int, memory_pass: int = 0, total_mib: int = 1000) -> MigrationProgress:
    total, left = total_mib << 20, left_mib << 20
    return MigrationProgress(0.0, total, total - left, left, 0, 0, memory_pass, 0)


def test_data_left_that_shrinks_is_progress() -> None:
    watch = StallWatch(started=0.0)
    for second, left in enumerate([900, 700, 400, 100]):
        watch.update(reading(left), now=float(second))

    assert watch.stalled_for(now=3.0) == 0.0


def test_memory_starting_after_the_disks_is_no_stall() -> None:
    # the disks are copied (nothing left of them), then memory: more is left than before
    watch = StallWatch(started=0.0)
    watch.update(reading(0, memory_pass=0), now=5.0)
    watch.update(reading(300, memory_pass=1, total_mib=1300), now=6.0)
    watch.update(reading(200, memory_pass=2, total_mib=1300), now=7.0)

    assert watch.stalled_for(now=7.0) == 0.0


def test_memory_passes_leaving_as_much_each_time_are_a_stall() -> None:
    watch = StallWatch(started=0.0)
    watch.update(reading(300, memory_pass=1), now=1.0)
    for memory_pass in range(2, 10):
        watch.update(reading(300, memory_pass=memory_pass), now=float(memory_pass))

    assert watch.stalled_for(now=9.0) == 8.0
    assert watch.describe() == "300 MiB left"


def test_preparing_the_destination_counts_from_the_start() -> None:
    watch = StallWatch(started=0.0)
    watch.update(reading(0, total_mib=0), now=4.0)

    assert watch.stalled_for(now=4.0) == 4.0


def test_a_migration_libvirt_refuses_is_migration_failed_in_its_words(
    domain: libvirt.virDomain,
) -> None:
    # given a driver that cannot migrate
    migration = LiveMigration(domain, MigrationRequest("qemu+tcp://hv2/system"))
    # when the domain is migrated
    with pytest.raises(MigrationFailed) as failed:
        migration.run(poll_s=0.01)
    # then the error is typed, carries libvirt's reason and code, and the domain runs on
    assert isinstance(failed.value, MigrationError)
    assert "not supported" in failed.value.reason
    assert failed.value.code is not None
    assert failed.value.domain == "test"
    assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING


def test_aborting_where_no_migration_runs_says_so(domain: libvirt.virDomain) -> None:
    assert abort_outgoing_migration(domain) is False


def test_a_refusal_by_the_destinations_hook_keeps_its_reason_and_not_its_environment() -> None:
    message = (
        "Hook script execution failed: internal error: Child process (LC_ALL=C"
        " PATH=/root/.cargo/bin:/usr/bin HOME=/root /etc/libvirt/hooks/qemu db.default"
        " migrate begin -) unexpected exit status 1: reconciler: Node hv2 refuses VM"
        " default/db (db.default): it needs 2 GiB"
    )
    cleaned = without_hook_command(message)
    assert cleaned == (
        "the destination's QEMU hook refused it: reconciler: Node hv2 refuses VM"
        " default/db (db.default): it needs 2 GiB"
    )
    assert "PATH" not in cleaned and "/root" not in cleaned
    assert without_hook_command("Domain not found") == "Domain not found"
