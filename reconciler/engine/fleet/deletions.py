"""VMs whose manifest is gone from the revision: their domains shut down and undefined
(their disks are kept), reported Terminating until the domain is gone, and only when
the revision is whole (SPEC §10)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from reconciler.api import ObjectId
from reconciler.engine.plan_types import Observation, Outcome, PlanContext, VMPlan
from reconciler.engine.vm.lifecycle import running_metadata, terminating_status
from reconciler.model.actions import DeleteSeedVolume, UndefineDomain
from reconciler.model.cpu import millicores_of
from reconciler.model.names import seed_volume_prefix
from reconciler.model.status import VMStatus


@dataclass(frozen=True)
class Deletions:
    vms: list[VMPlan] = field(default_factory=list)
    statuses: dict[ObjectId, VMStatus] = field(default_factory=dict)
    # The domain names undefined in this pass.
    undefined: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    held_back: tuple[str, ...] = ()


_NONE = Deletions()


def plan_deletions(
    context: PlanContext, observation: Observation, desired_names: Collection[str]
) -> Deletions:
    """The undefinition of the domains of this project whose VM is not in the revision
    (`desired_names`: the domain names of the revision's VMs, valid or broken)."""
    orphans = [
        observed
        for name, observed in sorted(observation.domains.items())
        if name not in desired_names and observed.owner and observed.owner[0] == "VirtualMachine"
    ]
    if not orphans:
        return _NONE
    if not context.whole_revision:
        return Deletions(
            notes=(
                f"{len(orphans)} domain(s) have no manifest, but this revision has unreadable"
                " files or no objects at all: nothing is deleted",
            ),
            held_back=tuple(f"undefine domain {observed.name}" for observed in orphans),
        )
    vms: list[VMPlan] = []
    statuses: dict[ObjectId, VMStatus] = {}
    for observed in orphans:
        kind, namespace, name = observed.owner  # type: ignore[misc]
        owner = ObjectId(kind, namespace, name)
        meta = running_metadata(observed)
        grace = int(meta.spec.get("terminationGracePeriodSeconds", 60)) if meta is not None else 60
        # Reported until the domain is gone: the platform's Terminating (lifecycle.py).
        statuses[owner] = terminating_status(
            context.host.node_name,
            observed,
            context.topology,
            millicores_of(meta.spec) if meta is not None else 0,
        )
        seeds = observation.seed_volumes.get(seed_volume_prefix(namespace, name), ())
        vms.append(
            VMPlan(
                owner,
                Outcome.DELETED,
                [
                    UndefineDomain(owner, observed.name, grace),
                    *(DeleteSeedVolume(owner, pool, volume) for pool, volume in seeds),
                ],
                ["manifest deleted: shut down and undefined; its disks are kept"],
            )
        )
    return Deletions(vms, statuses, frozenset(observed.name for observed in orphans))
