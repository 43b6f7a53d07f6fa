"""Live migration of one running domain to another host, peer to peer, by libvirt.

The source host's libvirtd opens the connection to the destination's itself
(`VIR_MIGRATE_PEER2PEER`), so `MigrationRequest.destination_uri` is the destination as
the *source libvirtd* reaches it (a Node's `spec.libvirtUri`, `qemu+tls://hv2/system`)
and this process needs no connection to the destination. The destination keeps the
domain defined (`PERSIST_DEST`, with its `<metadata>`), the source forgets it
(`UNDEFINE_SOURCE`) once the guest runs there.

`migrateToURI3` blocks until the migration ends, so `LiveMigration.run` calls it on a
worker thread and watches it from the calling one: it reports progress from the job's
statistics, and aborts the job (`abortJob`) when `cancel()` is called from any thread,
when the time limit passes, or when the remaining data stopped shrinking. libvirt keeps
an aborted migration's guest running on the source. Every way a migration can end
without the guest on the destination is an exception of `MigrationError`'s family.

libvirt 9.0 reports auto-converge only through its throttle (`auto_converge_throttle`
in the job statistics), and only once QEMU actually slows the vCPUs: a guest that
converges on its own never shows it.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import libvirt

# The planner decides the storage mode from the configuration (storagePoolShared).
from reconciler.model.migration import StorageMode as StorageMode

# KubeVirt's defaults, which the platform keeps (dvp-api.md §10): a migration may take
# 800 s per GiB of data to move, and is abandoned when the data left to move has not
# shrunk for 150 s.
COMPLETION_S_PER_GIB = 800.0
PROGRESS_TIMEOUT_S = 150.0
POLL_S = 0.5
_GIB = 1 << 30
_MIB = 1 << 20

_ALWAYS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)


@dataclass(frozen=True)
class MigrationRequest:
    destination_uri: str
    storage: StorageMode = StorageMode.COPY
    auto_converge: bool = False
    # Abort when the migration has not completed within this time...
    time_limit_s: float = COMPLETION_S_PER_GIB
    # ...or when the data left to move has not shrunk for this long.
    progress_timeout_s: float = PROGRESS_TIMEOUT_S


def completion_limit_s(data_bytes: int) -> float:
    """The time limit for moving `data_bytes` (memory, plus the disks when copied)."""
    return COMPLETION_S_PER_GIB * max(1, math.ceil(data_bytes / _GIB))


def migration_flags(request: MigrationRequest) -> int:
    """libvirt's flags for the request: `NON_SHARED_DISK` only when disks are copied, so a
    pool the configuration marks shared (`storagePoolShared`) moves memory alone and
    libvirt creates no volume on the destination."""
    flags: int = _ALWAYS
    if request.storage is StorageMode.COPY:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
    elif request.storage is StorageMode.SHARED_DIRECTORY:
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    if request.auto_converge:
        flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
    return flags


# ---------------------------------------------------------------- progress


@dataclass(frozen=True)
class MigrationProgress:
    """One reading of the migration job's statistics (`virDomainGetJobStats`)."""

    elapsed_s: float
    data_total: int
    data_processed: int
    data_remaining: int
    disk_total: int
    disk_processed: int
    memory_iteration: int  # 0 while disks are copied, then the pass over memory
    throttle_percent: int  # the vCPU throttle auto-converge applies now; 0 when none

    @classmethod
    def from_job_stats(cls, stats: Mapping[str, object]) -> MigrationProgress | None:
        """The reading, or None when no job runs (stats of type VIR_DOMAIN_JOB_NONE)."""
        if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
            return None

        def number(key: str) -> int:
            value = stats.get(key, 0)
            return value if isinstance(value, int) else 0

        return cls(
            elapsed_s=number("time_elapsed") / 1000,
            data_total=number("data_total"),
            data_processed=number("data_processed"),
            data_remaining=number("data_remaining"),
            disk_total=number("disk_total"),
            disk_processed=number("disk_processed"),
            memory_iteration=number("memory_iteration"),
            throttle_percent=number("auto_converge_throttle"),
        )

    @property
    def percent(self) -> int:
        """Of the data known so far; libvirt learns the memory's size after the disks'."""
        if self.data_total <= 0:
            return 0
        return min(100, self.data_processed * 100 // self.data_total)

    def line(self) -> str:
        """`memory pass 2: 91% (120 of 132 MiB), vCPUs throttled 20%`, for a report."""
        if self.data_total <= 0:
            stage = "preparing the destination"
        elif self.memory_iteration == 0:
            stage = "copying disks"
        else:
            stage = f"memory pass {self.memory_iteration}"
        text = f"{stage}: {self.percent}%"
        if self.data_total > 0:
            text += f" ({self.data_processed // _MIB} of {self.data_total // _MIB} MiB)"
        if self.throttle_percent:
            text += f", vCPUs throttled {self.throttle_percent}%"
        return text


class StallWatch:
    """How long the data left to move has not shrunk, within the current stage.

    Copying the disks and moving memory are two stages: when memory starts, the data
    left jumps up from the disks' last zero, which is no stall. Within the memory stage
    a new pass is no progress by itself: a guest dirtying memory as fast as it is sent
    goes pass after pass with as much left each time, which is what not converging is.
    """

    def __init__(self, started: float) -> None:
        self._since = started
        self._least: int | None = None
        self._in_memory = False

    def update(self, reading: MigrationProgress, now: float) -> None:
        if reading.data_total <= 0:
            return  # still preparing the destination: nothing known to shrink yet
        in_memory = reading.memory_iteration > 0
        if in_memory != self._in_memory:
            self._in_memory, self._least, self._since = in_memory, None, now
        if self._least is None or reading.data_remaining < self._least:
            self._least, self._since = reading.data_remaining, now

    def stalled_for(self, now: float) -> float:
        return now - self._since

    def describe(self) -> str:
        return "the data left" if self._least is None else f"{self._least // _MIB} MiB left"


# ---------------------------------------------------------------- outcomes


class MigrationError(Exception):
    """A migration that did not move the guest; libvirt left it running on the source."""

    def __init__(self, domain: str, reason: str) -> None:
        super().__init__(f"live migration of {domain}: {reason}")
        self.domain = domain
        self.reason = reason


class MigrationFailed(MigrationError):
    """libvirt refused or failed the migration; `reason` is libvirt's message."""

    def __init__(self, domain: str, reason: str, code: int | None = None) -> None:
        super().__init__(domain, reason)
        self.code = code  # libvirt's VIR_ERR_*, when it came from libvirt


class MigrationTimedOut(MigrationError):
    """Aborted for taking too long, or for not converging; `progress` is the last reading."""

    def __init__(self, domain: str, reason: str, progress: MigrationProgress | None) -> None:
        super().__init__(domain, reason)
        self.progress = progress


class MigrationCancelled(MigrationError):
    """Aborted on request: `LiveMigration.cancel`, or an abortJob from elsewhere."""


@dataclass(frozen=True)
class MigrationResult:
    domain: str
    elapsed_s: float
    last_progress: MigrationProgress | None  # the source's last reading before the end


# ---------------------------------------------------------------- the migration


class LiveMigration:
    """One migration of `domain` (on the source's connection); `run` once, `cancel` any time."""

    def __init__(
        self,
        domain: libvirt.virDomain,
        request: MigrationRequest,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.domain = domain
        self.request = request
        self._clock = clock
        self._name: str = domain.name()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._abort_reason: str | None = None  # why we aborted, once we did
        self._error: libvirt.libvirtError | None = None

    def cancel(self) -> None:
        """Abort the migration if it still runs; `run` then raises MigrationCancelled."""
        self._cancel.set()
        self._abort("cancelled")

    def progress(self) -> MigrationProgress | None:
        """The job's statistics now; None when no job runs (or the domain is gone)."""
        try:
            return MigrationProgress.from_job_stats(self.domain.jobStats())
        except libvirt.libvirtError:
            return None

    def run(
        self,
        on_progress: Callable[[MigrationProgress], None] = lambda _progress: None,
        poll_s: float = POLL_S,
    ) -> MigrationResult:
        """Migrate; returns once the guest runs on the destination, raises otherwise."""
        started = self._clock()
        worker = threading.Thread(target=self._migrate, name=f"migrate-{self._name}", daemon=True)
        worker.start()
        last: MigrationProgress | None = None
        stall = StallWatch(started)
        while True:
            worker.join(poll_s)
            if not worker.is_alive():
                break
            if self._cancel.is_set():
                self._abort("cancelled")  # again: the first try may precede the job
                continue
            now = self._clock()
            reading = self.progress()
            if reading is not None:
                last = reading
                on_progress(reading)
                stall.update(reading, now)
            if now - started > self.request.time_limit_s:
                self._abort(f"did not complete within {self.request.time_limit_s:g} s")
            elif stall.stalled_for(now) > self.request.progress_timeout_s:
                self._abort(
                    f"not converging: {stall.describe()} did not shrink"
                    f" for {self.request.progress_timeout_s:g} s"
                )
        return self._outcome(self._clock() - started, last)

    def _migrate(self) -> None:
        try:
            # The destination keeps the source's next-boot definition, not the running
            # instance's: its metadata records the migration (the destination completes
            # the operation from it), and changes waiting for a restart stay waiting.
            persistent = self.domain.XMLDesc(
                libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_MIGRATABLE
            )
            self.domain.migrateToURI3(
                self.request.destination_uri,
                {libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: persistent},
                migration_flags(self.request),
            )
        except libvirt.libvirtError as error:
            self._error = error

    def _abort(self, reason: str) -> None:
        with self._lock:
            if self._abort_reason is None:
                self._abort_reason = reason
        # Until the job exists, libvirt answers "no job is active"; run() tries again.
        with contextlib.suppress(libvirt.libvirtError):
            self.domain.abortJob()

    def _outcome(self, elapsed_s: float, last: MigrationProgress | None) -> MigrationResult:
        error = self._error
        if error is None:
            # An abort that came too late: the guest runs on the destination all the same.
            return MigrationResult(self._name, elapsed_s, last)
        message = str(error.get_error_message() or error)
        aborted = error.get_error_code() == libvirt.VIR_ERR_OPERATION_ABORTED
        if aborted and self._cancel.is_set():
            raise MigrationCancelled(self._name, "cancelled on request") from error
        if aborted and self._abort_reason is not None:
            raise MigrationTimedOut(self._name, self._abort_reason, last) from error
        if aborted:
            raise MigrationCancelled(self._name, f"aborted by another client: {message}") from error
        raise MigrationFailed(
            self._name, without_hook_command(message), error.get_error_code()
        ) from error


_HOOK_FAILURE = re.compile(
    r"Hook script execution failed: .*?Child process \(.*?\) unexpected exit status \d+: ",
    re.DOTALL,
)


def without_hook_command(message: str) -> str:
    """libvirt's error for a destination hook that refused, without the command line it
    quotes (the destination's environment: PATH, HOME), which would go into Git with
    the operation's report; the hook's own reason stays."""
    return _HOOK_FAILURE.sub("the destination's QEMU hook refused it: ", message, count=1)


def abort_outgoing_migration(domain: libvirt.virDomain) -> bool:
    """Abort the domain's outgoing migration, started by any process (one that died, say).

    Returns whether there was one to abort.
    """
    try:
        stats = domain.jobStats()
    except libvirt.libvirtError:
        return False
    if stats.get("operation") != libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT:
        return False
    try:
        domain.abortJob()
    except libvirt.libvirtError:
        return False  # it ended meanwhile
    return True
