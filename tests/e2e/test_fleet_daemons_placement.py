"""Where the fleet's daemons start VMs (issue 14): VM anti-affinity kept across two hosts
that agree on placement only through Git.

The hosts and daemons are tests/e2e/fleet_daemons.py's (the `two_hosts` fixture). The
guests are only started, never waited for: their boot costs the 2-core machine enough.
"""

from __future__ import annotations

import time
from functools import partial

import libvirt
import pytest

from tests.daemonlab import Daemon
from tests.hosts import CLASS

from .fleet_daemons import TwoHosts, domain_of, fleet_vm_yaml
from .fleet_guests import domain_names

pytestmark = pytest.mark.e2e

ACTIVE = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
APART = ("apart-1", "apart-2", "apart-3")  # placed in this order: the ids' order
# Each keeps away from every VM labelled app=apart on the same host, itself included
# (a VM is never its own neighbour).
STRICTLY_APART = """\
  affinity:
    virtualMachineAndPodAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - labelSelector:
            matchLabels: {app: apart}
          topologyKey: kubernetes.io/hostname
"""


def running_on(hosts: TwoHosts, vm: str) -> str | None:
    """The host whose libvirt runs the VM's domain (None: neither), failing if both do."""
    active = [
        host.name.lower()
        for host, conn in zip(hosts.fleet.hosts, hosts.fleet.connections, strict=True)
        if domain_of(vm) in [d.name() for d in conn.listAllDomains(ACTIVE)]
    ]
    assert len(active) <= 1, f"{vm} runs on {active}"
    return active[0] if active else None


def whole_passes_after(hosts: TwoHosts, moment: float) -> None:
    """Each daemon has run a whole pass that began after `moment` (wall clock): one that
    ended after it may have begun before, so it waits for the one after that."""

    def finished_after(daemon: Daemon, since: float) -> float | None:
        last = float(daemon.health()["lastPass"])
        return last if last > since else None

    for name, daemon in hosts.daemons.items():
        since = moment
        for _pass in range(2):
            assert daemon.push_hook() == 202
            since = hosts.until(
                f"a pass of {name}'s daemon", partial(finished_after, daemon, since), 60
            )


def test_vms_with_strict_anti_affinity_never_share_a_host(two_hosts: TwoHosts) -> None:
    hosts = two_hosts
    fleet = hosts.fleet
    # given three AlwaysOn VMs that must each run on a host without another of them,
    # and a fleet of two schedulable hosts
    hosts.operator.write("class.yaml", CLASS)
    hosts.nodes(b_schedulable=True)
    for vm in APART:
        text = fleet_vm_yaml(fleet, vm, labels="{app: apart}", spec=STRICTLY_APART)
        hosts.operator.write(f"vms/{vm}.yaml", text)
    hosts.operator.commit_and_push("three VMs, each on a host of its own")
    # when both hosts' daemons run
    hosts.start()
    # then the first two run, each on another host, as libvirt and the reports say
    first, second, third = APART
    hosts.until(
        "the first two reported Running",
        lambda: all(hosts.placed(vm)[0] == "Running" for vm in (first, second)),
        120,
    )
    nodes = {hosts.placed(vm)[1] for vm in (first, second)}
    assert nodes == {"hosta", "hostb"}, nodes
    for vm in (first, second):
        assert running_on(hosts, vm) == hosts.placed(vm)[1]
    # and the third, even after both hosts have seen where the others run, is Pending,
    # started on neither host, with the rule that keeps it out
    whole_passes_after(hosts, time.time())
    status = hosts.report(third)
    assert status.get("phase") == "Pending", status
    assert not status.get("nodeName"), status
    running = next(c for c in status["conditions"] if c["type"] == "Running")
    assert (running["status"], running["reason"]) == ("False", "Unschedulable"), running
    assert "virtualMachineAndPodAntiAffinity" in running["message"], running
    for conn in fleet.connections:
        assert domain_of(third) not in domain_names(conn)
