"""Two hosts, each with its daemon, one repository (issue 14): an Evict committed to Git
moves a running guest from host A to host B by live migration, and Git tells the story.

The hosts and daemons are tests/e2e/fleet_daemons.py's (the `two_hosts` fixture).
"""

from __future__ import annotations

import pytest

from tests.daemonlab import wait_until

from .fleet_daemons import (
    VM,
    TwoHosts,
    domain_of,
    evict,
    guest_running_on_a,
    moved_to_b,
    vm_report_path,
)
from .fleet_guests import domain_names

pytestmark = pytest.mark.e2e

DOMAIN = domain_of(VM)


def test_an_evicted_guest_moves_to_the_other_host_and_git_tells_the_story(
    two_hosts: TwoHosts,
) -> None:
    hosts = two_hosts
    # given a running guest on host A
    before = guest_running_on_a(hosts)
    # when B returns to service and an Evict is committed
    evict(hosts)
    # then the VM runs on B, the same boot, with its disk, gone from A, the Evict Completed
    moved_to_b(hosts, before)
    # and Git shows Migrating (on hosta, to hostb) before Running on hostb
    history = hosts.history(vm_report_path(VM))
    phases = [(s.get("phase"), s.get("nodeName")) for s in history]
    migrating = phases.index(("Migrating", "hosta"))
    assert history[migrating]["migrationState"]["target"] == {"node": "hostb"}
    assert ("Running", "hostb") in phases[migrating:]


def test_a_source_daemon_killed_during_the_migration_moves_the_guest_exactly_once(
    two_hosts: TwoHosts,
) -> None:
    hosts = two_hosts
    before = guest_running_on_a(hosts)
    a = hosts.daemons["hosta"]
    # when A's daemon is SIGKILLed as libvirt begins the migration, and started again
    evict(hosts)
    wait_until("the migration to begin", lambda: "migration of mover.fleet" in a.log_text(), 60)
    a.kill()
    a.start()
    a.wait_ready()
    # then the guest ends up on B once: the same boot, its disk, the Evict Completed
    # (the daemon that began it died: libvirt finished it, and A's old copies stay)
    moved_to_b(hosts, before, source_cleaned=False)
    assert domain_names(hosts.fleet.connections[1]) == [DOMAIN]
