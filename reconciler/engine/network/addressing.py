"""The pass's IP addresses: the allocation every host computes alike, and the DHCP
reservations on this host's libvirt network that deliver it to the guests.

The allocation is a function of the revision's VMs and vmips, the leases of the last
status reports and the clock (reconciler.ipam); reservations are what one host adds to
its network so that libvirt's own dnsmasq hands each guest exactly its address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler.api import ObjectId, VirtualMachine, VirtualMachineIPAddress
from reconciler.ipam import allocate
from reconciler.ipam.manifests import has_main_network, vm_requests, vmip_requests
from reconciler.ipam.model import (
    Allocation,
    AllocationRequest,
    PreviousLease,
    VMAddress,
    VMIPRequest,
)
from reconciler.ipam.naming import generated_vmip_name
from reconciler.model.names import domain_mac, domain_name, domain_owner
from reconciler.model.phases import LeasePhase
from reconciler.rules.inventory import Inventory


@dataclass(frozen=True)
class Reservation:
    """A `<host>` of the network's DHCP section: this MAC gets this address."""

    mac: str
    ip: str
    name: str = ""


@dataclass(frozen=True)
class NetworkFacts:
    """The libvirt network the VMs' NICs are on, as far as addressing goes."""

    name: str
    active: bool
    # The host's own addresses on the network (its `<ip address=…>`): never leased.
    gateways: tuple[ipaddress.IPv4Address, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    # The subnets its DHCP serves: a reservation outside them would never be handed out.
    subnets: tuple[ipaddress.IPv4Network, ...] = ()

    def serves(self, address: str) -> bool:
        ip = ipaddress.IPv4Address(address)
        return any(ip in subnet for subnet in self.subnets)


@dataclass(frozen=True)
class Addressing:
    """The pass's allocation and what it was computed from."""

    allocation: Allocation
    # Whether the status reports held no lease at all and this host's reservations were
    # read back instead (a lost status tree must not hand a running guest's address on).
    recovered_from_network: bool = False
    # Whether the revision is incomplete (an unreadable file or a broken VM): its
    # vmip/vmipl reports are then left as they were, so nothing is released on a guess.
    partial: bool = False

    def vm(self, vm: VirtualMachine) -> VMAddress | None:
        """The VM's address decision; None for a VM without the Main network."""
        if not has_main_network(vm):
            return None
        return self.allocation.vm(vm.namespace, vm.name)


def reservation_name(vm_id: ObjectId) -> str:
    """The `name` of a VM's reservation: its domain name, which names the host in dnsmasq
    and, with the MAC derived from the same identity, marks the reservation as ours."""
    return domain_name(vm_id)


def reservation_owner(reservation: Reservation) -> ObjectId | None:
    """The VM a reservation was made for, if this project made it (its MAC is the one
    derived from the VM its name names); None for anything an operator added by hand."""
    owner = domain_owner(reservation.name)
    if owner is None:
        return None
    return owner if domain_mac(owner) == reservation.mac.lower() else None


def recovered_leases(
    vms: Iterable[VirtualMachine], network: NetworkFacts | None
) -> tuple[PreviousLease, ...]:
    """This host's reservations as Bound leases of the VMs they serve: what the status
    reports would have said, had they not been lost."""
    if network is None:
        return ()
    wanted = {
        ObjectId("VirtualMachine", vm.namespace, vm.name): vm for vm in vms if has_main_network(vm)
    }
    found = []
    for reservation in network.reservations:
        owner = reservation_owner(reservation)
        vm = wanted.get(owner) if owner is not None else None
        if vm is None:
            continue
        vmip = vm.spec.virtual_machine_ip_address_name or generated_vmip_name(vm.namespace, vm.name)
        found.append(PreviousLease(reservation.ip, vm.namespace, vmip, LeasePhase.BOUND))
    return tuple(found)


@dataclass(frozen=True)
class AddressInputs:
    """What the daemon or the command line knows about addresses before a pass."""

    pool: tuple[ipaddress.IPv4Network, ...]
    leases: tuple[PreviousLease, ...] = ()
    # The clock released leases are stamped with and expire by; aware (UTC).
    now: datetime = field(default_factory=lambda: datetime(1970, 1, 1, tzinfo=UTC))


def assign(
    inputs: AddressInputs,
    inventory: Inventory,
    network: NetworkFacts | None,
    *,
    incomplete_namespaces: Sequence[str] = (),
    incomplete_everywhere: bool = False,
) -> Addressing | None:
    """The allocation for the revision; None when no pool is configured (no addressing).

    A namespace with a VM that could not be read keeps every Bound lease of its vmips
    (they may serve that VM), as does every namespace when a file could not be read.
    """
    if not inputs.pool:
        return None
    vms = [vm for _, vm in inventory.of_kind(VirtualMachine)]
    vmips = list(vmip_requests(vmip for _, vmip in inventory.of_kind(VirtualMachineIPAddress)))
    leases = inputs.leases
    recovered = False
    if not leases:
        leases = recovered_leases(vms, network)
        recovered = bool(leases)
    keep = set(incomplete_namespaces)
    if keep or incomplete_everywhere:
        vmips.extend(_kept_vmips(leases, vms, vmips, keep, incomplete_everywhere))
    request = AllocationRequest(
        pool=inputs.pool,
        vms=vm_requests(vms),
        vmips=tuple(vmips),
        leases=leases,
        now=inputs.now,
        reserved=tuple(network.gateways) if network is not None else (),
    )
    return Addressing(
        allocate(request),
        recovered_from_network=recovered,
        partial=bool(keep) or incomplete_everywhere,
    )


def _kept_vmips(
    leases: Iterable[PreviousLease],
    vms: Iterable[VirtualMachine],
    vmips: Iterable[VMIPRequest],
    namespaces: set[str],
    everywhere: bool,
) -> list[VMIPRequest]:
    """Stand-ins for the vmips behind Bound leases that nothing readable asks for."""
    known = {(v.namespace, v.name) for v in vmips}
    known |= {
        (
            vm.namespace,
            vm.spec.virtual_machine_ip_address_name or generated_vmip_name(vm.namespace, vm.name),
        )
        for vm in vms
    }
    kept = []
    for lease in leases:
        if lease.phase is not LeasePhase.BOUND or not lease.vmip_name:
            continue
        if not everywhere and lease.namespace not in namespaces:
            continue
        if (lease.namespace, lease.vmip_name) not in known:
            kept.append(VMIPRequest(lease.namespace, lease.vmip_name))
            known.add((lease.namespace, lease.vmip_name))
    return kept


def reservations_by_mac(network: NetworkFacts) -> Mapping[str, Reservation]:
    return {r.mac.lower(): r for r in network.reservations}
