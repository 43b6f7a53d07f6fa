"""How the fleet's daemons carry out an Evict (issue 14): the VM's liveMigrationPolicy
decides whether QEMU auto-converges the migration.

The hosts and daemons are tests/e2e/fleet_daemons.py's (the `two_hosts` fixture). To
look at the source's QEMU while the guest migrates, the test slows the migration down
(`slow_down_migrations`). The guests stay idle while they move (fleet-lab.md, pitfall 9).
"""

from __future__ import annotations

import pytest

from .fleet_daemons import (
    TwoHosts,
    evict,
    guest_running_on_a,
    migration_copying,
    moved_to_b,
    qemu_migration_capabilities,
    slow_down_migrations,
)

pytestmark = pytest.mark.e2e

# The VM's 1 GiB root disk is copied at this speed: over 4 s, long enough to look at
# the source's QEMU while it migrates; the idle guest's memory then takes under a second.
WATCHABLE_MIB_S = 256


@pytest.mark.parametrize(
    ("policy", "auto_converge"), [("AlwaysForced", True), ("PreferSafe", False)]
)
def test_the_live_migration_policy_decides_whether_qemu_auto_converges_the_evict(
    two_hosts: TwoHosts, policy: str, auto_converge: bool
) -> None:
    hosts = two_hosts
    # given a running guest on A whose VM has the policy, its migration slowed to watch it
    before = guest_running_on_a(hosts, spec=f"  liveMigrationPolicy: {policy}\n")
    slow_down_migrations(before.domain, WATCHABLE_MIB_S)
    # when an Evict is committed (without force)
    evict(hosts)
    # then, while libvirt moves the guest, A's QEMU auto-converges it as the policy says
    # (libvirt's job statistics show auto-converge only once it throttles, which an
    # idle guest never makes it do: fleet-lab.md, pitfall 8)
    migration_copying(hosts, before.domain)
    capabilities = qemu_migration_capabilities(before.domain)
    assert capabilities["auto-converge"] is auto_converge, capabilities
    # and the guest arrives on B, the same boot, the Evict Completed
    moved_to_b(hosts, before)
