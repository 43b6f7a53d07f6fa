"""What a libvirt domain should be and what one is, as plain values.

The planner builds `DomainSpec`s and compares `DomainFacts`; `reconciler.libvirt`
renders the former to XML and reads the latter out of XML. Nothing here talks
to libvirt, so the planner stays a pure function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from reconciler.model.guest import GuestAgent
from reconciler.model.xmlns import METADATA_NAMESPACE as METADATA_NAMESPACE
from reconciler.model.xmlns import METADATA_PREFIX as METADATA_PREFIX


class PowerState(StrEnum):
    """libvirt's domain states (virDomainState), by name."""

    NOSTATE = "nostate"
    RUNNING = "running"
    BLOCKED = "blocked"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"  # shutting down
    SHUTOFF = "shutoff"
    CRASHED = "crashed"
    PMSUSPENDED = "pmsuspended"

    @property
    def active(self) -> bool:
        return self not in (PowerState.SHUTOFF, PowerState.CRASHED, PowerState.NOSTATE)


@dataclass(frozen=True)
class DomainMetadata:
    """The project's own `<metadata>` element: everything the daemon must remember.

    The live definition's copy describes the running instance (the spec it was
    started with, plus changes applied live); the persistent definition's copy
    describes the next boot. The daemon keeps no other state.
    """

    kind: str
    namespace: str
    name: str
    revision: str = ""
    # Digest of every input the domain definition was rendered from.
    digest: str = ""
    # The VM spec as applied (JSON of the manifest's spec, defaults included):
    # the baseline of restartAwaitingChanges.
    spec: dict[str, Any] = field(default_factory=dict)
    # Run-policy bookkeeping (dvp-api.md §9): a Stop by the user keeps an
    # AlwaysOnUnlessStoppedManually VM off; the last runPolicy seen decides
    # whether switching away from AlwaysOff boots it.
    stopped_manually: bool = False
    last_run_policy: str = ""
    # Operations already carried out, by namespace/name, so each runs once.
    completed_operations: tuple[str, ...] = ()
    # When the domain was first defined (UTC, RFC 3339): the VM's creation time.
    created: str = ""

    def spec_json(self) -> str:
        return json.dumps(self.spec, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class DiskDevice:
    target: str  # vda, sda, hdc ...
    bus: Literal["virtio", "scsi", "sata", "ide"]
    device: Literal["disk", "cdrom"]
    # A volume of a storage pool, or a plain file path (images given by path).
    pool: str | None = None
    volume: str | None = None
    path: str | None = None
    format: Literal["qcow2", "raw"] = "qcow2"
    readonly: bool = False
    boot_order: int | None = None
    # A libvirt user alias (`ua-vmbda-NAME`) on the disks hot-plugged for an attachment,
    # so the running instance tells them from its own (storage.ATTACHMENT_ALIAS).
    alias: str | None = None

    @property
    def source(self) -> str:
        return f"{self.pool}/{self.volume}" if self.volume else (self.path or "")


@dataclass(frozen=True)
class Nic:
    mac: str
    network: str
    model: Literal["virtio", "e1000", "rtl8139"] = "virtio"


@dataclass(frozen=True)
class KernelBoot:
    kernel: str
    initrd: str | None = None
    cmdline: str | None = None


@dataclass(frozen=True)
class DomainFacts:
    """The parts of a definition the reconciler manages and compares.

    Built from a `DomainSpec` (what we would define) or read from libvirt's XML
    (what is defined or running); equal facts mean nothing to change.
    """

    vcpus: int
    max_vcpus: int
    sockets: int
    cores_per_socket: int
    memory_kib: int
    cpu_mode: str
    shares: int | None
    disks: tuple[tuple[str, str, str], ...]  # (target, source, device)
    nics: tuple[tuple[str, str], ...]  # (mac, network)
    # (alias, target, source) of the disks hot-plugged for attachments. Not compared:
    # the disks above already say what is attached, and libvirt's test driver drops aliases.
    attached: tuple[tuple[str, str, str], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class DomainSpec:
    name: str
    uuid: str
    domain_type: Literal["qemu", "kvm"]
    machine: str
    vcpus: int
    sockets: int
    # The hot-plug ceiling: the domain has room for this many cores per socket.
    max_cores_per_socket: int
    cpu_mode: Literal["host-model", "host-passthrough", "custom"]
    cpu_model: str | None
    cpu_features: tuple[str, ...]
    shares: int
    memory_kib: int
    disks: tuple[DiskDevice, ...]
    nic: Nic | None
    kernel_boot: KernelBoot | None
    metadata: DomainMetadata
    title: str = ""

    @property
    def max_vcpus(self) -> int:
        return self.sockets * self.max_cores_per_socket

    def facts(self) -> DomainFacts:
        return DomainFacts(
            vcpus=self.vcpus,
            max_vcpus=self.max_vcpus,
            sockets=self.sockets,
            cores_per_socket=self.max_cores_per_socket,
            memory_kib=self.memory_kib,
            cpu_mode=self.cpu_mode,
            shares=self.shares,
            disks=tuple((d.target, d.source, d.device) for d in self.disks),
            nics=((self.nic.mac, self.nic.network),) if self.nic else (),
            attached=tuple((d.alias, d.target, d.source) for d in self.disks if d.alias),
        )


@dataclass(frozen=True)
class DefinitionView:
    """One definition of a domain (live or persistent) as observed."""

    facts: DomainFacts
    metadata: DomainMetadata | None
    # libvirt's state of the guest-agent channel in a live definition: "connected" once
    # qemu-ga opened it, "disconnected", or "" where the driver does not say (test://).
    agent_channel: str = ""


@dataclass(frozen=True)
class MigrationJob:
    """An outgoing live migration libvirt runs for a domain, as its job statistics say."""

    percent: int
    progress: str  # e.g. "copying disks: 23% (60 of 256 MiB)"


@dataclass(frozen=True)
class ObservedDomain:
    name: str
    uuid: str
    state: PowerState
    reason: str  # libvirt's state reason, e.g. "shutdown", "destroyed", "crashed", "booted"
    persistent: bool
    config: DefinitionView  # the next-boot (persistent) definition
    live: DefinitionView | None  # the running instance, when active
    # The running instance's guest agent; None when the domain is not running.
    agent: GuestAgent | None = None
    # The live migration leaving this host; None when none runs.
    migration: MigrationJob | None = None

    @property
    def owner(self) -> tuple[str, str, str] | None:
        meta = self.config.metadata or (self.live.metadata if self.live else None)
        return (meta.kind, meta.namespace, meta.name) if meta else None


@dataclass(frozen=True)
class VolumeFacts:
    pool: str
    name: str
    capacity_bytes: int
    path: str
