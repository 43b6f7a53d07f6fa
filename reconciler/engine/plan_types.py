"""What the planner takes and gives: its inputs (PlanContext, Observation) and its
result (Plan, one VMPlan per object, each with its Outcome), and the VMs an earlier
plan of the same pass found settled (Settled).

Values only: the steps of plan.py read them and return new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from reconciler.api import ObjectId
from reconciler.engine.devices.disks import DiskRecord
from reconciler.engine.devices.storage import ImageSourceFacts
from reconciler.engine.fleet.placement import FleetNode
from reconciler.engine.fleet.schedule import Schedule
from reconciler.engine.network.addressing import Addressing, AddressInputs, NetworkFacts
from reconciler.engine.operations.execute import ReportedOperation
from reconciler.engine.operations.generated import GeneratedOperation
from reconciler.engine.vm.changes import ChangeTable
from reconciler.engine.vm.desired import HostContext
from reconciler.findings import Finding
from reconciler.model.actions import Action
from reconciler.model.domain import ObservedDomain, PowerState, VolumeFacts
from reconciler.model.names import seed_volume_owner
from reconciler.model.status import VMStatus
from reconciler.policies import TopologyPolicy
from reconciler.rules.inventory import Inventory

if TYPE_CHECKING:  # strays.py plans with the types of this module
    from reconciler.engine.fleet.strays import StrayDomain


# How far a long pass is, for the caller to show (reconciler.progress): (stage, done,
# total), "VMs planned", 340, 1000. The engine only calls it; the caller decides
# whether and where it is shown.
Step = Callable[[str, int, int], None]


def no_step(_stage: str, _done: int, _total: int) -> None:
    """The Step of a caller that shows no progress."""


class Outcome(StrEnum):
    """What a pass does to one VM, in the words of `reconciler plan`."""

    CREATED = "created"
    CHANGED_LIVE = "changed live"
    AWAITING_RESTART = "awaiting restart"
    RESTARTED = "restarted"
    STARTED = "started"
    STOPPED = "stopped"
    MIGRATING = "migrating"
    DELETED = "deleted"
    REDEFINED = "redefined"
    BLOCKED = "blocked"
    SUSPENDED = "suspended"
    UNCHANGED = "unchanged"

    def upgraded(self, to: Outcome) -> Outcome:
        """The outcome once a later step of the VM's plan does `to`: a VM left as it
        was, or only given its next-boot definition again, is better described by what
        the step does to it; anything else the plan already does stands."""
        return to if self is Outcome.UNCHANGED or self is Outcome.REDEFINED else self


@dataclass(frozen=True)
class Observation:
    domains: Mapping[str, ObservedDomain]
    volumes: Mapping[tuple[str, str], VolumeFacts]
    # The host's network for the VMs' NICs; None when none is configured or it is missing.
    network: NetworkFacts | None = None
    # The files of the images the revision needs that are not imported yet, by path.
    image_sources: Mapping[str, ImageSourceFacts] = field(default_factory=dict)

    def without_arriving(self) -> Observation:
        """The observation without the domains a live migration is moving: one arriving
        here (ours and not yet persistent: libvirt makes it persistent once the guest
        runs here; till then the source host reports it) and one that has left (shut off
        by the migration, about to be undefined: the guest runs on the destination).
        Nothing here may touch either: starting a departed one again would run the
        guest twice."""
        moving = [
            name
            for name, observed in self.domains.items()
            if observed.owner is not None
            and (
                not observed.persistent
                or (observed.state is PowerState.SHUTOFF and observed.reason == "migrated")
            )
        ]
        if not moving:
            return self
        kept = {n: o for n, o in self.domains.items() if n not in moving}
        return replace(self, domains=kept)

    @cached_property
    def seed_volumes(self) -> Mapping[str, tuple[tuple[str, str], ...]]:
        """The pools' seed volumes by the prefix of the VM they belong to: every VM looks
        its own up, so this is built once rather than scanned for each."""
        found: dict[str, list[tuple[str, str]]] = {}
        for pool, volume in sorted(self.volumes):
            owner = seed_volume_owner(volume)
            if owner is not None:
                found.setdefault(owner, []).append((pool, volume))
        return {prefix: tuple(volumes) for prefix, volumes in found.items()}


@dataclass
class VMPlan:
    """One object's part of the plan: its actions in the order they run, and what
    `reconciler plan` says about them. Made once, when its steps are decided, and not
    changed after (not frozen only because a frozen dataclass is slower to make, and
    one is made for every VM on every pass)."""

    object_id: ObjectId
    outcome: Outcome
    actions: list[Action] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


@dataclass
class Plan:
    vms: list[VMPlan] = field(default_factory=list)
    statuses: dict[ObjectId, VMStatus] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The deletions a whole revision would make, held back because this one has
    # unreadable files or no objects at all (SPEC §10): the daemon and `apply` say so.
    held_back: list[str] = field(default_factory=list)
    # The `status:` documents of the other objects this host reports (operations, disks,
    # attachments: those of the VMs it runs), by object; written beside the VM reports.
    object_reports: dict[ObjectId, dict[str, Any]] = field(default_factory=dict)
    # The operations hosts made (operations/generated.py) whose reports carry them whole,
    # and those of this host's that are finished with: their reports go.
    generated_operations: dict[ObjectId, GeneratedOperation] = field(default_factory=dict)
    retired_operations: frozenset[ObjectId] = frozenset()
    # The Node report's `drain` while this host's Node is in maintenance (fleet/evacuation.py).
    drain: dict[str, Any] | None = None
    # The domains here of VMs another host runs (fleet/strays.py): the Node report lists them.
    strays: list[StrayDomain] = field(default_factory=list)

    @property
    def actions(self) -> list[Action]:
        return [action for vm in self.vms for action in vm.actions]

    @property
    def has_changes(self) -> bool:
        return any(vm.actions for vm in self.vms)


@dataclass(frozen=True)
class PlanContext:
    inventory: Inventory
    findings: list[Finding]
    broken: frozenset[ObjectId]
    # The findings of the files that yield no object (broken YAML, a file that cannot be
    # read): while there is any, the revision may be missing anything, so nothing is deleted.
    unreadable_files: tuple[Finding, ...]
    topology: TopologyPolicy
    change_table: ChangeTable
    host: HostContext
    revision: str
    # Whether statuses show what this plan is about to do (Starting, Stopping);
    # off when describing the host after the plan was applied.
    anticipate: bool = True
    # The fleet (placement.fleet) and where the latest status reports say each
    # VM runs; empty for a fleet of one.
    fleet: tuple[FleetNode, ...] = ()
    reported_nodes: Mapping[ObjectId, str] = field(default_factory=dict)
    # IP address management: its inputs (None: no pool configured, no addresses), and
    # the pass's allocation once reconcile.with_addressing has made it.
    addresses: AddressInputs | None = None
    addressing: Addressing | None = None
    # The disks the latest reports list, by volume name: which volumes of deleted
    # disks may go (devices/disks.py).
    disk_records: Mapping[str, DiskRecord] = field(default_factory=dict)
    # The latest reports of VirtualMachineOperations: a final one is never run again.
    operation_reports: Mapping[ObjectId, ReportedOperation] = field(default_factory=dict)
    # VMs whose latest report says they are migrating, and to which node.
    reported_migrations: Mapping[ObjectId, str] = field(default_factory=dict)
    # Why the live migrations of this process failed, by operation (NAMESPACE/NAME).
    migration_failures: Mapping[str, str] = field(default_factory=dict)
    # The fleet's schedule of this pass (fleet/assignment.py), once plan() has made it.
    fleet_schedule: Schedule | None = None

    @property
    def whole_revision(self) -> bool:
        """Whether the revision may delete: every file read, and some object in it
        (SPEC §10); otherwise it may be missing anything, so nothing goes."""
        return not self.unreadable_files and bool(self.inventory.objects)

    @cached_property
    def members(self) -> tuple[FleetNode, ...]:
        """The fleet's nodes; this host alone for a fleet of one."""
        return self.fleet or (FleetNode(self.host.node_name, dict(self.host.node_labels)),)

    @property
    def first_member(self) -> bool:
        """Whether this host is the fleet's first node: the one that reports what no
        host runs."""
        return self.members[0].name == self.host.node_name


