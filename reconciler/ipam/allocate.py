"""`allocate`: vmips, VMs and last round's leases in, every address decision out.

Pure and deterministic: inputs are sorted before use, hashes are SHA-256, so every host
of a fleet computes the same leases from the same Git revision and status reports.
Order of decisions (dvp-api.md §6.2-6.3, plus stability across runs):
  1. last round's leases: a Bound lease stays with its vmip; one whose vmip is gone is
     Released and, for `retention`, held for its namespace; older ones are dropped;
  2. a Released lease goes back to a vmip of the same namespace and name;
  3. Static vmips by (namespace, name): the requested address if usable and free, or
     Released by the same namespace;
  4. Auto vmips by (namespace, name): the first free address from a hashed offset.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from reconciler.api.network import IPAddressType
from reconciler.ipam.model import (
    Allocation,
    AllocationRequest,
    Lease,
    PreviousLease,
    VMAddress,
    VMIPRequest,
    VMIPStatus,
    VMRequest,
)
from reconciler.ipam.naming import (
    address_int,
    address_text,
    generated_vmip_name,
    lease_name,
    probe_start,
)
from reconciler.ipam.pool import AddressPool, FreeIndex
from reconciler.model.conditions import AddressCondition, AddressReason, mark_false, mark_true
from reconciler.model.phases import LeasePhase, VMIPPhase

Key = tuple[str, str]


@dataclass(frozen=True)
class _Held:
    """A lease while allocating; keyed by address int in `_State.leases`."""

    namespace: str
    vmip_name: str | None
    phase: LeasePhase
    released_at: datetime | None = None


class _State:
    def __init__(self, request: AllocationRequest) -> None:
        self.now = request.now
        self.pool = AddressPool(request.pool, request.reserved)
        self.free = FreeIndex(self.pool.size)
        for address in self.pool.reserved:
            index = self.pool.index(address)
            if index is not None:
                self.free.take(index)
        self.leases: dict[int, _Held] = {}
        self.assigned: dict[Key, int] = {}
        self.pending: dict[Key, tuple[AddressReason, str]] = {}

    def bind(self, key: Key, address: int) -> None:
        self.leases[address] = _Held(key[0], key[1], LeasePhase.BOUND)
        self.assigned[key] = address
        index = self.pool.index(address)
        assert index is not None, "only leasable addresses are bound"
        self.free.take(index)

    def hold_released(self, address: int, held: _Held) -> None:
        self.leases[address] = held
        index = self.pool.index(address)
        assert index is not None, "only leasable addresses are held"
        self.free.take(index)


def _fits(vmip: VMIPRequest, address: int) -> bool:
    """Whether an existing lease still serves the vmip: a Static one only at its staticIP
    (Git may have changed it), an Auto one anywhere (Static→Auto keeps the address)."""
    if vmip.type is IPAddressType.STATIC:
        return address_int(vmip.static_ip) == address
    return True


def _unique_vmips(vmips: Iterable[VMIPRequest]) -> dict[Key, VMIPRequest]:
    """One vmip per (namespace, name); of duplicates the smallest wins, whatever the order."""
    chosen: dict[Key, VMIPRequest] = {}
    for vmip in sorted(
        vmips,
        key=lambda v: (v.namespace, v.name, str(v.type), v.static_ip or "", v.retained),
    ):
        chosen.setdefault((vmip.namespace, vmip.name), vmip)
    return chosen


def _unique_vms(vms: Iterable[VMRequest]) -> list[VMRequest]:
    chosen: dict[Key, VMRequest] = {}
    for vm in sorted(vms, key=lambda v: (v.namespace, v.name, v.vmip_name or "")):
        chosen.setdefault((vm.namespace, vm.name), vm)
    return list(chosen.values())


def _resolve_vms(
    vms: list[VMRequest], manifests: dict[Key, VMIPRequest]
) -> tuple[dict[Key, VMIPRequest], dict[Key, str], dict[Key, str], set[Key]]:
    """Every vmip that exists (manifests plus generated), each VM's vmip name, the VM each
    generated or adopted vmip was made for, and which vmips were generated."""
    vmips = dict(manifests)
    vm_vmip: dict[Key, str] = {}
    owner: dict[Key, str] = {}
    generated: set[Key] = set()
    for vm in vms:
        if vm.vmip_name:
            vm_vmip[(vm.namespace, vm.name)] = vm.vmip_name
            continue
        attempt = 0
        while True:
            key = (vm.namespace, generated_vmip_name(vm.namespace, vm.name, attempt))
            existing = vmips.get(key)
            if existing is None:
                vmips[key] = VMIPRequest(key[0], key[1], IPAddressType.AUTO)
                generated.add(key)
                break
            if existing.retained and key not in owner:
                # The retention procedure: the VM's own vmip, kept in Git, is adopted again.
                break
            # A name taken by someone else's vmip: derive another, deterministically.
            attempt += 1
        owner[key] = vm.name
        vm_vmip[(vm.namespace, vm.name)] = key[1]
    return vmips, vm_vmip, owner, generated


def _carry_over(
    state: _State,
    leases: Iterable[PreviousLease],
    vmips: dict[Key, VMIPRequest],
    retention_seconds: float,
) -> None:
    """Steps 1 and 2 of the module docstring."""
    # Parsed once: the sort key and the loop would otherwise parse every address twice.
    parsed = [(address_int(p.address), p) for p in leases]
    ordered = sorted(
        ((a, p) for a, p in parsed if a is not None),
        key=lambda item: (
            item[0],
            item[1].phase is not LeasePhase.BOUND,
            item[1].namespace,
            item[1].vmip_name or "",
            # Text, not datetimes: naive and aware ones do not compare.
            item[1].released_at.isoformat() if item[1].released_at else "",
        ),
    )
    released: list[int] = []
    for address, previous in ordered:
        # A lease outside the (possibly shrunk) pool or on a reserved address is dropped.
        if address in state.leases or not state.pool.leasable(address):
            continue
        key = (previous.namespace, previous.vmip_name or "")
        if previous.phase is LeasePhase.BOUND:
            vmip = vmips.get(key) if previous.vmip_name else None
            if vmip is not None and key not in state.assigned and _fits(vmip, address):
                state.bind(key, address)
                continue
            since = state.now
        else:
            since = previous.released_at or state.now
            if (state.now - since).total_seconds() >= retention_seconds:
                continue
        state.hold_released(
            address, _Held(previous.namespace, previous.vmip_name, LeasePhase.RELEASED, since)
        )
        released.append(address)
    for address in released:
        held = state.leases[address]
        key = (held.namespace, held.vmip_name or "")
        vmip = vmips.get(key) if held.vmip_name else None
        if vmip is not None and key not in state.assigned and _fits(vmip, address):
            state.bind(key, address)


def _static(state: _State, key: Key, vmip: VMIPRequest) -> None:
    address = address_int(vmip.static_ip)
    if address is None:
        state.pending[key] = (
            AddressReason.OUT_OF_THE_VALID_RANGE,
            f"{vmip.static_ip!r} is not an IPv4 address",
        )
        return
    text = address_text(address)
    problem = state.pool.problem(ipaddress.IPv4Address(address))
    if problem:
        state.pending[key] = (AddressReason.OUT_OF_THE_VALID_RANGE, problem)
        return
    held = state.leases.get(address)
    if held is None:
        state.bind(key, address)
    elif held.phase is LeasePhase.BOUND:
        state.pending[key] = (
            AddressReason.LEASE_ALREADY_EXISTS,
            f"{text} conflicts with vmip {held.namespace}/{held.vmip_name}, which holds it",
        )
    elif held.namespace != key[0]:
        state.pending[key] = (
            AddressReason.LEASE_ALREADY_EXISTS,
            f"{text} belongs to a different namespace ({held.namespace}) until its "
            f"released lease expires",
        )
    else:
        state.bind(key, address)


def _auto(state: _State, key: Key) -> None:
    if state.pool.size:
        index = state.free.next_free(probe_start(key[0], key[1], state.pool.size))
        if index is not None:
            state.bind(key, state.pool.address(index))
            return
    released = sum(1 for h in state.leases.values() if h.phase is LeasePhase.RELEASED)
    cidrs = ", ".join(str(c) for c in state.pool.cidrs) or "none"
    state.pending[key] = (
        AddressReason.LEASE_NOT_READY,
        f"the pool is exhausted: no free address in {cidrs} "
        f"({len(state.leases)} leased, {released} of them released and retained; "
        f"{len(state.pool.reserved)} reserved)",
    )


def _vmip_status(
    state: _State, key: Key, vmip: VMIPRequest, vm: str | None, generated: bool
) -> VMIPStatus:
    address = state.assigned.get(key)
    if address is not None:
        bound = mark_true(AddressCondition.BOUND, AddressReason.BOUND)
    else:
        reason, message = state.pending.get(key, (AddressReason.LEASE_NOT_READY, "no lease yet"))
        bound = mark_false(AddressCondition.BOUND, reason, message)
    if vm is not None:
        attached = mark_true(
            AddressCondition.ATTACHED, AddressReason.ATTACHED, f"attached to VM {vm}"
        )
    else:
        attached = mark_false(
            AddressCondition.ATTACHED,
            AddressReason.VIRTUAL_MACHINE_NOT_FOUND,
            "no VM uses this vmip",
        )
    if address is None:
        phase = VMIPPhase.PENDING
    else:
        phase = VMIPPhase.ATTACHED if vm is not None else VMIPPhase.BOUND
    return VMIPStatus(
        namespace=key[0],
        name=key[1],
        type=vmip.type,
        address=address_text(address) if address is not None else None,
        phase=phase,
        conditions=(bound, attached),
        virtual_machine=vm,
        generated=generated,
    )


def _lease(text: str, held: _Held) -> Lease:
    return Lease(
        name=lease_name(text),
        address=text,
        namespace=held.namespace,
        vmip_name=held.vmip_name,
        phase=held.phase,
        released_at=held.released_at,
    )


def allocate(request: AllocationRequest) -> Allocation:
    state = _State(request)
    vms = _unique_vms(request.vms)
    vmips, vm_vmip, owner, generated = _resolve_vms(vms, _unique_vmips(request.vmips))

    _carry_over(state, request.leases, vmips, request.retention.total_seconds())
    ordered = sorted(vmips.items())
    for key, vmip in ordered:
        if key not in state.assigned and vmip.type is IPAddressType.STATIC:
            _static(state, key, vmip)
    for key, vmip in ordered:
        if key not in state.assigned and vmip.type is IPAddressType.AUTO:
            _auto(state, key)

    # Attachment: the VM a vmip was generated for, else the first VM (by name) naming it.
    attached: dict[Key, str] = dict(owner)
    for vm in vms:
        key = (vm.namespace, vm_vmip[(vm.namespace, vm.name)])
        if key in vmips:
            attached.setdefault(key, vm.name)

    statuses = tuple(
        _vmip_status(state, key, vmip, attached.get(key), key in generated) for key, vmip in ordered
    )
    by_key = {(s.namespace, s.name): s for s in statuses}
    addresses = []
    for vm in vms:
        name = vm_vmip[(vm.namespace, vm.name)]
        status = by_key.get((vm.namespace, name))
        address: str | None = None
        if status is None:
            message = f"vmip {name} does not exist in namespace {vm.namespace}"
        elif status.virtual_machine != vm.name:
            message = f"vmip {name} is attached to VM {status.virtual_machine}"
        elif status.address is None:
            bound = status.condition(AddressCondition.BOUND)
            message = f"vmip {name} is Pending: {bound.message if bound else ''}"
        else:
            address, message = status.address, ""
        addresses.append(VMAddress(vm.namespace, vm.name, name, address, message))

    leases = tuple(
        _lease(address_text(address), held) for address, held in sorted(state.leases.items())
    )
    return Allocation(
        vmips=statuses,
        vms=tuple(addresses),
        leases=leases,
        generated=tuple(sorted(generated)),
    )


def with_leases(request: AllocationRequest, allocation: Allocation) -> AllocationRequest:
    """`request` with `allocation`'s leases as the previous ones: the next round's input."""
    return replace(request, leases=allocation.previous_leases())
