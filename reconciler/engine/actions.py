"""What the planner asks the applier to do, one libvirt-level step each.

Actions are values: the plan can be printed, compared in tests and executed
later. Each names the object it serves, so one failed object never blocks the
others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.api import ObjectId
from reconciler.engine.domain import DomainMetadata, DomainSpec


@dataclass(frozen=True)
class Action:
    owner: ObjectId

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class EnsureVolume(Action):
    """Create a blank volume if it does not exist; never resizes or deletes."""

    pool: str
    volume: str
    capacity_bytes: int
    format: str = "qcow2"

    def describe(self) -> str:
        return f"create volume {self.pool}/{self.volume} ({self.capacity_bytes} bytes)"


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
    data (a VirtualDisk's volume is never removed by a pass)."""

    pool: str
    volume: str

    def describe(self) -> str:
        return f"remove the old seed {self.pool}/{self.volume}"
