"""Deletion, the 10-minute retention of released leases, and retained vmips."""

from __future__ import annotations

from datetime import timedelta

from reconciler.api.network import IPAddressType
from reconciler.ipam import PreviousLease, VMIPRequest, VMRequest, allocate
from tests.ipam.helpers import T0, check_invariants, request

STATIC = IPAddressType.STATIC
# /30 has two usable addresses; one reserved leaves exactly one to fight over.
TINY = ["10.0.0.0/30"]
GATEWAY = ["10.0.0.1"]


def _deleted() -> tuple[str, list[PreviousLease]]:
    """A VM in namespace `a` that got the only address, then was deleted at T0."""
    first = allocate(request(pool=TINY, reserved=GATEWAY, vms=[VMRequest("a", "vm")]))
    address = first.vms[0].address
    assert address == "10.0.0.2"
    gone = allocate(request(pool=TINY, reserved=GATEWAY, leases=first.previous_leases()))
    (lease,) = gone.leases
    assert lease.phase == "Released" and lease.released_at == T0 and lease.namespace == "a"
    assert gone.vmips == ()
    return address, list(gone.previous_leases())


def test_released_address_is_kept_from_other_namespaces_for_ten_minutes() -> None:
    _, leases = _deleted()
    for minutes in (0, 5, 9.99):
        req = request(
            pool=TINY,
            reserved=GATEWAY,
            vms=[VMRequest("b", "other")],
            leases=leases,
            now=T0 + timedelta(minutes=minutes),
        )
        result = allocate(req)
        check_invariants(req, result)
        assert result.vm("b", "other").address is None  # type: ignore[union-attr]
        (lease,) = result.leases
        assert lease.phase == "Released" and lease.released_at == T0


def test_released_static_request_from_another_namespace_says_why() -> None:
    address, leases = _deleted()
    req = request(
        pool=TINY, reserved=GATEWAY, vmips=[VMIPRequest("b", "s", STATIC, address)], leases=leases
    )
    bound = allocate(req).vmip("b", "s").condition("Bound")  # type: ignore[union-attr]
    assert bound is not None and "different namespace" in bound.message


def test_released_address_is_free_again_after_ten_minutes() -> None:
    address, leases = _deleted()
    req = request(
        pool=TINY,
        reserved=GATEWAY,
        vms=[VMRequest("b", "other")],
        leases=leases,
        now=T0 + timedelta(minutes=10),
    )
    result = allocate(req)
    check_invariants(req, result)
    assert result.vm("b", "other").address == address  # type: ignore[union-attr]
    (lease,) = result.leases
    assert lease.phase == "Bound" and lease.namespace == "b"


def test_expired_lease_is_dropped() -> None:
    _, leases = _deleted()
    result = allocate(
        request(pool=TINY, reserved=GATEWAY, leases=leases, now=T0 + timedelta(minutes=11))
    )
    assert result.leases == ()


def test_same_namespace_static_request_takes_it_back_during_retention() -> None:
    address, leases = _deleted()
    req = request(
        pool=TINY,
        reserved=GATEWAY,
        vms=[VMRequest("a", "new", "mine")],
        vmips=[VMIPRequest("a", "mine", STATIC, address)],
        leases=leases,
        now=T0 + timedelta(minutes=3),
    )
    result = allocate(req)
    check_invariants(req, result)
    assert result.vm("a", "new").address == address  # type: ignore[union-attr]
    (lease,) = result.leases
    assert (lease.phase, lease.vmip_name, lease.released_at) == ("Bound", "mine", None)


def test_recreated_vm_gets_its_address_back_by_the_same_generated_name() -> None:
    address, leases = _deleted()
    req = request(
        pool=["10.0.0.0/24"],
        reserved=GATEWAY,
        vms=[VMRequest("a", "vm")],
        leases=leases,
        now=T0 + timedelta(minutes=2),
    )
    result = allocate(req)
    check_invariants(req, result)
    assert result.vm("a", "vm").address == address  # type: ignore[union-attr]


def test_retained_vmip_outlives_its_vm_and_serves_a_new_one() -> None:
    first = allocate(request(vms=[VMRequest("a", "vm")]))
    vm = first.vms[0]
    # The retention procedure: the generated vmip is written to Git with the annotation.
    kept = VMIPRequest("a", vm.vmip_name, retained=True)
    still = allocate(
        request(vms=[VMRequest("a", "vm")], vmips=[kept], leases=first.previous_leases())
    )
    assert still.vm("a", "vm").vmip_name == vm.vmip_name  # type: ignore[union-attr]
    assert still.vm("a", "vm").address == vm.address  # type: ignore[union-attr]
    assert still.generated == ()

    gone = allocate(
        request(vmips=[kept], leases=still.previous_leases(), now=T0 + timedelta(hours=1))
    )
    vmip = gone.vmip("a", vm.vmip_name)
    assert vmip is not None and vmip.phase == "Bound" and vmip.address == vm.address
    assert [lease.phase for lease in gone.leases] == ["Bound"]

    req = request(
        vms=[VMRequest("a", "successor", vm.vmip_name)],
        vmips=[kept],
        leases=gone.previous_leases(),
        now=T0 + timedelta(hours=2),
    )
    again = allocate(req)
    check_invariants(req, again)
    assert again.vm("a", "successor").address == vm.address  # type: ignore[union-attr]
    assert again.vmip("a", vm.vmip_name).phase == "Attached"  # type: ignore[union-attr]


def test_changed_static_ip_releases_the_old_address_to_its_namespace() -> None:
    first = allocate(request(vmips=[VMIPRequest("a", "s", STATIC, "10.0.0.5")]))
    req = request(vmips=[VMIPRequest("a", "s", STATIC, "10.0.0.6")], leases=first.previous_leases())
    result = allocate(req)
    check_invariants(req, result)
    assert result.vmip("a", "s").address == "10.0.0.6"  # type: ignore[union-attr]
    phases = {lease.address: lease.phase for lease in result.leases}
    assert phases == {"10.0.0.5": "Released", "10.0.0.6": "Bound"}
