"""The pass's block-device step after its VMs: the volumes of deleted disks and the
imported images no one uses any more (after the domains undefined in this pass), and
the reports of the disks and attachments this host reports."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.api import ObjectId
from reconciler.engine.devices.block_devices import (
    PassDevices,
    plan_disk_deletions,
    report_devices,
)
from reconciler.engine.devices.image_volumes import stale_image_volumes
from reconciler.engine.plan_types import Observation, Outcome, PlanContext, VMPlan
from reconciler.model.actions import Action


@dataclass(frozen=True)
class PassVolumes:
    vms: list[VMPlan]
    # What a whole revision would delete, when this one is not (SPEC §10).
    held_back: list[str]
    notes: list[str]
    object_reports: dict[ObjectId, dict[str, Any]]


def pass_volumes(
    context: PlanContext,
    observation: Observation,
    devices: PassDevices,
    *,
    planned: Sequence[VMPlan],
    reported_vms: Collection[ObjectId],
    undefined: Collection[str],
    held: Mapping[ObjectId, str],
) -> PassVolumes:
    """`planned`: the plans so far (their actions tell the reports what is being made);
    `reported_vms`: the VMs this host reports; `undefined`: the domains this pass
    undefines; `held`: the VMs whose devices this pass leaves as they are, and why."""
    whole = context.whole_revision
    records, domains = context.disk_records, observation.domains
    deletions, kept, notes = plan_disk_deletions(
        devices, context.broken, whole, records, observation.volumes, domains, set(undefined)
    )
    vms = [
        VMPlan(action.owner, Outcome.DELETED, [action], ["manifest deleted: volume deleted"])
        for action in deletions
    ]
    vms.extend(
        VMPlan(stale.owner, Outcome.DELETED, [stale], ["no image of the revision uses it"])
        for stale in stale_image_volumes(devices.view, context.broken, whole, domains)
    )
    held_back: list[str] = []
    if not whole:
        # What a whole revision would delete, only counted: the operator learns how much
        # waits for the revision to be readable again.
        would_delete: list[Action]
        would_delete, _kept, _notes = plan_disk_deletions(
            devices, context.broken, True, records, observation.volumes, domains, set(undefined)
        )
        would_delete += stale_image_volumes(devices.view, context.broken, True, domains)
        held_back = [action.describe() for action in would_delete]
    actions = [action for vm in (*planned, *vms) for action in vm.actions]
    reports = report_devices(
        devices,
        context.inventory,
        list(reported_vms),
        domains,
        actions,
        held=held,
        first_member=context.first_member,
        anticipate=context.anticipate,
    )
    return PassVolumes(vms, held_back, notes, {**kept, **reports})
