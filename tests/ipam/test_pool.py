"""The pool's index space, the next-free lookup, address parsing and the adapters."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.api import VirtualMachine, VirtualMachineIPAddress
from reconciler.api.network import RETAIN_ANNOTATION, IPAddressType
from reconciler.ipam import (
    AddressPool,
    PreviousLease,
    VMRequest,
    allocate,
    vm_requests,
    vmip_requests,
)
from reconciler.ipam.naming import address_int, address_text
from reconciler.ipam.pool import FreeIndex
from tests.ipam.helpers import T0, ip, net, request


def test_pool_index_skips_network_broadcast_and_small_prefixes() -> None:
    pool = AddressPool([net("10.0.1.0/30"), net("10.0.0.0/30"), net("10.9.0.0/31")])
    assert pool.size == 4
    usable = [address_text(pool.address(i)) for i in range(pool.size)]
    assert usable == ["10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2"]
    for index, text in enumerate(usable):
        assert pool.index(int(ip(text))) == index
    for outside in ("10.0.0.0", "10.0.0.3", "10.0.0.4", "10.9.0.0", "10.9.0.1", "9.0.0.0"):
        assert pool.index(int(ip(outside))) is None


def test_pool_problems_are_worded() -> None:
    pool = AddressPool([net("10.0.0.0/24")], [ip("10.0.0.1")])
    assert "reserved" in (pool.problem(ip("10.0.0.1")) or "")
    assert "network address" in (pool.problem(ip("10.0.0.0")) or "")
    assert "broadcast address" in (pool.problem(ip("10.0.0.255")) or "")
    assert "outside" in (pool.problem(ip("10.1.0.0")) or "")
    assert pool.problem(ip("10.0.0.2")) is None


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=64),
    taken=st.lists(st.integers(min_value=0, max_value=63)),
    start=st.integers(min_value=0, max_value=63),
)
def test_next_free_matches_a_plain_scan(size: int, taken: list[int], start: int) -> None:
    free = FreeIndex(size)
    held: set[int] = set()
    for index in taken:
        if index < size:
            free.take(index)
            held.add(index)
            if start < size:
                scan = [i for i in [*range(start, size), *range(start)] if i not in held]
                assert free.next_free(start) == (scan[0] if scan else None)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_address_int_round_trips(value: int) -> None:
    text = str(ipaddress.IPv4Address(value))
    assert address_text(value) == text
    assert address_int(text) == value


def test_address_int_is_as_strict_as_ipaddress() -> None:
    for bad in ("010.0.0.1", "1.2.3", "1.2.3.256", "0x1.2.3.4", " 1.2.3.4", "", None, "::1"):
        assert address_int(bad) is None


def test_previous_lease_round_trips_through_its_status_document() -> None:
    first = allocate(request(vms=[VMRequest("a", "vm")]))
    gone = allocate(request(leases=first.previous_leases(), now=T0 + timedelta(seconds=1)))
    for lease in (*first.leases, *gone.leases):
        again = PreviousLease.from_dict(lease.as_dict())
        assert again == PreviousLease(
            lease.address, lease.namespace, lease.vmip_name, lease.phase, lease.released_at
        )


def _vm(name: str, **spec: Any) -> VirtualMachine:
    document = {
        "apiVersion": "virtualization.deckhouse.io/v1alpha2",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "virtualMachineClassName": "generic",
            "cpu": {"cores": 1},
            "memory": {"size": "1Gi"},
            "blockDeviceRefs": [{"kind": "VirtualDisk", "name": "root"}],
            **spec,
        },
    }
    return VirtualMachine.model_validate(document)


def test_adapters_from_manifests() -> None:
    vms = vm_requests(
        [
            _vm("plain"),
            _vm("named", virtualMachineIPAddressName="mine"),
            _vm("main", networks=[{"type": "Main"}]),
        ]
    )
    assert vms == (
        VMRequest("default", "plain"),
        VMRequest("default", "named", "mine"),
        VMRequest("default", "main"),
    )
    vmip = VirtualMachineIPAddress.model_validate(
        {
            "apiVersion": "virtualization.deckhouse.io/v1alpha2",
            "kind": "VirtualMachineIPAddress",
            "metadata": {"name": "mine", "annotations": {RETAIN_ANNOTATION: "true"}},
            "spec": {"type": "Static", "staticIP": "10.0.0.7"},
        }
    )
    (converted,) = vmip_requests([vmip])
    assert converted.type is IPAddressType.STATIC and converted.static_ip == "10.0.0.7"
    assert converted.retained and converted.namespace == "default"
