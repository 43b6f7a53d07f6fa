"""Small builders for allocate() inputs, and the invariants every allocation must keep."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import UTC, datetime

from reconciler.ipam import Allocation, AllocationRequest, PreviousLease, VMIPRequest, VMRequest

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def ip(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


def request(
    pool: Iterable[str] = ("10.0.0.0/24",),
    vms: Iterable[VMRequest] = (),
    vmips: Iterable[VMIPRequest] = (),
    leases: Iterable[PreviousLease] = (),
    now: datetime = T0,
    reserved: Iterable[str] = (),
) -> AllocationRequest:
    return AllocationRequest(
        pool=tuple(net(p) for p in pool),
        vms=tuple(vms),
        vmips=tuple(vmips),
        leases=tuple(leases),
        now=now,
        reserved=tuple(ip(r) for r in reserved),
    )


def check_invariants(req: AllocationRequest, result: Allocation) -> None:
    """No address twice, none outside the pool, none network/broadcast/reserved, and the
    vmip and VM views agree with the leases."""
    addresses = [lease.address for lease in result.leases]
    assert len(addresses) == len(set(addresses)), "an address is leased twice"
    reserved = set(req.reserved)
    for lease in result.leases:
        address = ip(lease.address)
        assert address not in reserved, f"{address} is reserved"
        assert any(
            address in cidr and address not in (cidr.network_address, cidr.broadcast_address)
            for cidr in req.pool
        ), f"{address} is outside the pool or a network/broadcast address"
        assert lease.name == "ip-" + lease.address.replace(".", "-")
    bound = {
        (lease.namespace, lease.vmip_name): lease.address
        for lease in result.leases
        if lease.phase == "Bound"
    }
    for vmip in result.vmips:
        assert bound.get((vmip.namespace, vmip.name)) == vmip.address
        assert (vmip.phase == "Pending") == (vmip.address is None)
    with_address = [vmip for vmip in result.vmips if vmip.address]
    assert len(bound) == len(with_address), "a Bound lease without its vmip"
    for vm in result.vms:
        if vm.address is not None:
            vmip = result.vmip(vm.namespace, vm.vmip_name)
            assert vmip is not None and vmip.address == vm.address
            assert vmip.virtual_machine == vm.name
