"""The destination has the last word on its capacity (issue 14): libvirt's QEMU hook on
hostb (`reconciler hook qemu`, installed as docs/install.md shows) refuses an incoming
migration that does not fit, and the source's operation fails with its reason.

Every host places from the reports in Git, which can be a pass old, and two VMs of one
drain each see room for themselves on the same host: here hostb states 1.5 GiB, and
both 1 GiB VMs of the drained hosta are sent to it at once. The hook lets the first in,
counts it, and refuses the second, which keeps running on hosta.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from tests.hosts import CLASS

from .conftest import GUEST_DIR, WORKDIR_BASE, require_built_guest
from .fleet import Fleet, fleet_lab
from .fleet_daemons import TwoHosts, domain_of, fleet_vm_yaml, two_daemons

pytestmark = pytest.mark.e2e

VMS = ("admit-1", "admit-2")
NODES = """\
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: hosta
spec:
  unschedulable: {a_drained}
  libvirtUri: qemu+tcp://hostA/system
---
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: hostb
spec:
  unschedulable: {b_cordoned}
  libvirtUri: qemu+tcp://hostB/system
  capacity:
    memory: 1536Mi
"""


@pytest.fixture(scope="module")
def hooked_fleet() -> Iterator[Fleet]:
    require_built_guest()
    with fleet_lab(GUEST_DIR, WORKDIR_BASE, qemu_hook=True) as lab:
        yield lab


@pytest.fixture
def hosts(hooked_fleet: Fleet, tmp_path: Path) -> Iterator[TwoHosts]:
    with two_daemons(hooked_fleet, tmp_path, hook_cache=True) as two:
        yield two


def running_on(hosts: TwoHosts, vm: str) -> str | None:
    for host, conn in zip(hosts.fleet.hosts, hosts.fleet.connections, strict=True):
        active = [d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]
        if domain_of(vm) in active:
            return host.name.lower()
    return None


def test_the_destination_refuses_a_migration_that_does_not_fit_and_the_source_says_why(
    hosts: TwoHosts,
) -> None:
    fleet = hosts.fleet
    # given two 1 GiB VMs running on hosta, hostb (1.5 GiB) cordoned while they were placed
    hosts.operator.write("class.yaml", CLASS)
    hosts.operator.write("nodes.yaml", NODES.format(a_drained="false", b_cordoned="true"))
    for vm in VMS:
        hosts.operator.write(f"vms/{vm}.yaml", fleet_vm_yaml(fleet, vm))
    hosts.operator.commit_and_push("two VMs on hosta")
    hosts.start()
    for vm in VMS:
        hosts.until(
            f"{vm} Running on hosta", lambda vm=vm: hosts.placed(vm) == ("Running", "hosta"), 180
        )
    # when hosta is drained and hostb returns to service
    hosts.operator.write("nodes.yaml", NODES.format(a_drained="true", b_cordoned="false"))
    hosts.push("drain hosta")
    # then one VM moves to hostb and the other, refused by hostb's hook, runs on at hosta
    hosts.until(
        "one VM on each host",
        lambda: sorted(str(running_on(hosts, vm)) for vm in VMS) == ["hosta", "hostb"],
        240,
    )

    def refused() -> str | None:
        drain = (
            (hosts.remote.document("status/nodes/hosta.yaml") or {}).get("status", {}).get("drain")
        )
        stuck = drain.get("cannotMigrate", []) if isinstance(drain, dict) else []
        return stuck[0]["reason"] if stuck else None

    reason = hosts.until("hosta's drain names the refused VM", refused, 120)
    assert "hook refused it" in reason and "Node hostb refuses" in reason, reason
    assert "PATH=" not in reason, reason
    stayed = next(vm for vm in VMS if running_on(hosts, vm) == "hosta")
    assert hosts.placed(stayed) == ("Running", "hosta")
