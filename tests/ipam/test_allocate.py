"""Auto and Static allocation, naming, attachment and order independence."""

from __future__ import annotations

import random

from reconciler.api.network import IPAddressType
from reconciler.ipam import (
    VMIPRequest,
    VMRequest,
    allocate,
    generated_vmip_name,
    lease_address,
    lease_name,
)
from tests.ipam.helpers import check_invariants, request

STATIC = IPAddressType.STATIC


def test_lease_name_round_trip() -> None:
    assert lease_name("10.66.10.14") == "ip-10-66-10-14"
    assert lease_address("ip-10-66-10-14") == "10.66.10.14"
    assert lease_address("ip-nonsense") is None
    assert lease_address("10-66-10-14") is None


def test_generated_name_looks_like_the_controllers() -> None:
    name = generated_vmip_name("default", "linux-vm")
    prefix, suffix = name.rsplit("-", 1)
    assert prefix == "linux-vm"
    assert len(suffix) == 5 and suffix.isalnum() and suffix == suffix.lower()
    assert generated_vmip_name("default", "linux-vm") == name
    assert generated_vmip_name("other", "linux-vm") != name


def test_vm_without_vmip_gets_a_generated_attached_auto_vmip() -> None:
    req = request(vms=[VMRequest("default", "linux-vm")], reserved=["10.0.0.1"])
    result = allocate(req)
    check_invariants(req, result)
    (vm,) = result.vms
    assert vm.vmip_name == generated_vmip_name("default", "linux-vm")
    assert vm.address is not None and vm.message == ""
    vmip = result.vmip("default", vm.vmip_name)
    assert vmip is not None and vmip.generated and vmip.phase == "Attached"
    assert vmip.virtual_machine == "linux-vm"
    assert result.generated == (("default", vm.vmip_name),)
    (lease,) = result.leases
    assert (lease.phase, lease.namespace, lease.vmip_name) == ("Bound", "default", vm.vmip_name)


def test_filling_the_pool_to_the_last_address_then_exhausted() -> None:
    # /27: 30 usable addresses, one of them the gateway -> 29 VMs fit, the 30th does not.
    vms = [VMRequest("ns", f"vm-{i:02}") for i in range(30)]
    req = request(pool=["10.1.0.0/27"], vms=vms, reserved=["10.1.0.1"])
    result = allocate(req)
    check_invariants(req, result)
    given = {vm.address for vm in result.vms if vm.address}
    assert len(given) == 29
    assert given == {f"10.1.0.{i}" for i in range(2, 31)}
    (pending,) = [v for v in result.vmips if v.phase == "Pending"]
    bound = pending.condition("Bound")
    assert bound is not None and not bound.status
    assert "exhausted" in bound.message
    (starved,) = [vm for vm in result.vms if vm.address is None]
    assert "exhausted" in starved.message


def test_auto_spreads_from_a_hashed_offset_not_the_start() -> None:
    req = request(pool=["10.0.0.0/16"], vms=[VMRequest("ns", f"vm-{i}") for i in range(20)])
    addresses = {vm.address for vm in allocate(req).vms}
    # Sequential allocation would give 10.0.0.1..10.0.0.20.
    assert len({a.rsplit(".", 2)[1] for a in addresses if a}) > 5


def test_static_inside_the_pool() -> None:
    req = request(
        vms=[VMRequest("ns", "web", "web-ip")],
        vmips=[VMIPRequest("ns", "web-ip", STATIC, "10.0.0.77")],
    )
    result = allocate(req)
    check_invariants(req, result)
    assert result.vm("ns", "web").address == "10.0.0.77"  # type: ignore[union-attr]
    assert result.vmip("ns", "web-ip").phase == "Attached"  # type: ignore[union-attr]


def test_static_outside_the_pool_network_broadcast_or_reserved_is_pending() -> None:
    cases = {
        "192.168.1.5": "outside",
        "10.0.0.0": "network address",
        "10.0.0.255": "broadcast address",
        "10.0.0.1": "reserved",
    }
    for address, words in cases.items():
        req = request(vmips=[VMIPRequest("ns", "x", STATIC, address)], reserved=["10.0.0.1"])
        result = allocate(req)
        check_invariants(req, result)
        vmip = result.vmip("ns", "x")
        assert vmip is not None and vmip.phase == "Pending" and vmip.address is None
        bound = vmip.condition("Bound")
        assert bound is not None
        assert bound.reason == "VirtualMachineIPAddressIsOutOfTheValidRange"
        assert words in bound.message
        assert result.leases == ()


def test_two_statics_for_one_address_first_by_name_wins() -> None:
    vmips = [
        VMIPRequest("b", "zzz", STATIC, "10.0.0.9"),
        VMIPRequest("a", "yyy", STATIC, "10.0.0.9"),
    ]
    req = request(vmips=vmips)
    result = allocate(req)
    check_invariants(req, result)
    assert result.vmip("a", "yyy").address == "10.0.0.9"  # type: ignore[union-attr]
    loser = result.vmip("b", "zzz")
    assert loser is not None and loser.phase == "Pending"
    bound = loser.condition("Bound")
    assert bound is not None and bound.reason == "VirtualMachineIPAddressLeaseAlreadyExists"
    assert "a/yyy" in bound.message


