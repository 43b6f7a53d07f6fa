"""Claims that must be exclusive: duplicates, one IP or one disk used twice, IP ranges."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence

from reconciler.api import (
    IPAddressType,
    ObjectId,
    VirtualMachine,
    VirtualMachineBlockDeviceAttachment,
    VirtualMachineClass,
    VirtualMachineIPAddress,
)
from reconciler.findings import Finding, Rule
from reconciler.loader import LoadedObject, Loc
from reconciler.rules.derived import Derived
from reconciler.rules.inventory import Inventory

Pool = Sequence[ipaddress.IPv4Network]


def duplicate_findings(inventory: Inventory) -> Iterator[Finding]:
    for first, again in inventory.duplicates:
        line, _ = first.source.locate(())
        yield again.finding(
            ("metadata", "name"),
            f"{first.id} is defined twice; first at {first.source.path}:{line}",
            Rule.DUPLICATE,
        )


def _first_claim(
    claims: dict[object, tuple[LoadedObject, Loc]],
    key: object,
    loaded: LoadedObject,
    loc: Loc,
) -> tuple[LoadedObject, Loc] | None:
    """Record a claim; return the earlier claimant if the key was already taken."""
    earlier = claims.get(key)
    if earlier is None:
        claims[key] = (loaded, loc)
    return earlier


# What each VM claims, read off once per (frozen) VM object:
# its IP address object, and the VirtualDisks it attaches with where each is named.
_VM_CLAIMS: Derived[tuple[ObjectId | None, tuple[tuple[Loc, ObjectId], ...]]] = Derived()


def _vm_claims(vm: VirtualMachine) -> tuple[ObjectId | None, tuple[tuple[Loc, ObjectId], ...]]:
    name = vm.spec.virtual_machine_ip_address_name
    vmip = ObjectId("VirtualMachineIPAddress", vm.namespace, name) if name else None
    disks = tuple(
        (
            ("spec", "blockDeviceRefs", index, "name"),
            ObjectId("VirtualDisk", vm.namespace, ref.name),
        )
        for index, ref in enumerate(vm.spec.block_device_refs)
        if ref.kind.value == "VirtualDisk"
    )
    return vmip, disks


def vm_claims(loaded: LoadedObject) -> tuple[ObjectId | None, tuple[tuple[Loc, ObjectId], ...]]:
    """What a VM claims (kept with it): its IP address object, and its VirtualDisks with
    where each is named."""
    claims = _VM_CLAIMS.get(loaded)
    if claims is None:
        assert isinstance(loaded.model, VirtualMachine)
        claims = _VM_CLAIMS.put(loaded, _vm_claims(loaded.model))
    return claims


def claim_findings(inventory: Inventory) -> Iterator[Finding]:
    ip_claims: dict[object, tuple[LoadedObject, Loc]] = {}
    disk_claims: dict[object, tuple[LoadedObject, Loc]] = {}
    for loaded, _vm in inventory.of_kind(VirtualMachine):
        vmip, disks = vm_claims(loaded)
        if vmip is not None:
            loc: Loc = ("spec", "virtualMachineIPAddressName")
            earlier = _first_claim(ip_claims, vmip, loaded, loc)
            if earlier is not None:
                yield loaded.finding(
                    loc,
                    f"VirtualMachineIPAddress {vmip.name} is already used by {earlier[0].id}",
                    Rule.CONFLICT,
                )
        for loc, disk in disks:
            earlier = _first_claim(disk_claims, disk, loaded, loc)
            if earlier is not None:
                yield loaded.finding(
                    loc,
                    f"VirtualDisk {disk.name} is already used by {earlier[0].id};"
                    " a disk is attached read-write to one VM only",
                    Rule.CONFLICT,
                )
    for loaded, vmbda in inventory.of_kind(VirtualMachineBlockDeviceAttachment):
        attached = vmbda.spec.block_device_ref
        if attached.kind.value != "VirtualDisk":
            continue
        disk = ObjectId("VirtualDisk", vmbda.namespace, attached.name)
        loc = ("spec", "blockDeviceRef", "name")
        earlier = _first_claim(disk_claims, disk, loaded, loc)
        if earlier is not None:
            yield loaded.finding(
                loc,
                f"VirtualDisk {attached.name} is already used by {earlier[0].id}",
                Rule.CONFLICT,
            )
    static_claims: dict[object, tuple[LoadedObject, Loc]] = {}
    for loaded, address in inventory.of_kind(VirtualMachineIPAddress):
        if address.spec.type is IPAddressType.STATIC and address.spec.static_ip:
            loc = ("spec", "staticIP")
            earlier = _first_claim(static_claims, address.spec.static_ip, loaded, loc)
            if earlier is not None:
                yield loaded.finding(
                    loc,
                    f"{address.spec.static_ip} is already claimed by {earlier[0].id}",
                    Rule.CONFLICT,
                )
    defaults = [loaded for loaded, c in inventory.of_kind(VirtualMachineClass) if c.is_default]
    for extra in defaults[1:]:
        yield extra.finding(
            ("metadata", "annotations"),
            f"{defaults[0].id} is already the default class; only one class may be",
            Rule.CONFLICT,
        )


def ip_range_problem(address: str, pool: Pool) -> str | None:
    """Why a static address cannot be leased from the pool, or None if it can
    (dvp-api.md §6.3 IsInsideOfRange: not the first or last address of its CIDR)."""
    ip = ipaddress.IPv4Address(address)
    for cidr in pool:
        if ip in cidr:
            if ip == cidr.network_address:
                return f"{ip} is the network address of {cidr}"
            if ip == cidr.broadcast_address:
                return f"{ip} is the broadcast address of {cidr}"
            return None
    cidrs = ", ".join(str(c) for c in pool)
    return f"{ip} is outside every virtualMachineCIDR ({cidrs})"


def ip_range_findings(inventory: Inventory, pool: Pool) -> Iterator[Finding]:
    yield from address_range_findings(inventory.of_kind(VirtualMachineIPAddress), pool)


def address_range_findings(
    addresses: Iterable[tuple[LoadedObject, VirtualMachineIPAddress]], pool: Pool
) -> Iterator[Finding]:
    """The range findings of these addresses, each on its own."""
    for loaded, vmip in addresses:
        if vmip.spec.type is IPAddressType.STATIC and vmip.spec.static_ip:
            problem = ip_range_problem(vmip.spec.static_ip, pool)
            if problem:
                yield loaded.finding(("spec", "staticIP"), problem, Rule.IP_RANGE)
