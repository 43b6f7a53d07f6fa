"""Carrying out the planner's actions through libvirt, one call sequence each."""

from __future__ import annotations

import contextlib
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import singledispatchmethod

import libvirt

from reconciler.engine.operations.execute import Record
from reconciler.libvirt import attach, disk_steps
from reconciler.libvirt.metadata import metadata_xml
from reconciler.libvirt.migrate import MigrationRequest
from reconciler.libvirt.migrations import Migrations
from reconciler.libvirt.observe import network_facts, state_of
from reconciler.libvirt.operation_record import NotOurDomain, write_record
from reconciler.libvirt.render import render_domain
from reconciler.libvirt.storage import ImageSourceInvalid, ImageSourceMissing, pool_lock
from reconciler.libvirt.storage.pools import create_volume, find_volume
from reconciler.model.actions import (
    AbortMigration,
    Action,
    AttachDevice,
    CarryOutOperation,
    DefineDomain,
    DeleteDiskVolume,
    DeleteImageVolume,
    DeleteSeedVolume,
    DetachDevice,
    EnsureDiskVolume,
    EnsureImageVolume,
    EnsureSeedVolume,
    MigrateDomain,
    PauseDomain,
    ReleaseAddress,
    ReserveAddress,
    ResizeDisk,
    RestartDomain,
    SetLiveMetadata,
    SetSharesLive,
    SetVcpusLive,
    StartDomain,
    StopDomain,
    UndefineDomain,
)
from reconciler.model.domain import METADATA_NAMESPACE, METADATA_PREFIX, PowerState
from reconciler.model.errors import DeviceNotReady, RetryableError
from reconciler.model.names import SEED_PREFIX

# Undefining drops a managed-save image and snapshot bookkeeping, never a disk:
# the volumes belong to VirtualDisks, not to the VM (SPEC §10). No NVRAM flag:
# a domain with firmware variables refuses to go, rather than losing them.
# How often a graceful stop repeats its request while the guest has not gone.
SHUTDOWN_REPEAT_SECONDS = 5.0
_UPLOAD_CHUNK = 256 * 1024
log = logging.getLogger(__name__)
_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
)


