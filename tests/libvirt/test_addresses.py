"""IP addresses through whole passes on libvirt's test driver: the allocation in the
status reports and the DHCP reservations on the host's network (issue 5)."""

from __future__ import annotations

import ipaddress
import itertools
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import libvirt
import pytest

from reconciler.api import ObjectId
from reconciler.ipam.naming import generated_vmip_name, probe_start
from reconciler.ipam.pool import AddressPool
from reconciler.libvirt.connection import open_connection
from reconciler.libvirt.observe import Observer
from reconciler.model.names import domain_mac
from reconciler.reports.documents import read_document
from tests.hosts import Host, vm_yaml
from tests.libvirt.conftest import HOST_XML

# The test driver's network is 192.168.122.0/24 with the host on .1 (its gateway).
SMALL_POOL = (ipaddress.IPv4Network("192.168.122.0/29"),)  # .1-.6, .1 being the gateway
VMIP_STATIC = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineIPAddress
metadata:
  name: {name}
  namespace: default
  annotations: {annotations}
spec:
  type: Static
  staticIP: {ip}
"""


def vm_with_vmip(name: str, vmip: str) -> str:
    return vm_yaml(name).replace(
        "  virtualMachineClassName: generic",
        f"  virtualMachineClassName: generic\n  virtualMachineIPAddressName: {vmip}",
        1,
    )


def reservations(host: Host) -> dict[str, tuple[str, str]]:
    """The network's DHCP hosts: name -> (mac, ip)."""
    network = Observer(host.connection).network("default")
    assert network is not None
    return {r.name: (r.mac, r.ip) for r in network.reservations}


def status(host: Host, *parts: str) -> dict[str, Any]:
    document = read_document(host.repo.joinpath("status", *parts))
    assert isinstance(document, dict), f"no report status/{'/'.join(parts)}"
    return document["status"]


def vm_status(host: Host, name: str) -> dict[str, Any]:
    return status(host, "virtualmachines", "default", f"{name}.yaml")


def lease(host: Host, address: str) -> dict[str, Any]:
    return status(
        host, "virtualmachineipaddressleases", "ip-" + address.replace(".", "-") + ".yaml"
    )


def step(host: Host) -> list[Path]:
    """One pass, then its reports written, as the daemon does."""
    result, _ = host.reconcile()
    assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]
    return host.write_statuses(result)


@pytest.fixture
def ipam_host(host: Host) -> Host:
    host.cidrs = SMALL_POOL
    return host


def test_a_vm_gets_an_address_its_reservation_and_the_reports(ipam_host: Host) -> None:
    host = ipam_host
    host.write("vm.yaml", vm_yaml("web"))
    step(host)
    reported = vm_status(host, "web")
    address = reported["ipAddress"]
    vmip = reported["virtualMachineIPAddressName"]
    assert vmip == generated_vmip_name("default", "web")
    assert ipaddress.IPv4Address(address) in SMALL_POOL[0]
    assert address not in ("192.168.122.0", "192.168.122.1", "192.168.122.7")
    # Delivered by the network's own DHCP: this VM's MAC gets exactly that address.
    mac = host.domain("web.default").XMLDesc(0).split("<mac address='")[1][:17]
    assert reservations(host)["web.default"] == (mac, address)
    vmip_report = status(host, "virtualmachineipaddresses", "default", f"{vmip}.yaml")
    assert vmip_report["phase"] == "Attached"
    assert vmip_report["address"] == address
    assert vmip_report["virtualMachineName"] == "web"
    bound = lease(host, address)
    assert bound["phase"] == "Bound"
    assert bound["virtualMachineIPAddressRef"] == {"namespace": "default", "name": vmip}
    # Nothing changes on the next pass, and no report is rewritten.
    assert step(host) == []


