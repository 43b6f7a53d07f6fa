"""What the planner asks the applier to do, one libvirt-level step each.

Actions are values: the plan can be printed, compared in tests and executed
later. Each names the object it serves, so one failed object never blocks the
others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.api import ObjectId
from reconciler.model.domain import DiskDevice, DomainMetadata, DomainSpec
from reconciler.model.migration import StorageMode


@dataclass(frozen=True)
class Action:
    owner: ObjectId

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class DefineDomain(Action):
    """Define (or redefine) the persistent definition; the running instance is untouched."""

    spec: DomainSpec
    reason: str = ""

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"define domain {self.spec.name}{why}"


@dataclass(frozen=True)
class SetLiveMetadata(Action):
    """Record changes that took effect on the running instance without a restart."""

    domain: str
    metadata: DomainMetadata

    def describe(self) -> str:
        return f"update live metadata of {self.domain}"


@dataclass(frozen=True)
class StartDomain(Action):
    domain: str

    def describe(self) -> str:
        return f"start {self.domain}"


@dataclass(frozen=True)
class StopDomain(Action):
    """Graceful shutdown (guest agent or ACPI), forced off after the grace period."""

    domain: str
    grace_seconds: int
    force: bool = False

    def describe(self) -> str:
        how = "force off" if self.force else f"shut down (grace {self.grace_seconds}s)"
        return f"{how} {self.domain}"


@dataclass(frozen=True)
class RestartDomain(Action):
    """Stop gracefully, then start from the persistent definition."""

    domain: str
    grace_seconds: int

    def describe(self) -> str:
        return f"restart {self.domain} (grace {self.grace_seconds}s)"


@dataclass(frozen=True)
class PauseDomain(Action):
    """Pause a running instance, keeping its memory, definition and disks: a copy of a VM
    another host of the fleet runs (engine/fleet/strays.py). `virsh resume` undoes it."""

    domain: str
    reason: str = ""

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"pause {self.domain}{why}"


@dataclass(frozen=True)
class UndefineDomain(Action):
    """Stop if running, then remove the definition. Its volumes are kept."""

    domain: str
    grace_seconds: int

    def describe(self) -> str:
        return f"shut down and undefine {self.domain} (its disks are kept)"


@dataclass(frozen=True)
class SetVcpusLive(Action):
    """Hot-plug profile: change the running instance's vCPU count within its ceiling."""

    domain: str
    vcpus: int

    def describe(self) -> str:
        return f"set {self.vcpus} vCPUs live on {self.domain}"


@dataclass(frozen=True)
class SetSharesLive(Action):
    """Hot-plug profile: change the running instance's CPU weight."""

    domain: str
    shares: int

    def describe(self) -> str:
        return f"set CPU shares {self.shares} live on {self.domain}"


@dataclass(frozen=True)
class ReserveAddress(Action):
    """A DHCP host reservation (MAC -> IP) on the network, live and persistent; any other
    reservation of the same MAC or address is replaced."""

    network: str
    mac: str
    ip: str
    name: str

    def describe(self) -> str:
        return f"reserve {self.ip} for {self.mac} ({self.name}) on network {self.network}"


@dataclass(frozen=True)
class ReleaseAddress(Action):
    """Remove a DHCP host reservation this project made."""

    network: str
    mac: str
    ip: str

    def describe(self) -> str:
        return f"release {self.ip} of {self.mac} on network {self.network}"


@dataclass(frozen=True)
class EnsureSeedVolume(Action):
    """Upload a provisioning seed image into the pool unless a volume of its name (its
    content) is there already. The content never appears in a description."""

    pool: str
    volume: str
    kind: str
    digest: str
    content: bytes = field(repr=False, compare=False)

    def describe(self) -> str:
        return f"write {self.kind} seed {self.pool}/{self.volume} (payload digest {self.digest})"


@dataclass(frozen=True)
class DeleteSeedVolume(Action):
    """Remove a seed image no definition of the VM uses any more: derived from Git, never
    data (a VirtualDisk's volume goes only with its manifest: DeleteDiskVolume)."""

    pool: str
    volume: str

    def describe(self) -> str:
        return f"remove the old seed {self.pool}/{self.volume}"


@dataclass(frozen=True)
class EnsureImageVolume(Action):
    """Import an image file into the pool unless it was imported before (SPEC §5): an
    upload under the pool's lock; an imported image is never read or copied again."""

    pool: str
    image: ObjectId
    source: str
    # An earlier VM of the same pass imports it: this one only makes sure of it.
    shared: bool = False
    # The host's imageDirectories: the file is read only inside them, checked again
    # when it is opened (a symlink may have been swapped since the plan).
    directories: tuple[str, ...] = ()

    def describe(self) -> str:
        what = f"{self.image.kind} {self.image.name}"
        if self.shared:
            return f"use {what}, imported above"
        return f"import {what} from {self.source} into pool {self.pool}"


@dataclass(frozen=True)
class EnsureDiskVolume(Action):
    """Create a VirtualDisk's volume if it does not exist: blank, or a copy of its imported
    image grown to the size. An existing volume is never made again or overwritten."""

    pool: str
    disk: ObjectId
    volume: str
    # None: as large as the image it is copied from.
    capacity_bytes: int | None
    image: ObjectId | None = None
    image_source: str = ""

    def describe(self) -> str:
        size = f"{self.capacity_bytes} bytes" if self.capacity_bytes else "the image's size"
        origin = f" from {self.image.kind} {self.image.name}" if self.image else ""
        return f"create volume {self.pool}/{self.volume} ({size}){origin}"