class Applier:
    """Runs actions; a failed one raises a ReconcileError naming what failed.

    `mutations` counts the calls that change something in libvirt, so tests and
    benchmarks can show that a pass with nothing to do changes nothing.
    """

    def __init__(
        self,
        connection: libvirt.virConnect,
        *,
        poll_seconds: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[str], None] | None = None,
        migrations: Migrations | None = None,
        migration_peers: tuple[str, ...] | None = None,
    ) -> None:
        self._connection = connection
        # The URIs MigrateDomain may go to; None: the planner's word is taken (tests).
        self.migration_peers = migration_peers
        self._poll = poll_seconds
        self._clock = clock
        self._sleep = sleep
        # Where a long step (an image upload) says how far it is; the log by default.
        self._progress = progress or log.info
        # Live migrations outlast a pass in the daemon; by default (one-shot) each is
        # carried out to its end before run() returns.
        self.migrations = migrations or Migrations(
            connection, blocking=True, progress=self._progress
        )
        self.mutations = 0

    def run(self, action: Action) -> None:
        """Carry out one action. Raises ApplyError (libvirt or this host refused it),
        a StorageError, or DeviceNotReady for an image's file (the VM waits)."""
        try:
            self._run(action)
        except libvirt.libvirtError as error:
            raise ApplyError(str(error.get_error_message() or error)) from error
        except (ImageSourceMissing, ImageSourceInvalid) as error:
            # The image's file, not the host: the VM waits (BlockDevicesReady False).
            raise DeviceNotReady(str(error)) from error

    @singledispatchmethod
    def _run(self, action: Action) -> None:
        raise ApplyError(f"no way to carry out {type(action).__name__}")

    def _active_pool(self, name: str) -> libvirt.virStoragePool:
        try:
            pool = self._connection.storagePoolLookupByName(name)
        except libvirt.libvirtError as error:
            raise ApplyError(
                f"storage pool {name!r} does not exist; create it"
                " (virsh pool-define-as) or name another one with --storage-pool"
            ) from error
        if not pool.isActive():
            raise ApplyError(f"storage pool {name!r} is not active (virsh pool-start)")
        return pool

    @_run.register
    def _(self, action: EnsureSeedVolume) -> None:
        pool = self._active_pool(action.pool)
        with pool_lock(pool):
            if find_volume(pool, action.volume) is not None:
                return  # named by its content: the one there is the one wanted
            self.mutations += 1
            volume = create_volume(pool, action.volume, len(action.content), "raw")
            try:
                _upload(self._connection, volume, action.content)
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    with contextlib.suppress(libvirt.libvirtError):
                        volume.delete(0)
                    raise
                # libvirt's test driver keeps no volume data at all: the volume stands
                # for the seed there, as every volume of that driver stands for one.
                log.warning(
                    "%s cannot upload volume data; seed %s/%s created without content",
                    self._connection.getURI(),
                    action.pool,
                    action.volume,
                )
            except BaseException:
                # A half-written seed would be taken for a finished one on the next pass.
                with contextlib.suppress(libvirt.libvirtError):
                    volume.delete(0)
                raise

    @_run.register
    def _(self, action: DeleteSeedVolume) -> None:
        if not action.volume.startswith(SEED_PREFIX):
            raise ApplyError(f"{action.volume} is not a seed image; not removed")
        pool = self._active_pool(action.pool)
        with pool_lock(pool):
            volume = find_volume(pool, action.volume)
            if volume is not None:
                self.mutations += 1
                volume.delete(0)

    @_run.register
    def _(self, action: DefineDomain) -> None:
        spec = action.spec
        if not spec.metadata.created:
            # First definition: the moment the VM comes into being on this host.
            created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            spec = replace(spec, metadata=replace(spec.metadata, created=created))
        self.mutations += 1
        self._connection.defineXML(render_domain(spec))

    @_run.register
    def _(self, action: SetLiveMetadata) -> None:
        domain = self._connection.lookupByName(action.domain)
        self.mutations += 1
        domain.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            metadata_xml(action.metadata),
            METADATA_PREFIX,
            METADATA_NAMESPACE,
            libvirt.VIR_DOMAIN_AFFECT_LIVE,
        )

    @_run.register
    def _(self, action: StartDomain) -> None:
        domain = self._connection.lookupByName(action.domain)
        if state_of(domain)[0].active:
            return
        self.mutations += 1
        domain.create()

    @_run.register
    def _(self, action: StopDomain) -> None:
        domain = self._connection.lookupByName(action.domain)
        if action.force:
            self._destroy(domain)
        else:
            self._stop(domain, action.grace_seconds)

    @_run.register
    def _(self, action: PauseDomain) -> None:
        domain = self._connection.lookupByName(action.domain)
        # Only a guest that runs: a shut-off copy stays off, a paused one as it is.
        if state_of(domain)[0] not in (PowerState.RUNNING, PowerState.BLOCKED):
            return
        self.mutations += 1
        domain.suspend()

    @_run.register
    def _(self, action: RestartDomain) -> None:
        domain = self._connection.lookupByName(action.domain)
        self._stop(domain, action.grace_seconds)
        self.mutations += 1
        domain.create()

    @_run.register
    def _(self, action: UndefineDomain) -> None:
        try:
            domain = self._connection.lookupByName(action.domain)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            raise
        self._stop(domain, action.grace_seconds)
        self.mutations += 1
        domain.undefineFlags(_UNDEFINE_FLAGS)

    @_run.register
    def _(self, action: SetVcpusLive) -> None:
        domain = self._connection.lookupByName(action.domain)
        self.mutations += 1
        domain.setVcpusFlags(action.vcpus, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    @_run.register
    def _(self, action: SetSharesLive) -> None:
        domain = self._connection.lookupByName(action.domain)
        self.mutations += 1
        domain.setSchedulerParametersFlags(
            {"cpu_shares": action.shares}, libvirt.VIR_DOMAIN_AFFECT_LIVE
        )

    @_run.register
    def _(self, action: ReserveAddress) -> None:
        network = self._network(action.network)
        facts = network_facts(action.network, bool(network.isActive()), network.XMLDesc(0))
        wanted = (action.mac.lower(), action.ip, action.name)
        if any((r.mac, r.ip, r.name) == wanted for r in facts.reservations):
            return
        for existing in facts.reservations:
            if existing.mac == action.mac.lower() or existing.ip == action.ip:
                self._update_dhcp_host(
                    network, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, existing.mac, existing.ip
                )
        self._update_dhcp_host(
            network,
            libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            action.mac,
            action.ip,
            action.name,
        )

    @_run.register
    def _(self, action: ReleaseAddress) -> None:
        network = self._network(action.network)
        facts = network_facts(action.network, bool(network.isActive()), network.XMLDesc(0))
        if any(r.mac == action.mac.lower() and r.ip == action.ip for r in facts.reservations):
            self._update_dhcp_host(
                network, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, action.mac, action.ip
            )

    def _network(self, name: str) -> libvirt.virNetwork:
        try:
            return self._connection.networkLookupByName(name)
        except libvirt.libvirtError as error:
            raise ApplyError(
                f"network {name!r} does not exist; define it (virsh net-define) or name"
                " another one with --network"
            ) from error

    def _update_dhcp_host(
        self, network: libvirt.virNetwork, command: int, mac: str, ip: str, name: str = ""
    ) -> None:
        """One change to the DHCP hosts, to the running network (dnsmasq rereads its
        hosts file at once) and to its persistent definition alike."""
        host = ET.Element("host", mac=mac, ip=ip)
        if name:
            host.set("name", name)
        flags = 0
        if network.isPersistent():
            flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        if network.isActive():
            flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
        self.mutations += 1
        network.update(
            command,
            libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
            -1,
            ET.tostring(host, encoding="unicode"),
            flags,
        )

    @_run.register
    def _(self, action: EnsureImageVolume) -> None:
        self.mutations += disk_steps.import_image(self._connection, action, self._progress)

    @_run.register
    def _(self, action: EnsureDiskVolume) -> None:
        self.mutations += disk_steps.make_disk(self._connection, action)

    @_run.register
    def _(self, action: ResizeDisk) -> None:
        self.mutations += disk_steps.grow_disk(self._connection, action)

    @_run.register
    def _(self, action: DeleteDiskVolume) -> None:
        self.mutations += disk_steps.remove_disk(self._connection, action)

    @_run.register
    def _(self, action: DeleteImageVolume) -> None:
        self.mutations += disk_steps.remove_image(self._connection, action)

    @_run.register
    def _(self, action: AttachDevice) -> None:
        self.mutations += attach.attach(self._connection, action)

    @_run.register
    def _(self, action: DetachDevice) -> None:
        self.mutations += attach.detach(self._connection, action)

    @_run.register
    def _(self, action: CarryOutOperation) -> None:
        domain = self._connection.lookupByName(action.domain)
        if not action.step:
            self._record(domain, action, Record(action.outcome))
            return
        # Recorded as started before the step and as completed right after it: a daemon
        # killed in between never begins the step again; the next pass sees the record
        # and finishes it instead (engine/operations.py). A step that fails stays started.
        self._record(domain, action, Record.STARTED)
        if action.step in ("stop", "restart"):
            if action.force:
                self._destroy(domain)
            else:
                self._stop(domain, action.grace_seconds)
        if action.step in ("start", "restart") and not state_of(domain)[0].active:
            self.mutations += 1
            domain.create()
        self._record(domain, action, Record.COMPLETED)

    @_run.register
    def _(self, action: MigrateDomain) -> None:
        if self.migration_peers is not None and action.target_uri not in self.migration_peers:
            # The planner refuses such an operation; a runner never sends a guest out
            # to a URI its host's configuration does not list, whoever asks.
            raise ApplyError(f"{action.target_uri} is not one of this host's migrationPeers")
        domain = self._connection.lookupByName(action.domain)
        # Recorded first: the record travels with the domain, and a daemon killed while
        # libvirt migrates finds it on whichever host the guest is then.
        self._record(domain, action, Record.STARTED)
        request = MigrationRequest(
            action.target_uri,
            action.storage,
            action.auto_converge,
            time_limit_s=0,  # the platform's 800 s per GiB of what it moves
        )
        self.mutations += 1
        self.migrations.start(action.domain, action.operation, action.target_node, request)

    @_run.register
    def _(self, action: AbortMigration) -> None:
        if self.migrations.cancel(action.domain):
            self.mutations += 1

    def _record(
        self,
        domain: libvirt.virDomain,
        action: CarryOutOperation | MigrateDomain,
        record: Record,
    ) -> None:
        try:
            if isinstance(action, CarryOutOperation):
                flag, target = action.stopped_manually, action.target
            else:
                flag, target = None, action.target_node
            self.mutations += write_record(domain, action.operation, record, flag, target)
        except NotOurDomain as error:
            raise ApplyError(str(error)) from error

    def _stop(self, domain: libvirt.virDomain, grace_seconds: int) -> None:
        """Ask the guest to shut down (agent or ACPI); force it off after the grace period."""
        if not state_of(domain)[0].active:
            return
        self.mutations += 1
        self._ask_shutdown(domain)
        deadline = self._clock() + grace_seconds
        asked = self._clock()
        while self._clock() < deadline:
            if not state_of(domain)[0].active:
                return
            if self._clock() - asked >= SHUTDOWN_REPEAT_SECONDS:
                # A guest still booting drops the ACPI event and has no agent yet:
                # ask again, as an operator pressing the button twice would.
                with contextlib.suppress(libvirt.libvirtError):
                    self._ask_shutdown(domain)
                asked = self._clock()
            self._sleep(self._poll)
        if state_of(domain)[0].active:
            self._destroy(domain)

    def _ask_shutdown(self, domain: libvirt.virDomain) -> None:
        try:
            domain.shutdown()
        except libvirt.libvirtError as error:
            if not state_of(domain)[0].active:
                return
            if error.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise

    def _destroy(self, domain: libvirt.virDomain) -> None:
        if state_of(domain)[0] is PowerState.SHUTOFF:
            return
        self.mutations += 1
        domain.destroy()


def _upload(connection: libvirt.virConnect, volume: libvirt.virStorageVol, data: bytes) -> None:
    stream = connection.newStream(0)
    try:
        volume.upload(stream, 0, len(data), 0)
        view = memoryview(data)
        while view:
            sent = stream.send(bytes(view[:_UPLOAD_CHUNK]))
            if sent <= 0:
                raise ApplyError(f"libvirt took no more data for {volume.name()}")
            view = view[sent:]
        stream.finish()
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise


class ApplyError(RetryableError):
    """An action libvirt or this host refused, with the reason an operator needs; the
    next pass tries it again."""
