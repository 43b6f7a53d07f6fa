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

How the hosts agree without seeing each other's domains: the host the VM's report names
keeps it and every other host yields, unless its own copy arrived by migration; then
that host claims the VM, its report replaces the other's, and the host the copy came
from (whose record says it sent it away) yields once it reads it. While the report is
still the source's `Migrating` one, the source cannot know whether the guest arrived,
and its operation's exactly-once rule decides (docs/engine.md, "Anti-entropy").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from reconciler.api import ObjectId, VirtualMachine
from reconciler.engine.operations.execute import migration_targets
from reconciler.engine.plan_types import Outcome, PlanContext, VMPlan
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


@dataclass(frozen=True)
class Strays:
    """The pass's strays, by domain name, and what the plan does about them."""

    by_domain: Mapping[str, StrayDomain]
    # A running duplicate's pause: the pass's only action on strays.
    plans: tuple[VMPlan, ...] = ()

    def owned(self, domains: Mapping[str, ObservedDomain]) -> Collection[str]:
        """The names of the domains here that are this host's."""
        return domains.keys() - self.by_domain.keys() if self.by_domain else domains

    @property
    def notes(self) -> list[str]:
        return [stray.message for stray in self.by_domain.values()]


_NONE = Strays({})


def find_strays(
    context: PlanContext, domains: Mapping[str, ObservedDomain], wanted: Collection[str]
) -> Strays:
    """The strays among this host's domains. `wanted`: the domain names of the
    revision's VMs (a domain whose VM is gone is deletions.py's)."""
    members = {member.name for member in context.members}
    if len(members) < 2 or not context.reported_nodes:
        return _NONE  # a fleet of one: no other host runs anything
    found: dict[str, StrayDomain] = {}
    for name, observed in domains.items():
        owner = observed.owner
        if owner is None or owner[0] != VirtualMachine.KIND or name not in wanted:
            continue
        stray = stray_of(
            observed,
            ObjectId(*owner),
            local=context.host.node_name,
            members=members,
            reported_nodes=context.reported_nodes,
            reported_migrations=context.reported_migrations,
        )
        if stray is not None:
            found[name] = stray
    if not found:
        return _NONE
    by_domain = dict(sorted(found.items()))
    plans = tuple(
        VMPlan(
            stray.vm,
            Outcome.SUSPENDED,
            [PauseDomain(stray.vm, name, f"an older copy of a VM {stray.node} runs")],
            [stray.message],
        )
        for name, stray in by_domain.items()
        if stray.kind is StrayKind.DUPLICATE
        and domains[name].state in (PowerState.RUNNING, PowerState.BLOCKED)
    )
    return Strays(by_domain, plans)