def test_two_statics_for_one_address_the_lease_holder_wins() -> None:
    vmips = [
        VMIPRequest("b", "zzz", STATIC, "10.0.0.9"),
        VMIPRequest("a", "yyy", STATIC, "10.0.0.9"),
    ]
    first = allocate(request(vmips=vmips[:1]))
    req = request(vmips=vmips, leases=first.previous_leases())
    result = allocate(req)
    check_invariants(req, result)
    assert result.vmip("b", "zzz").address == "10.0.0.9"  # type: ignore[union-attr]
    bound = result.vmip("a", "yyy").condition("Bound")  # type: ignore[union-attr]
    assert bound is not None and "b/zzz" in bound.message


def test_static_conflicting_with_an_auto_lease_loses() -> None:
    first = allocate(request(pool=["10.0.0.0/30"], vms=[VMRequest("ns", "a")]))
    taken = first.vms[0].address
    assert taken is not None
    req = request(
        pool=["10.0.0.0/30"],
        vms=[VMRequest("ns", "a")],
        vmips=[VMIPRequest("ns", "s", STATIC, taken)],
        leases=first.previous_leases(),
    )
    result = allocate(req)
    check_invariants(req, result)
    assert result.vm("ns", "a").address == taken  # type: ignore[union-attr]
    assert result.vmip("ns", "s").phase == "Pending"  # type: ignore[union-attr]


def test_addresses_are_stable_across_rounds_as_vms_come() -> None:
    req = request(vms=[VMRequest("ns", f"vm-{i}") for i in range(10)])
    first = allocate(req)
    more = request(
        vms=[VMRequest("ns", f"vm-{i}") for i in range(40)], leases=first.previous_leases()
    )
    second = allocate(more)
    check_invariants(more, second)
    for vm in first.vms:
        assert second.vm(vm.namespace, vm.name).address == vm.address  # type: ignore[union-attr]


def test_vm_naming_a_vmip_used_by_another_vm_waits() -> None:
    req = request(
        vms=[VMRequest("ns", "a", "shared"), VMRequest("ns", "b", "shared")],
        vmips=[VMIPRequest("ns", "shared")],
    )
    result = allocate(req)
    check_invariants(req, result)
    assert result.vm("ns", "a").address is not None  # type: ignore[union-attr]
    waiting = result.vm("ns", "b")
    assert waiting is not None and waiting.address is None
    assert "attached to VM a" in waiting.message


def test_vm_naming_a_missing_vmip() -> None:
    result = allocate(request(vms=[VMRequest("ns", "a", "nope")]))
    assert result.vm("ns", "a").address is None  # type: ignore[union-attr]
    assert "does not exist" in result.vm("ns", "a").message  # type: ignore[union-attr]
    assert result.leases == ()


def test_unused_vmip_is_bound_not_attached() -> None:
    result = allocate(request(vmips=[VMIPRequest("ns", "spare")]))
    vmip = result.vmip("ns", "spare")
    assert vmip is not None and vmip.phase == "Bound" and vmip.address is not None
    attached = vmip.condition("Attached")
    assert attached is not None and attached.reason == "VirtualMachineNotFound"


def test_same_output_whatever_the_input_order() -> None:
    vms = [VMRequest(f"ns{i % 3}", f"vm-{i}") for i in range(60)]
    vms += [VMRequest("ns0", "named", "static-a"), VMRequest("ns1", "n2", "static-b")]
    vmips = [
        VMIPRequest("ns0", "static-a", STATIC, "10.0.0.50"),
        VMIPRequest("ns1", "static-b", STATIC, "10.0.0.50"),
        VMIPRequest("ns2", "spare"),
    ]
    baseline = allocate(request(pool=["10.0.0.0/25", "10.0.1.0/26"], vms=vms, vmips=vmips))
    rng = random.Random(7)
    for _ in range(10):
        rng.shuffle(vms)
        rng.shuffle(vmips)
        pool = ["10.0.1.0/26", "10.0.0.0/25"]
        rng.shuffle(pool)
        assert allocate(request(pool=pool, vms=vms, vmips=vmips)) == baseline


def test_nested_cidrs_do_not_double_an_address() -> None:
    vms = [VMRequest("ns", f"vm-{i}") for i in range(300)]
    req = request(pool=["10.0.0.0/24", "10.0.0.0/25", "10.0.0.128/26"], vms=vms)
    result = allocate(req)
    check_invariants(req, result)
    assert sum(1 for vm in result.vms if vm.address) == 254


def test_empty_pool_leaves_everything_pending() -> None:
    result = allocate(request(pool=["10.0.0.0/31"], vms=[VMRequest("ns", "a")]))
    assert result.vms[0].address is None and "exhausted" in result.vms[0].message


def test_status_documents() -> None:
    result = allocate(request(vms=[VMRequest("ns", "a")]))
    (lease,) = result.leases
    document = lease.as_dict()
    assert document["virtualMachineIPAddressRef"] == {"namespace": "ns", "name": lease.vmip_name}
    vmip = result.vmips[0].as_dict("2026-01-01T00:00:00Z")
    assert vmip["phase"] == "Attached" and vmip["virtualMachineName"] == "a"
    assert [c["type"] for c in vmip["conditions"]] == ["Bound", "Attached"]