@dataclass(frozen=True)
class ResizeDisk(Action):
    """Grow a disk volume (through the running domain that uses it, if any); never shrinks."""

    pool: str
    volume: str
    capacity_bytes: int

    def describe(self) -> str:
        return f"grow volume {self.pool}/{self.volume} to {self.capacity_bytes} bytes"


@dataclass(frozen=True)
class DeleteDiskVolume(Action):
    """Delete the volume of a VirtualDisk whose manifest was deleted from a whole revision
    (SPEC §10); refused for a protected volume or one a domain still uses."""

    pool: str
    volume: str
    protected: bool = False

    def describe(self) -> str:
        return f"delete volume {self.pool}/{self.volume} (its VirtualDisk manifest was deleted)"


@dataclass(frozen=True)
class DeleteImageVolume(Action):
    """Delete an image volume no image of a whole revision names any more (its file or its
    manifest changed, engine/image_volumes.py); refused for one a domain still uses."""

    pool: str
    volume: str

    def describe(self) -> str:
        return f"delete image volume {self.pool}/{self.volume} (no image of the revision uses it)"


@dataclass(frozen=True)
class AttachDevice(Action):
    """Hot-plug a VirtualMachineBlockDeviceAttachment's disk into the running domain."""

    domain: str
    attachment: str
    disk: DiskDevice

    def describe(self) -> str:
        return (
            f"hot-plug {self.disk.source} into {self.domain} as {self.disk.target}"
            f" (vmbda {self.attachment})"
        )


@dataclass(frozen=True)
class DetachDevice(Action):
    """Unplug a hot-plugged disk from the running domain: its attachment is gone."""

    domain: str
    attachment: str
    alias: str
    source: str

    def describe(self) -> str:
        return f"unplug {self.source} from {self.domain} (vmbda {self.attachment} is gone)"


@dataclass(frozen=True)
class CarryOutOperation(Action):
    """A VirtualMachineOperation's power step (`start`, `stop`, `restart`; "" for none),
    recorded in the domain's next-boot metadata before and after it, so that it runs once
    (engine/operations.py). Without a step only the outcome is recorded."""

    domain: str
    operation: str  # NAMESPACE/NAME
    step: str = ""
    force: bool = False
    grace_seconds: int = 60
    # The run-policy flag the operation sets (Stop) or clears (Start, Restart).
    stopped_manually: bool | None = None
    outcome: str = "completed"  # of a record without a step: completed, failed or started
    # The node a migration recorded as started goes to (Evict, Migrate).
    target: str = ""

    def describe(self) -> str:
        vmop = f"vmop {self.operation}"
        if not self.step and self.target:
            return f"record {vmop} on {self.domain}: migrating to {self.target} next"
        if not self.step:
            return f"record {vmop} as {self.outcome} on {self.domain}"
        if self.step == "start":
            return f"start {self.domain} ({vmop})"
        how = "force off" if self.force else f"shut down (grace {self.grace_seconds}s)"
        then = ", then start" if self.step == "restart" else ""
        return f"{how}{then} {self.domain} ({vmop})"


@dataclass(frozen=True)
class MigrateDomain(Action):
    """A VirtualMachineOperation's live migration (Evict, Migrate) of a running domain to
    another host of the fleet, recorded as started in the domain's next-boot metadata
    first. The record travels with the domain: the destination finds it there and reports
    the operation Completed; a migration that fails records it failed on the source."""

    domain: str
    operation: str  # NAMESPACE/NAME
    target_node: str
    target_uri: str  # the destination as the source's libvirtd reaches it (Node libvirtUri)
    # Disks copied, or memory only from a pool the configuration marks shared.
    storage: StorageMode = StorageMode.COPY
    auto_converge: bool = False

    def describe(self) -> str:
        converge = ", auto-converge" if self.auto_converge else ""
        return (
            f"live-migrate {self.domain} to {self.target_node} ({self.storage} storage"
            f"{converge}; vmop {self.operation})"
        )


@dataclass(frozen=True)
class AbortMigration(Action):
    """Cancel a domain's outgoing live migration: its operation was deleted while it ran,
    as deleting a vmop cancels it on the platform. The guest keeps running here."""

    domain: str
    operation: str  # NAMESPACE/NAME
    reason: str = ""

    def describe(self) -> str:
        return f"cancel the live migration of {self.domain} (vmop {self.operation}: {self.reason})"


# Actions on the storage pool's volumes and on the network's DHCP reservations: they
# change no domain, and a pass reads volumes and the network again on their own.
VOLUME_ACTIONS = (
    DeleteImageVolume,
    EnsureImageVolume,
    EnsureDiskVolume,
    ResizeDisk,
    DeleteDiskVolume,
    EnsureSeedVolume,
    DeleteSeedVolume,
)
ADDRESS_ACTIONS = (ReserveAddress, ReleaseAddress)


def touched_domain(action: Action) -> str | None:
    """The name of the domain an action changes; None when it names none (a volume or
    address action, or one of unknown reach)."""
    if isinstance(action, DefineDomain):
        return action.spec.name
    name = getattr(action, "domain", None)
    return name if isinstance(name, str) else None
