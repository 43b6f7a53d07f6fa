"""A VM's address, delivered for real: the tiny guest's own DHCP client receives exactly
the address in the VM's status, from the DHCP reservation the engine put on libvirt's
network (issue 5)."""

from __future__ import annotations

import ipaddress
from typing import Any

import libvirt
import pytest

from reconciler.libvirt.observe import Observer
from reconciler.reports.documents import read_document
from tests.hosts import Host, vm_yaml

from .lab import (
    LabNetwork,
    TestGuest,
    agent_command,
    console_tail,
    wait_for_agent,
    wait_for_lease,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def host(host: Host, e2e_network: LabNetwork) -> Host:
    # Below the network's dynamic range (.100-.199): an address the guest can only have
    # from its reservation, never by chance.
    host.cidrs = (ipaddress.IPv4Network(f"{e2e_network.subnet.network_address}/26"),)
    return host


def guest_ipv4(domain: libvirt.virDomain) -> set[str]:
    """The IPv4 addresses the guest itself reports on its NICs (through its agent)."""
    found: set[str] = set()
    for interface in agent_command(domain, "guest-network-get-interfaces"):
        if interface.get("name") == "lo":
            continue
        for address in interface.get("ip-addresses") or []:
            if address.get("ip-address-type") == "ipv4":
                found.add(address["ip-address"])
    return found


def vm_status(host: Host, namespace: str) -> dict[str, Any]:
    document = read_document(host.repo / "status/virtualmachines" / namespace / "web.yaml")
    assert isinstance(document, dict)
    return document["status"]


def test_the_guest_receives_exactly_the_address_in_its_status(
    host: Host, e2e_namespace: str, e2e_network: LabNetwork, guest: TestGuest
) -> None:
    host.write("vm.yaml", vm_yaml("web", namespace=e2e_namespace, kernel_boot=guest.kernel_boot()))
    result, _ = host.reconcile()
    assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]
    host.write_statuses(result)
    address = vm_status(host, e2e_namespace)["ipAddress"]
    assert ipaddress.IPv4Address(address) in host.cidrs[0]
    assert address != str(e2e_network.gateway)

    domain = host.domain(f"web.{e2e_namespace}")
    try:
        wait_for_agent(domain)
        leased = wait_for_lease(domain)
        seen = wait_until(
            "the guest's DHCP client configuring its NIC",
            lambda: guest_ipv4(domain) or None,
            30,
            interval=0.5,
        )
    except TimeoutError as error:
        pytest.fail(f"{error}; console:\n{console_tail(None)}", pytrace=False)
    assert str(leased) == address  # libvirt's dnsmasq lease table
    assert seen == {address}  # what the guest's own udhcpc configured

    # The VM deleted: its reservation leaves the running network at once.
    host.remove("vm.yaml")
    result, _ = host.reconcile()
    assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]
    network = Observer(host.connection).network(e2e_network.name)
    assert network is not None
    assert all(r.ip != address for r in network.reservations)
