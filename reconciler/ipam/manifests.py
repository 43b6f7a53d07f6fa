"""From loaded manifests to `allocate` inputs: the only place that knows the API models,
so the allocator itself stays a function of plain values."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.api import VirtualMachine, VirtualMachineIPAddress
from reconciler.ipam.model import VMIPRequest, VMRequest


def has_main_network(vm: VirtualMachine) -> bool:
    """dvp-api.md §2: no `networks` means the Main network alone; a list without `Main`
    means the VM gets no VirtualMachineIPAddress at all."""
    networks = vm.spec.networks
    return not networks or any(n.type == "Main" for n in networks)


def vm_requests(vms: Iterable[VirtualMachine]) -> tuple[VMRequest, ...]:
    return tuple(
        VMRequest(vm.namespace, vm.name, vm.spec.virtual_machine_ip_address_name)
        for vm in vms
        if has_main_network(vm)
    )


def vmip_requests(vmips: Iterable[VirtualMachineIPAddress]) -> tuple[VMIPRequest, ...]:
    return tuple(
        VMIPRequest(vmip.namespace, vmip.name, vmip.spec.type, vmip.spec.static_ip, vmip.retained)
        for vmip in vmips
    )
