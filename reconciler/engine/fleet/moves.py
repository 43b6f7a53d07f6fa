"""Where an Evict or Migrate moves a VM: the fleet's schedule's answer (schedule.py), the
same on every host, and the libvirt URI of that host as its Node states it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.api import ObjectId
from reconciler.engine.fleet.placement import FleetNode
from reconciler.engine.fleet.schedule import Schedule, target_for


@dataclass(frozen=True)
class MoveTarget:
    node: str  # "" when no host can take the VM
    uri: str  # the Node's spec.libvirtUri; "" when it states none
    why: str  # the rule that left no host, when node is ""


def move_target(
    vm_id: ObjectId,
    fleet_schedule: Schedule | None,
    members: Sequence[FleetNode],
    required_labels: Mapping[str, str] | None = None,
) -> MoveTarget:
    if fleet_schedule is None or vm_id not in fleet_schedule.demands:
        return MoveTarget("", "", "the VM is not placed in the fleet")
    home = target_for(vm_id, fleet_schedule, required_labels)
    if not home.host:
        return MoveTarget("", "", home.rule or home.reason)
    uri = next((m.libvirt_uri for m in members if m.name == home.host), "")
    return MoveTarget(home.host, uri, "")