def test_the_pool_filled_to_the_last_address_leaves_the_next_vm_pending(ipam_host: Host) -> None:
    host = ipam_host
    usable = AddressPool(SMALL_POOL, (ipaddress.IPv4Address("192.168.122.1"),)).size - 1
    names = [f"vm{i}" for i in range(usable + 1)]
    for name in names:
        host.write(f"{name}.yaml", vm_yaml(name))
    step(host)
    addresses = {name: vm_status(host, name).get("ipAddress") for name in names}
    given = [a for a in addresses.values() if a]
    assert len(given) == usable == 5
    assert len(set(given)) == len(given), "an address was given twice"
    assert "192.168.122.1" not in given  # the network's gateway
    (waiting,) = [name for name, a in addresses.items() if not a]
    reported = vm_status(host, waiting)
    assert reported["phase"] == "Pending"
    ready = {c["type"]: c for c in reported["conditions"]}["VirtualMachineIPAddressReady"]
    assert ready["status"] == "False"
    assert "pool is exhausted" in ready["message"]
    assert not host.domain(f"{waiting}.default").isActive()
    assert f"{waiting}.default" not in reservations(host)


def test_a_deleted_vm_keeps_its_address_for_its_namespace_for_ten_minutes(
    ipam_host: Host,
) -> None:
    host = ipam_host
    host.write("web.yaml", vm_yaml("web"))
    host.write("db.yaml", vm_yaml("db"))
    step(host)
    address = vm_status(host, "web")["ipAddress"]
    host.remove("web.yaml")
    step(host)
    released = lease(host, address)
    assert released["phase"] == "Released"
    assert released["virtualMachineIPAddressRef"] == {"namespace": "default"}
    assert "web.default" not in reservations(host)  # removed live from the network
    vmip = generated_vmip_name("default", "web")
    assert not (host.repo / "status/virtualmachineipaddresses/default" / f"{vmip}.yaml").exists()

    # Within the retention, a VM of the same name comes back to the same address.
    host.now += timedelta(minutes=5)
    host.write("web.yaml", vm_yaml("web"))
    step(host)
    assert vm_status(host, "web")["ipAddress"] == address
    assert lease(host, address)["phase"] == "Bound"

    # Deleted again: after 10 minutes the lease is gone and the address free.
    host.remove("web.yaml")
    step(host)
    host.now += timedelta(minutes=9)
    step(host)
    assert lease(host, address)["phase"] == "Released"
    host.now += timedelta(minutes=2)
    step(host)
    assert (
        not (host.repo / "status/virtualmachineipaddressleases")
        .joinpath("ip-" + address.replace(".", "-") + ".yaml")
        .exists()
    )


def test_a_retained_vmip_outlives_its_vm_and_is_named_by_a_new_one(ipam_host: Host) -> None:
    host = ipam_host
    retained = VMIP_STATIC.format(
        name="web-ip",
        ip="192.168.122.5",
        annotations='{"virtualization.deckhouse.io/retain": "true"}',
    )
    host.write("ip.yaml", retained)
    host.write("web.yaml", vm_with_vmip("web", "web-ip"))
    step(host)
    assert vm_status(host, "web")["ipAddress"] == "192.168.122.5"
    host.remove("web.yaml")
    step(host)
    kept = status(host, "virtualmachineipaddresses", "default", "web-ip.yaml")
    assert kept["phase"] == "Bound"  # leased, attached to nothing
    assert lease(host, "192.168.122.5")["phase"] == "Bound"
    host.write("api.yaml", vm_with_vmip("api", "web-ip"))
    step(host)
    assert vm_status(host, "api")["ipAddress"] == "192.168.122.5"
    assert reservations(host)["api.default"][1] == "192.168.122.5"


def test_two_static_vmips_for_one_address_one_wins_and_the_other_says_why(
    ipam_host: Host,
) -> None:
    host = ipam_host
    host.write("a.yaml", VMIP_STATIC.format(name="a-ip", ip="192.168.122.4", annotations="{}"))
    host.write("b.yaml", VMIP_STATIC.format(name="b-ip", ip="192.168.122.4", annotations="{}"))
    host.write("vm-a.yaml", vm_with_vmip("vm-a", "a-ip"))
    host.write("vm-b.yaml", vm_with_vmip("vm-b", "b-ip"))
    result, _ = host.reconcile()
    host.write_statuses(result)
    # `validate` flags the duplicate too; at run time the earlier name wins.
    loser = status(host, "virtualmachineipaddresses", "default", "b-ip.yaml")
    assert loser["phase"] == "Pending"
    assert "a-ip" in {c["type"]: c for c in loser["conditions"]}["Bound"]["message"]
    assert status(host, "virtualmachineipaddresses", "default", "a-ip.yaml")["address"] == (
        "192.168.122.4"
    )


