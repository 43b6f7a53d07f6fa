"""Any sequence of creating and deleting VMs and vmips, each round fed the previous round's
leases, keeps the allocation sound and stable."""

from __future__ import annotations

import os
import random
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.api.network import IPAddressType
from reconciler.ipam import (
    Allocation,
    VMIPRequest,
    VMRequest,
    allocate,
    generated_vmip_name,
    with_leases,
)
from tests.ipam.helpers import T0, check_invariants, request

NAMESPACES = ("a", "b")
NAMES = ("n0", "n1", "n2", "n3", "n4", "n5")
# Also the names VMs n0 and n1 generate, so vmip manifests can retain or shadow them.
VMIP_NAMES = NAMES + tuple(generated_vmip_name(ns, n) for ns in NAMESPACES for n in NAMES[:2])
# Inside, network, broadcast, gateway and outside of the pool below.
STATIC_IPS = (
    "10.0.0.2",
    "10.0.0.3",
    "10.0.0.14",
    "10.0.0.0",
    "10.0.0.15",
    "10.0.0.1",
    "10.0.1.5",
    "10.0.2.1",
)
POOL = ("10.0.0.0/28", "10.0.1.0/29")
GATEWAY = ("10.0.0.1",)

vm_op = st.tuples(
    st.just("vm"),
    st.sampled_from(NAMESPACES),
    st.sampled_from(NAMES),
    st.one_of(st.none(), st.sampled_from(VMIP_NAMES)),
)
vmip_op = st.tuples(
    st.just("vmip"),
    st.sampled_from(NAMESPACES),
    st.sampled_from(VMIP_NAMES),
    st.one_of(st.none(), st.sampled_from(STATIC_IPS)),
    st.booleans(),
)
delete_op = st.one_of(
    st.tuples(st.just("del-vm"), st.sampled_from(NAMESPACES), st.sampled_from(NAMES)),
    st.tuples(st.just("del-vmip"), st.sampled_from(NAMESPACES), st.sampled_from(VMIP_NAMES)),
)
tick = st.tuples(st.just("tick"), st.integers(min_value=0, max_value=15))
steps = st.lists(st.lists(st.one_of(vm_op, vmip_op, delete_op, tick), max_size=6), max_size=12)


def _apply(ops: list[tuple], vms: dict, vmips: dict) -> int:  # type: ignore[type-arg]
    minutes = 0
    for op in ops:
        match op:
            case ("vm", ns, name, vmip):
                vms[(ns, name)] = VMRequest(ns, name, vmip)
            case ("vmip", ns, name, static, retained):
                kind = IPAddressType.STATIC if static else IPAddressType.AUTO
                vmips[(ns, name)] = VMIPRequest(ns, name, kind, static, retained)
            case ("del-vm", ns, name):
                vms.pop((ns, name), None)
            case ("del-vmip", ns, name):
                vmips.pop((ns, name), None)
            case ("tick", m):
                minutes += m
    return minutes


def _check_stability(before: Allocation, after: Allocation, same: set) -> None:  # type: ignore[type-arg]
    """A vmip that exists in both rounds with the same spec keeps its address."""
    for vmip in before.vmips:
        key = (vmip.namespace, vmip.name)
        if vmip.address and key in same:
            now = after.vmip(*key)
            assert now is not None and now.address == vmip.address, key


def _check_retention(before: Allocation, after: Allocation, elapsed: timedelta) -> None:
    """A Released, unexpired address goes to nobody outside its namespace."""
    leases = {lease.address: lease for lease in after.leases}
    for lease in before.leases:
        if lease.phase != "Released" or lease.released_at is None:
            continue
        if (T0 + elapsed) - lease.released_at >= timedelta(minutes=10):
            continue
        again = leases.get(lease.address)
        assert again is not None, f"{lease.address} dropped during its retention"
        assert again.namespace == lease.namespace


# IPAM_EXAMPLES=5000 for a longer hunt than the default run affords.
@settings(max_examples=int(os.environ.get("IPAM_EXAMPLES", "150")), deadline=None)
@given(steps)
def test_any_history_keeps_leases_sound(history: list[list[tuple]]) -> None:  # type: ignore[type-arg]
    vms: dict = {}  # type: ignore[type-arg]
    vmips: dict = {}  # type: ignore[type-arg]
    previous: Allocation | None = None
    elapsed = timedelta()
    for ops in history:
        old_vmips = dict(vmips)
        elapsed += timedelta(minutes=_apply(ops, vms, vmips))
        req = request(
            pool=POOL,
            reserved=GATEWAY,
            vms=vms.values(),
            vmips=vmips.values(),
            leases=previous.previous_leases() if previous else (),
            now=T0 + elapsed,
        )
        result = allocate(req)
        check_invariants(req, result)
        rng = random.Random(len(history))
        shuffled = [list(req.vms), list(req.vmips), list(req.leases)]
        for items in shuffled:
            rng.shuffle(items)
        again = replace(
            req, vms=tuple(shuffled[0]), vmips=tuple(shuffled[1]), leases=tuple(shuffled[2])
        )
        assert allocate(again) == result, "the answer depends on the input order"
        # A host reading these leases back from the reports (another host of the fleet, or
        # this one after a restart) reaches the very same answer.
        assert allocate(with_leases(req, result)) == result, "not a fixed point"
        if previous is not None:
            same = {k for k, v in vmips.items() if old_vmips.get(k) == v}
            # Generated vmips persist while their VM does.
            same |= {(g[0], g[1]) for g in result.generated}
            _check_stability(previous, result, same)
            _check_retention(previous, result, elapsed)
        previous = result
