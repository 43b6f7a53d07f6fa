"""Maintenance mode across two daemons (issue 14): `reconciler node drain hosta` commits
`spec.unschedulable: true`, hosta's daemon makes `evacuation-…` Evicts itself, two at a
time, every running VM moves to hostb by live migration, and hosta's Node report says
Drained; `uncordon` returns it to service and its evacuations' reports go.

The hosts and daemons are tests/e2e/fleet_daemons.py's (the `two_hosts` fixture).
"""

from __future__ import annotations

import subprocess
import sys

import libvirt
import pytest

from tests.hosts import CLASS

from .fleet import IMAGES
from .fleet_daemons import NAMESPACE, TwoHosts, domain_of, fleet_vm_yaml
from .fleet_guests import boot_id, domain_names
from .lab import wait_for_agent

pytestmark = pytest.mark.e2e

VMS = ("drain-1", "drain-2", "drain-3")
ACTIVE = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE


def node_command(hosts: TwoHosts, action: str, node: str) -> str:
    """`reconciler node ACTION NODE` against the remote, as an operator runs it."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "node",
            action,
            node,
            "--repo",
            str(hosts.remote.bare),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout + done.stderr


def node_report(hosts: TwoHosts, node: str) -> dict[str, object]:
    document = hosts.remote.document(f"status/nodes/{node}.yaml") or {}
    status = document.get("status")
    return status if isinstance(status, dict) else {}


def evacuation_reports(hosts: TwoHosts) -> dict[str, dict[str, object]]:
    """The evacuation operations in the remote's status tree, by name."""
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", "main", f"status/virtualmachineoperations/{NAMESPACE}/"],
        cwd=hosts.remote.bare,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    found = {}
    for path in listing:
        name = path.rsplit("/", 1)[-1].removesuffix(".yaml")
        if name.startswith("evacuation-"):
            found[name] = hosts.remote.document(path) or {}
    return found


def test_a_drained_host_moves_every_running_vm_to_the_other_and_says_drained(
    two_hosts: TwoHosts,
) -> None:
    hosts = two_hosts
    fleet = hosts.fleet
    # given three VMs running on hosta (hostb cordoned while they were placed)
    hosts.operator.write("class.yaml", CLASS)
    hosts.nodes(b_schedulable=False)
    for vm in VMS:
        hosts.operator.write(f"vms/{vm}.yaml", fleet_vm_yaml(fleet, vm))
    hosts.operator.commit_and_push("three VMs on hosta")
    hosts.start()
    for vm in VMS:
        hosts.until(
            f"{vm} Running on hosta", lambda vm=vm: hosts.placed(vm) == ("Running", "hosta"), 180
        )
    boots = {}
    for vm in VMS:
        domain = fleet.connections[0].lookupByName(domain_of(vm))
        wait_for_agent(domain)
        boots[vm] = boot_id(domain)
    # when hostb returns to service and hosta is drained, each by `reconciler node`
    node_command(hosts, "uncordon", "hostb")
    said = node_command(hosts, "drain", "hosta")
    assert "hosta" in said
    for daemon in hosts.daemons.values():
        assert daemon.push_hook() == 202
    # then every VM runs on hostb, the same boot, and none is left on hosta
    for vm in VMS:
        hosts.until(
            f"{vm} Running on hostb", lambda vm=vm: hosts.placed(vm) == ("Running", "hostb"), 300
        )
    hosts.until(
        "hosta has no domain left",
        lambda: not [n for n in domain_names(fleet.connections[0]) if n.endswith(NAMESPACE)],
        60,
    )
    hosts.until(
        "hosta's copies of the VMs' volumes deleted",
        lambda: not [p for p in fleet.a.outside(IMAGES).iterdir() if "drain-" in p.name],
        60,
    )
    for vm in VMS:
        on_b = fleet.connections[1].lookupByName(domain_of(vm))
        wait_for_agent(on_b)
        assert boot_id(on_b) == boots[vm]
    # and hosta's Node report says Drained, after saying how it went
    hosts.until(
        "hosta's Node report says Drained",
        lambda: (node_report(hosts, "hosta").get("drain") or {}).get("phase") == "Drained",
        120,
    )  # type: ignore[union-attr]
    drains = [s.get("drain") for s in hosts.history("status/nodes/hosta.yaml")]
    phases = [d.get("phase") for d in drains if isinstance(d, dict)]
    assert "Draining" in phases and phases[-1] == "Drained"
    most_at_once = max(len(d.get("migrating", [])) for d in drains if isinstance(d, dict))
    assert 1 <= most_at_once <= 2

    # and an evacuation Evict per VM is in Git, Completed (by hostb, which may write the
    # last one after hosta's Drained), made by hosta
    def all_completed() -> bool:
        found = evacuation_reports(hosts).values()
        return len(found) == len(VMS) and all(
            (d.get("status") or {}).get("phase") == "Completed"  # type: ignore[union-attr]
            for d in found
        )

    hosts.until("every evacuation reported Completed", all_completed, 60)
    evacuations = evacuation_reports(hosts)
    assert sorted(e["spec"]["virtualMachineName"] for e in evacuations.values()) == sorted(VMS)  # type: ignore[index]
    for document in evacuations.values():
        assert document["status"]["phase"] == "Completed"  # type: ignore[index]
        labels = document["metadata"]["labels"]  # type: ignore[index]
        assert labels["reconciler.vm-gitops.io/origin-node"] == "hosta"
    # when hosta is uncordoned
    node_command(hosts, "uncordon", "hosta")
    for daemon in hosts.daemons.values():
        assert daemon.push_hook() == 202
    # then its report has no drain any more, its evacuations' reports are gone, and the
    # VMs stay on hostb
    hosts.until("hosta back in service", lambda: "drain" not in node_report(hosts, "hosta"), 120)
    hosts.until("the evacuations' reports removed", lambda: not evacuation_reports(hosts), 60)
    assert {vm: hosts.placed(vm)[1] for vm in VMS} == dict.fromkeys(VMS, "hostb")
