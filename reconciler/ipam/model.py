"""Inputs and outputs of `allocate`: frozen, plain values with no I/O attached.

Every host of a fleet feeds the same values in and must get the same values out,
so nothing here refers to clocks, files or libvirt; `now` is an input.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from reconciler.api.network import IPAddressType
from reconciler.model.conditions import AddressCondition, Condition
from reconciler.model.phases import LeasePhase, VMIPPhase

# dvp-api.md §6.2: the Helm chart hard-codes VIRTUAL_MACHINE_IP_LEASES_RETENTION_DURATION=10m.
RETENTION = timedelta(minutes=10)


@dataclass(frozen=True)
class VMRequest:
    """A VirtualMachine as far as addresses go: `vmip_name` is spec.virtualMachineIPAddressName."""

    namespace: str
    name: str
    vmip_name: str | None = None


@dataclass(frozen=True)
class VMIPRequest:
    """A VirtualMachineIPAddress manifest from Git."""

    namespace: str
    name: str
    type: IPAddressType = IPAddressType.AUTO
    static_ip: str | None = None
    # RETAIN_ANNOTATION: the vmip outlives the VM it was generated for, and a VM
    # without a vmip name adopts it when its generated name is this one.
    retained: bool = False


@dataclass(frozen=True)
class PreviousLease:
    """A lease as the last status report recorded it."""

    address: str
    namespace: str
    vmip_name: str | None
    phase: LeasePhase = LeasePhase.BOUND
    released_at: datetime | None = None

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> PreviousLease:
        """The inverse of `Lease.as_dict` (what status reports hold)."""
        ref = document.get("virtualMachineIPAddressRef") or {}
        released = document.get("releasedAt")
        return cls(
            address=str(document["address"]),
            namespace=str(ref.get("namespace", "")),
            vmip_name=ref.get("name") or None,
            phase=LeasePhase(document.get("phase", LeasePhase.BOUND)),
            released_at=datetime.fromisoformat(released) if released else None,
        )


@dataclass(frozen=True)
class AllocationRequest:
    """Everything `allocate` looks at. `now` must be the same on every host (e.g. the time of
    the commit being reconciled), and it and every `released_at` must all be aware (or all
    naive) datetimes, since they are subtracted from each other."""

    pool: tuple[ipaddress.IPv4Network, ...]
    vms: tuple[VMRequest, ...] = ()
    vmips: tuple[VMIPRequest, ...] = ()
    leases: tuple[PreviousLease, ...] = ()
    now: datetime = field(default_factory=lambda: datetime(1970, 1, 1))
    # Addresses inside the pool nobody may lease, e.g. the libvirt network's gateway.
    reserved: tuple[ipaddress.IPv4Address, ...] = ()
    retention: timedelta = RETENTION


@dataclass(frozen=True)
class Lease:
    """A VirtualMachineIPAddressLease: cluster-wide, named after its address."""

    name: str
    address: str
    namespace: str
    vmip_name: str | None
    phase: LeasePhase
    released_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "address": self.address,
            "virtualMachineIPAddressRef": {"namespace": self.namespace},
            "phase": str(self.phase),
        }
        if self.vmip_name:
            document["virtualMachineIPAddressRef"]["name"] = self.vmip_name
        if self.released_at is not None:
            document["releasedAt"] = self.released_at.isoformat()
        return document


@dataclass(frozen=True)
class VMIPStatus:
    namespace: str
    name: str
    type: IPAddressType
    address: str | None
    phase: VMIPPhase
    conditions: tuple[Condition, ...]
    # The VM the vmip is attached to (or, for a generated one, the VM it was made for).
    virtual_machine: str | None
    generated: bool = False

    def condition(self, kind: AddressCondition) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def as_dict(self, since: str) -> dict[str, Any]:
        """The `status:` document; `since` stands in for every lastTransitionTime."""
        document: dict[str, Any] = {"phase": str(self.phase)}
        if self.address:
            document["address"] = self.address
        if self.virtual_machine:
            document["virtualMachineName"] = self.virtual_machine
        document["conditions"] = [c.as_dict(since) for c in self.conditions]
        return document


@dataclass(frozen=True)
class VMAddress:
    namespace: str
    name: str
    vmip_name: str
    address: str | None
    # Why the VM has no address yet; empty once it has one.
    message: str = ""


@dataclass(frozen=True)
class Allocation:
    vmips: tuple[VMIPStatus, ...]
    vms: tuple[VMAddress, ...]
    leases: tuple[Lease, ...]
    # (namespace, name) of the Auto vmips made for VMs that name none.
    generated: tuple[tuple[str, str], ...]

    # Lookups built on first use; cached_property writes past the frozen __setattr__ and
    # stays out of __eq__, so two allocations still compare by their fields alone.
    @cached_property
    def _vmips_by_key(self) -> dict[tuple[str, str], VMIPStatus]:
        return {(v.namespace, v.name): v for v in self.vmips}

    @cached_property
    def _vms_by_key(self) -> dict[tuple[str, str], VMAddress]:
        return {(v.namespace, v.name): v for v in self.vms}

    def vmip(self, namespace: str, name: str) -> VMIPStatus | None:
        return self._vmips_by_key.get((namespace, name))

    def vm(self, namespace: str, name: str) -> VMAddress | None:
        return self._vms_by_key.get((namespace, name))

    def previous_leases(self) -> tuple[PreviousLease, ...]:
        """These leases as the next call's input (what the status reports carry over)."""
        return tuple(
            PreviousLease(
                lease.address, lease.namespace, lease.vmip_name, lease.phase, lease.released_at
            )
            for lease in self.leases
        )
