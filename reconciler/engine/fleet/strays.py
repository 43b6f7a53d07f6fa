"""Anti-entropy: the domains this host has of VMs another host of the fleet runs.

A domain found here is this host's to run and report (assignment.py) unless the fleet's
latest report of its VM names another host of the fleet and no live migration brings it
here. Then the copy here is a stray, of one of two kinds:

- Duplicate: the copy's own record says a live migration sent it away
  (`NS/NAME:started>NODE`, its last migration, NODE another host), and another host
  reports the VM: the copy there is the newer one, and this one was left behind (a host
  that crashed mid-migration, after the guest had resumed on the destination). This
  copy is paused if it runs: two instances of one guest would answer at one MAC and
  address and, on a shared pool, write one disk.
- Owned elsewhere: nothing says why it is here (a host back after the fleet moved on,
  a domain defined by hand). It is left exactly as it is, running or not.

A stray is never started, defined, migrated or undefined by this host, and its disks
are kept: the operator resolves it (`status/nodes/HOST.yaml`'s `strayDomains`, the
plan's notes). A copy whose record says a migration brought it here (`started>HERE`,
not yet recorded completed) is the newer one, and this host keeps it.

How the hosts agree without seeing each other's domains: the host the report names
keeps the VM; any other host yields unless its copy arrived by migration. The copy the
report names is either the destination of that copy's migration (which then claims it
too, and takes the report over) or the one every host already defers to.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from reconciler.api import ObjectId, VirtualMachine
from reconciler.engine.operations.execute import migration_targets
from reconciler.model.actions import PauseDomain
from reconciler.model.domain import ObservedDomain, PowerState


class StrayKind(StrEnum):
    DUPLICATE = "Duplicate"
    OWNED_ELSEWHERE = "OwnedElsewhere"


@dataclass(frozen=True)
class StrayDomain:
    domain: str
    vm: ObjectId
    node: str  # the host of the fleet the VM's latest report names
    kind: StrayKind
    migrated_to: str = ""  # a duplicate's: where its record says it was sent

    @property
    def message(self) -> str:
        vm = f"{self.vm.namespace}/{self.vm.name}"
        if self.kind is StrayKind.DUPLICATE:
            return (
                f"domain {self.domain} is an older copy of VirtualMachine {vm}: a live"
                f" migration sent it to {self.migrated_to} and {self.node} runs the VM now;"
                " it is paused here and kept with its disks: remove it"
                f" (virsh destroy, virsh undefine) once the VM on {self.node} is checked"
            )
        return (
            f"domain {self.domain} is a copy of VirtualMachine {vm}, which {self.node}"
            " runs, and no migration brings it here: it is left as it is, with its"
            " disks; remove it (virsh destroy, virsh undefine) if it is not needed"
        )

    def report(self) -> dict[str, str]:
        """Its entry in the host's Node report."""
        return {
            "name": self.domain,
            "virtualMachine": f"{self.vm.namespace}/{self.vm.name}",
            "node": self.node,
            "reason": str(self.kind),
            "message": self.message,
        }


def stray_of(
    observed: ObservedDomain,
    vm_id: ObjectId,
    *,
    local: str,
    members: Collection[str],
    reported_nodes: Mapping[ObjectId, str],
    reported_migrations: Mapping[ObjectId, str],
) -> StrayDomain | None:
    """Whether this host's copy of a VM of the revision belongs to another host (None:
    it is this host's)."""
    holder = reported_nodes.get(vm_id, "")
    if not holder or holder == local or holder not in members:
        # No other host of the fleet claims it: a report naming a host that left the
        # fleet does not hold a VM (the schedule places it anew).
        return None
    if reported_migrations.get(vm_id) == local:
        return None  # arriving by a migration the report announces
    meta = observed.config.metadata or (observed.live.metadata if observed.live else None)
    moves = list(migration_targets(meta).values())
    last_move = moves[-1] if moves else ""
    if last_move == local:
        return None  # arrived by migration: the newer copy, which takes the report over
    if last_move:
        return StrayDomain(observed.name, vm_id, holder, StrayKind.DUPLICATE, last_move)
    return StrayDomain(observed.name, vm_id, holder, StrayKind.OWNED_ELSEWHERE)


def find_strays(
    domains: Mapping[str, ObservedDomain],
    wanted: Collection[str],
    *,
    local: str,
    members: Collection[str],
    reported_nodes: Mapping[ObjectId, str],
    reported_migrations: Mapping[ObjectId, str],
) -> dict[str, StrayDomain]:
    """The strays among this host's domains, by domain name. `wanted`: the domain names
    of the revision's VMs (a domain whose VM is gone is deletions.py's)."""
    if not reported_nodes:
        return {}
    found: dict[str, StrayDomain] = {}
    for name, observed in sorted(domains.items()):
        owner = observed.owner
        if owner is None or owner[0] != VirtualMachine.KIND or name not in wanted:
            continue
        stray = stray_of(
            observed,
            ObjectId(*owner),
            local=local,
            members=members,
            reported_nodes=reported_nodes,
            reported_migrations=reported_migrations,
        )
        if stray is not None:
            found[name] = stray
    return found


def pauses(
    strays: Mapping[str, StrayDomain], domains: Mapping[str, ObservedDomain]
) -> list[PauseDomain]:
    """The pass's only actions on strays: a running duplicate is paused."""
    return [
        PauseDomain(stray.vm, name, f"an older copy of a VM {stray.node} runs")
        for name, stray in sorted(strays.items())
        if stray.kind is StrayKind.DUPLICATE
        and domains[name].state in (PowerState.RUNNING, PowerState.BLOCKED)
    ]
