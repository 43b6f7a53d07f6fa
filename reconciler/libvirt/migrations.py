"""The live migrations this process runs: begun by a pass, carried on beside the next ones.

A migration lasts from seconds to many minutes; a pass that waited for it would hold
back every other VM of the host. So a pass starts one here and goes on: while it runs,
libvirt's job shows it (libvirt/observe.py: the VM's phase is Migrating, its operation
InProgress); when it ends, `on_end` asks for the next pass. A migration that succeeds
leaves the domain on the destination with its operation recorded as started, which the
destination completes. One that fails, times out or is cancelled leaves the guest
running here: its operation is recorded as failed in the domain's metadata and the
reason is kept (`failures`) for the operation's report.

The one-shot `reconciler apply` runs them to the end before it returns (`blocking`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

import libvirt

from reconciler.engine.operations.execute import Record
from reconciler.libvirt.migrate import (
    LiveMigration,
    MigrationError,
    MigrationProgress,
    MigrationRequest,
    StorageMode,
    abort_outgoing_migration,
    completion_limit_s,
)
from reconciler.libvirt.moved_volumes import copied_volumes, remove_left_behind, volumes_of
from reconciler.libvirt.operation_record import NotOurDomain, write_record
from reconciler.libvirt.seed_media import eject_seeds, insert_again

log = logging.getLogger(__name__)
# How often a running migration says how far it is in the log.
PROGRESS_EVERY_S = 10.0


class Migrations:
    def __init__(
        self,
        connection: libvirt.virConnect,
        *,
        blocking: bool = False,
        on_end: Callable[[], None] = lambda: None,
        progress: Callable[[str], None] = log.info,
    ) -> None:
        self._connection = connection
        self._blocking = blocking
        self._on_end = on_end
        self._progress = progress
        self._lock = threading.Lock()
        self._running: dict[str, LiveMigration] = {}
        self._failures: dict[str, str] = {}

    def running(self, domain: str) -> bool:
        with self._lock:
            return domain in self._running

    def failures(self) -> Mapping[str, str]:
        """NAMESPACE/NAME of each operation whose migration failed -> why, newest kept."""
        with self._lock:
            return dict(self._failures)

    def start(
        self, domain_name: str, operation: str, target: str, request: MigrationRequest
    ) -> None:
        """Begin migrating `domain_name` (its operation already recorded as started); a
        second call while it runs changes nothing."""
        domain = self._connection.lookupByName(domain_name)
        if request.time_limit_s <= 0:
            request = _with_time_limit(domain, request)
        migration = LiveMigration(domain, request)
        with self._lock:
            if domain_name in self._running:
                return
            self._running[domain_name] = migration
        self._progress(f"live migration of {domain_name} to {target} begins ({operation})")
        if self._blocking:
            self._run(migration, domain, domain_name, operation, target)
            return
        threading.Thread(
            target=self._run,
            args=(migration, domain, domain_name, operation, target),
            name=f"migration-{domain_name}",
            daemon=True,
        ).start()

    def cancel(self, domain_name: str) -> bool:
        """Abort the domain's outgoing migration, whoever began it; whether one ran."""
        with self._lock:
            migration = self._running.get(domain_name)
        if migration is not None:
            migration.cancel()
            return True
        try:
            domain = self._connection.lookupByName(domain_name)
        except libvirt.libvirtError:
            return False
        return abort_outgoing_migration(domain)

    def _run(
        self,
        migration: LiveMigration,
        domain: libvirt.virDomain,
        name: str,
        operation: str,
        target: str,
    ) -> None:
        said = [time.monotonic()]

        def report(progress: MigrationProgress) -> None:
            if time.monotonic() - said[0] >= PROGRESS_EVERY_S:
                said[0] = time.monotonic()
                self._progress(f"live migration of {name} to {target}: {progress.line()}")

        ejected: list[str] = []
        copied: list[tuple[str, str]] = []
        try:
            if migration.request.storage is StorageMode.COPY:
                copied = copied_volumes(domain)
                ejected = eject_seeds(domain)
            result = migration.run(on_progress=report)
        except (MigrationError, libvirt.libvirtError) as error:
            reason = error.reason if isinstance(error, MigrationError) else str(error)
            insert_again(domain, ejected)
            self._failed(domain, name, operation, target, reason)
        except Exception as error:
            insert_again(domain, ejected)
            self._failed(domain, name, operation, target, f"unexpected error: {error}")
        else:
            self._progress(f"{name} runs on {target} now ({result.elapsed_s:.1f} s)")
            remove_left_behind(self._connection, name, [*copied, *volumes_of(ejected)])
        finally:
            with self._lock:
                self._running.pop(name, None)
            self._on_end()

    def _failed(
        self, domain: libvirt.virDomain, name: str, operation: str, target: str, reason: str
    ) -> None:
        log.warning("live migration of %s to %s failed: %s", name, target, reason)
        with self._lock:
            self._failures[operation] = reason
        try:
            write_record(domain, operation, Record.FAILED, None)
        except (libvirt.libvirtError, NotOurDomain) as error:
            # The record stays "started": the next pass sees no migration running and
            # begins it again, which is what a daemon killed mid-way would do too.
            log.warning("cannot record %s as failed on %s: %s", operation, name, error)


def _with_time_limit(domain: libvirt.virDomain, request: MigrationRequest) -> MigrationRequest:
    """The request with the platform's limit for the data it moves (memory, and the
    disks when they are copied)."""
    data = domain.info()[2] * 1024  # maxMem, KiB
    if request.storage is StorageMode.COPY:
        for _domain, stats in domain.connect().domainListGetStats(
            [domain], libvirt.VIR_DOMAIN_STATS_BLOCK
        ):
            count = stats.get("block.count", 0)
            for index in range(count if isinstance(count, int) else 0):
                allocation = stats.get(f"block.{index}.allocation", 0)
                data += allocation if isinstance(allocation, int) else 0
    return MigrationRequest(
        request.destination_uri,
        request.storage,
        request.auto_converge,
        completion_limit_s(data),
        request.progress_timeout_s,
    )
