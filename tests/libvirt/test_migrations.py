"""Live migrations begun by a pass (libvirt/migrations.py), on libvirt's test driver: the
driver cannot migrate, so these show what happens when a migration fails (the fleet lab's
end-to-end tests show the ones that succeed, tests/e2e/test_fleet_*.py)."""

from __future__ import annotations

import threading

import libvirt
import pytest

from reconciler.api import ObjectId
from reconciler.engine.operations.execute import Record, records
from reconciler.libvirt.apply import Applier, ApplyError
from reconciler.libvirt.facts import parse_definition
from reconciler.libvirt.migrate import MigrationRequest, migration_flags
from reconciler.libvirt.migrations import Migrations
from reconciler.libvirt.observe import Observer
from reconciler.libvirt.operation_record import write_record
from reconciler.model.actions import AbortMigration, MigrateDomain
from reconciler.model.migration import StorageMode
from tests.hosts import Host
from tests.libvirt.test_operations import running_vm

OPERATION = "default/evict-linux-vm-1718000000"
VM = ObjectId("VirtualMachine", "default", "linux-vm")


def recorded(host: Host) -> dict[str, Record]:
    meta = parse_definition(host.domain().XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).metadata
    return records(meta)


def migrate(host: Host, migrations: Migrations) -> None:
    applier = Applier(host.connection, migrations=migrations)
    applier.run(MigrateDomain(VM, host.domain().name(), OPERATION, "hv2", "qemu+tcp://hv2/system"))


def test_a_failed_migration_leaves_the_guest_running_here_and_records_why(host: Host) -> None:
    # given a running VM
    started = running_vm(host)
    # when a one-shot pass migrates it and libvirt refuses
    migrations = Migrations(host.connection, blocking=True, progress=lambda _line: None)
    migrate(host, migrations)
    # then the guest runs here as the same instance, its operation recorded failed with why
    assert host.domain().isActive() and int(host.domain().ID()) == started
    assert recorded(host)[OPERATION] is Record.FAILED
    assert migrations.failures()[OPERATION]
    assert not migrations.running(host.domain().name())


def test_a_daemon_pass_goes_on_while_its_migration_runs_and_hears_when_it_ends(
    host: Host,
) -> None:
    # given a daemon's migrations that call back when one ends
    running_vm(host)
    ended = threading.Event()
    migrations = Migrations(host.connection, on_end=ended.set, progress=lambda _line: None)
    # when a pass begins one
    migrate(host, migrations)
    # then the pass returned at once and the end is heard
    assert ended.wait(10)
    assert recorded(host)[OPERATION] is Record.FAILED


def test_cancelling_when_no_migration_runs_changes_nothing(host: Host) -> None:
    running_vm(host)
    applier = Applier(host.connection)
    applier.run(AbortMigration(VM, host.domain().name(), OPERATION, "deleted"))
    assert applier.mutations == 0 and host.domain().isActive()


def test_a_runner_never_sends_a_guest_to_a_uri_its_host_does_not_list(host: Host) -> None:
    # given a running VM and a runner whose host lists no migration peer
    running_vm(host)
    applier = Applier(host.connection, migration_peers=())
    # when asked to migrate it anyway, it refuses before touching the domain
    with pytest.raises(ApplyError, match="migrationPeers"):
        applier.run(
            MigrateDomain(VM, host.domain().name(), OPERATION, "hv2", "qemu+tcp://hv2/system")
        )
    assert OPERATION not in recorded(host) and host.domain().isActive()


class StartedRequests(Migrations):
    """The migrations a runner begins, kept rather than run: libvirt's test driver cannot
    migrate, and what is asked of libvirt is what these tests look at."""

    def __init__(self, connection: libvirt.virConnect) -> None:
        super().__init__(connection, blocking=True, progress=lambda _line: None)
        self.requests: list[MigrationRequest] = []

    def start(
        self, domain_name: str, operation: str, target: str, request: MigrationRequest
    ) -> None:
        self.requests.append(request)


@pytest.mark.parametrize(
    ("storage", "copies_disks"), [(StorageMode.SHARED, False), (StorageMode.COPY, True)]
)
def test_a_pool_the_hosts_share_migrates_without_copying_disks(
    host: Host, storage: StorageMode, copies_disks: bool
) -> None:
    # given a running VM, and a migration the planner decided from a shared or local pool
    running_vm(host)
    migrations = StartedRequests(host.connection)
    action = MigrateDomain(
        VM, host.domain().name(), OPERATION, "hv2", "qemu+tcp://hv2/system", storage=storage
    )
    # when the runner begins it
    Applier(host.connection, migrations=migrations).run(action)
    # then libvirt is asked to copy the disks only from a pool the hosts do not share
    (request,) = migrations.requests
    copies = bool(migration_flags(request) & libvirt.VIR_MIGRATE_NON_SHARED_DISK)
    assert copies is copies_disks


def test_a_domain_this_process_migrates_is_seen_migrating_even_between_libvirt_jobs(
    host: Host,
) -> None:
    # given a running VM whose Evict is recorded as started (libvirt runs no job for it)
    running_vm(host)
    domain = host.domain()
    write_record(domain, OPERATION, Record.STARTED, None, target="hv2")
    observer = Observer(host.connection)
    # then an observer that knows of no migration sees none: a pass would begin it
    assert observer.observe()[domain.name()].migration is None
    # and one whose runner moves the domain sees it migrating: a pass waits for it
    observer.in_flight = lambda name: name == domain.name()
    assert observer.observe()[domain.name()].migration is not None