@dataclass(frozen=True)
class Settled:
    """The VMs a plan found with nothing to do, and the observation it read them from.

    The second plan of a pass (after the actions) keeps such a VM as it was planned
    wherever the pass did not read its domain again: its inputs are the very same
    objects, and the planner gives the same inputs the same plan (plan.py's docstring).
    A VM with anything to do, or anything to explain, is planned again.
    """

    observation: Observation
    vms: Mapping[ObjectId, tuple[VMPlan, VMStatus]]

    @classmethod
    def of(cls, done: Plan, observation: Observation) -> Settled:
        return cls(
            observation,
            {
                vm.object_id: (vm, done.statuses[vm.object_id])
                for vm in done.vms
                if vm.outcome in _SETTLED_OUTCOMES
                and not vm.actions
                and not vm.details
                and vm.object_id in done.statuses
            },
        )

    def applies_to(self, observation: Observation) -> bool:
        """Whether the pool, the network and the image files are the ones read before:
        every VM depends on them, so when the pass read one again, all are planned anew."""
        before = self.observation
        return (
            observation.volumes is before.volumes
            and observation.network is before.network
            and observation.image_sources is before.image_sources
        )

    def kept(
        self, vm_id: ObjectId, name: str, observation: Observation
    ) -> tuple[VMPlan, VMStatus] | None:
        entry = self.vms.get(vm_id)
        if entry is None:
            return None
        before = self.observation.domains.get(name)
        if before is None or observation.domains.get(name) is not before:
            return None
        return entry


_SETTLED_OUTCOMES = frozenset({Outcome.UNCHANGED, Outcome.AWAITING_RESTART})
