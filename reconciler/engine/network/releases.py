"""The DHCP reservations this project made for VMs that are gone from the revision:
released, as a step of the VM's deletion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from reconciler.api import ObjectId
from reconciler.engine.network.addressing import NetworkFacts, reservation_owner
from reconciler.engine.plan_types import Outcome, PlanContext, VMPlan
from reconciler.model.actions import ReleaseAddress


def release_stale_reservations(
    context: PlanContext, network: NetworkFacts | None, plans: Sequence[VMPlan]
) -> list[VMPlan]:
    """`plans` with the releases added: to the plan of the gone VM when there is one
    (its undefinition), else in a plan of their own, after the others.

    Only when the revision is whole, as with deletions: a VM that is merely unreadable
    keeps its reservation, and so its running guest its address.
    """
    if context.addressing is None or network is None or not context.whole_revision:
        return list(plans)
    present = {loaded.id for loaded in context.inventory.objects} | set(context.broken)
    released: dict[ObjectId, list[ReleaseAddress]] = {}
    for reservation in network.reservations:
        owner = reservation_owner(reservation)
        if owner is not None and owner not in present:
            action = ReleaseAddress(owner, network.name, reservation.mac, reservation.ip)
            released.setdefault(owner, []).append(action)
    if not released:
        return list(plans)
    result = [_with_releases(vm_plan, released.pop(vm_plan.object_id, ())) for vm_plan in plans]
    result.extend(
        _with_releases(VMPlan(owner, Outcome.DELETED), r) for owner, r in released.items()
    )
    return result


def _with_releases(vm_plan: VMPlan, releases: Sequence[ReleaseAddress]) -> VMPlan:
    if not releases:
        return vm_plan
    return replace(
        vm_plan,
        actions=[*vm_plan.actions, *releases],
        details=[
            *vm_plan.details,
            *(f"address {action.ip} released (the VM is gone)" for action in releases),
        ],
    )