def _colliding_names() -> tuple[str, str]:
    """Two VM names whose generated vmips start probing at the same address."""
    size = AddressPool(SMALL_POOL, ()).size
    seen: dict[int, str] = {}
    for i in itertools.count():
        name = f"app{i}"
        start = probe_start("default", generated_vmip_name("default", name), size)
        if start in seen:
            return seen[start], name
        seen[start] = name
    raise AssertionError("unreachable")


def test_a_lost_status_tree_does_not_move_a_running_guests_address(ipam_host: Host) -> None:
    host = ipam_host
    first, second = _colliding_names()
    later, earlier = sorted((first, second), reverse=True)
    # The later name (in sort order) arrives first and takes the contested address.
    host.write(f"{later}.yaml", vm_yaml(later))
    step(host)
    host.write(f"{earlier}.yaml", vm_yaml(earlier))
    step(host)
    before = {n: vm_status(host, n)["ipAddress"] for n in (earlier, later)}
    shutil.rmtree(host.repo / "status")
    step(host)
    after = {n: vm_status(host, n)["ipAddress"] for n in (earlier, later)}
    assert after == before
    assert {n: reservations(host)[f"{n}.default"][1] for n in before} == before


def test_an_unreadable_manifest_releases_nothing(ipam_host: Host) -> None:
    host = ipam_host
    host.write("web.yaml", vm_yaml("web"))
    host.write("db.yaml", vm_yaml("db"))
    step(host)
    address = vm_status(host, "web")["ipAddress"]
    host.write("web.yaml", "this: [is not yaml\n")
    step(host)
    assert lease(host, address)["phase"] == "Bound"
    assert reservations(host)["web.default"][1] == address
    # db still has its address and keeps running.
    assert vm_status(host, "db")["ipAddress"]


def test_every_host_writes_the_same_address_reports(ipam_host: Host, tmp_path: Path) -> None:
    host = ipam_host
    host.write("web.yaml", vm_yaml("web"))
    host.write("db.yaml", vm_yaml("db"))
    step(host)
    # Another host's checkout of the same revision and reports, on its own libvirt.
    other_repo = tmp_path / "other"
    shutil.copytree(host.repo, other_repo)
    other_connection = open_connection(f"test://{HOST_XML}")
    try:
        other = Host(other_repo, other_connection, node_name="hv2", cidrs=SMALL_POOL, now=host.now)
        changed = step(other)
    finally:
        other_connection.close()
    assert (other_repo / "status/virtualmachineipaddressleases").is_dir()
    address_reports = [p for p in changed if "virtualmachineipaddress" in p.as_posix()]
    assert address_reports == []


def test_reservations_made_by_hand_are_left_alone(ipam_host: Host) -> None:
    host = ipam_host
    network = host.connection.networkLookupByName("default")
    network.update(
        libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
        libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
        -1,
        "<host mac='52:54:00:00:00:01' name='printer.lab' ip='192.168.122.200'/>",
        libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG,
    )
    # Named like one of ours, but its MAC is not the one derived from that VM.
    assert domain_mac(ObjectId("VirtualMachine", "lab", "printer")) != "52:54:00:00:00:01"
    host.write("web.yaml", vm_yaml("web"))
    step(host)
    assert reservations(host)["printer.lab"] == ("52:54:00:00:00:01", "192.168.122.200")


def test_without_a_pool_there_is_no_addressing(host: Host) -> None:
    host.write("web.yaml", vm_yaml("web"))
    step(host)
    assert "ipAddress" not in vm_status(host, "web")
    assert reservations(host) == {}
    assert not (host.repo / "status/virtualmachineipaddressleases").exists()
