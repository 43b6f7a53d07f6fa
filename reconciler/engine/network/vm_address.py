"""One VM's address in a pass: what its status says of it, the DHCP reservation that
hands it out, and the static network configuration its cloud-init seed carries.

Values in, decisions out: the VM's plan (vm/plan_vm.py) puts them in its status and
actions.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from reconciler.api import ObjectId, VirtualMachine
from reconciler.engine.network.addressing import (
    Addressing,
    NetworkFacts,
    reservation_name,
    reservations_by_mac,
)
from reconciler.ipam.model import VMAddress
from reconciler.model.actions import ReserveAddress
from reconciler.model.conditions import Condition, VMCondition, VMReason, mark_false, mark_true
from reconciler.model.domain import Nic
from reconciler.model.names import domain_mac
from reconciler.provisioning import NetworkConfig

_ADDRESS_READY = mark_true(
    VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY, VMReason.VIRTUAL_MACHINE_IP_ADDRESS_READY
)


class AddressReport(NamedTuple):
    """The VM's vmip and address as its status shows them, whatever else keeps it from
    running; `decided`: the pass's allocation for it (None: it needs none)."""

    decided: VMAddress | None
    condition: Condition
    vmip_name: str = ""
    ip_address: str = ""


_NO_ADDRESS_NEEDED = AddressReport(None, _ADDRESS_READY)


def address_report(addressing: Addressing | None, vm: VirtualMachine) -> AddressReport:
    decided = addressing.vm(vm) if addressing is not None else None
    if decided is None:
        # No pool configured, or a VM without the Main network: nothing to wait for.
        return _NO_ADDRESS_NEEDED
    if decided.address is None:
        waiting = mark_false(
            VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY,
            VMReason.VIRTUAL_MACHINE_IP_ADDRESS_NOT_READY,
            decided.message,
        )
        return AddressReport(decided, waiting, vmip_name=decided.vmip_name)
    return AddressReport(decided, _ADDRESS_READY, decided.vmip_name, decided.address)


class AddressStep(NamedTuple):
    """The VM's DHCP reservation on the host's network. `ready` False: the VM has to
    wait for an address before it may start; `condition`: a new IP condition, if any."""

    ready: bool
    action: ReserveAddress | None = None
    detail: str = ""
    condition: Condition | None = None


_NOTHING_TO_RESERVE = AddressStep(ready=True)
_NO_ADDRESS_YET = AddressStep(ready=False)


def reserve_address(
    decided: VMAddress | None, vm_id: ObjectId, nic: Nic | None, network: NetworkFacts | None
) -> AddressStep:
    if decided is None:
        return _NOTHING_TO_RESERVE
    if decided.address is None:
        return _NO_ADDRESS_YET
    if nic is None:
        return _NOTHING_TO_RESERVE
    if network is None:
        return AddressStep(
            ready=False,
            condition=mark_false(
                VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY,
                VMReason.VIRTUAL_MACHINE_IP_ADDRESS_NOT_READY,
                f"network {nic.network} does not exist on this host;"
                " the address cannot be reserved",
            ),
        )
    if not network.serves(decided.address):
        # A pool that does not match the network: the guest would get some other address
        # from DHCP. Said plainly, and (as the platform's NotAssigned) not blocking.
        subnets = ", ".join(str(s) for s in network.subnets) or "none"
        return AddressStep(
            ready=True,
            condition=mark_false(
                VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY,
                VMReason.VIRTUAL_MACHINE_IP_ADDRESS_NOT_ASSIGNED,
                f"{decided.address} is outside network {network.name}'s subnets ({subnets});"
                " its DHCP cannot hand it out: make virtualMachineCIDRs match the network",
            ),
        )
    name = reservation_name(vm_id)
    found = reservations_by_mac(network).get(nic.mac.lower())
    if found is not None and found.ip == decided.address and found.name == name:
        return _NOTHING_TO_RESERVE
    return AddressStep(
        ready=True,
        action=ReserveAddress(vm_id, network.name, nic.mac, decided.address, name),
        detail=f"address {decided.address} (vmip {decided.vmip_name})",
    )


def seed_network(
    vm_id: ObjectId, decided: VMAddress | None, network: NetworkFacts | None
) -> NetworkConfig | None:
    """The static address a cloud-init seed gives the guest: the VM's leased address on
    the network's subnet, the network's own address as gateway and DNS server."""
    if decided is None or decided.address is None or network is None:
        return None
    address = ipaddress.IPv4Address(decided.address)
    for subnet, gateway in zip(network.subnets, network.gateways, strict=False):
        if address in subnet:
            return NetworkConfig(
                mac=domain_mac(vm_id),
                address=decided.address,
                prefix=subnet.prefixlen,
                gateway=str(gateway),
                dns=(str(gateway),),
            )
    return None
