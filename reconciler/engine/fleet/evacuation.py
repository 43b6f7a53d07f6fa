"""The moves a host starts by itself: draining its Node (maintenance mode), and moving a VM
whose placement rules no longer hold where it runs (the `hotplug` profile).

Maintenance mode is `spec.unschedulable: true` on the host's Node, what `d8 k drain`
sets on the platform (`reconciler node drain` commits it). The drained host makes an
`evacuation-…` Evict for each VM it runs, two at a time, and the live migrations move
them to the hosts the fleet's schedule picks (the schedule gives a drained Node no VM).
A VM that cannot migrate (its Migratable condition says why), one no other host can
take, and one whose evacuation failed are reported in the Node report's `drain` and
left running: a drain never kills a VM. The Node is `Drained` when none of ours runs
here. `false` returns it to service, and its host removes the reports of the finished
evacuations, so a later drain begins afresh.

In the `hotplug` profile, a running VM whose strict rules (its nodeSelector, node
affinity, its class's nodeSelector, VM anti-affinity) no longer hold on its host gets
a `nodeplacement-update-…` Evict, the platform's behaviour beyond the Community
Edition; in the `default` profile the changed rules wait in restartAwaitingChanges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.api import ObjectId, VirtualMachine
from reconciler.engine.fleet.moves import move_target
from reconciler.engine.operations.execute import (
    FINAL_PHASES,
    Operation,
    Record,
    operations_by_vm,
    records,
)
from reconciler.engine.operations.generated import (
    Cause,
    GeneratedOperation,
    generated_name,
    next_attempt,
)
from reconciler.engine.operations.moves import MOVES
from reconciler.engine.plan_types import PlanContext
from reconciler.model.domain import ObservedDomain
from reconciler.model.names import domain_name
from reconciler.model.phases import OperationPhase

# How many VMs a host moves at once: a drain's migrations share the host's network and
# the guests' memory bandwidth, and the platform evacuates a node a few VMs at a time.
AT_ONCE = 2


@dataclass(frozen=True)
class DrainProgress:
    """What the Node report says of a drain (`status.drain`)."""

    running: int  # VMs of ours still running on the host
    moving: tuple[str, ...] = ()  # NAMESPACE/NAME, being migrated now
    waiting: tuple[str, ...] = ()  # their turn comes when a migration ends
    stuck: tuple[tuple[str, str], ...] = ()  # (NAMESPACE/NAME, why it stays)

    @property
    def phase(self) -> str:
        if not self.running:
            return "Drained"
        return "Draining" if self.moving or self.waiting else "Blocked"

    def as_dict(self) -> dict[str, Any]:
        message = {
            "Drained": "no virtual machine runs on this node",
            "Draining": f"{self.running} virtual machine(s) still run on this node",
            "Blocked": f"{self.running} virtual machine(s) cannot leave this node",
        }[self.phase]
        document: dict[str, Any] = {
            "phase": self.phase,
            "message": message,
            "running": self.running,
        }
        if self.moving:
            document["migrating"] = list(self.moving)
        if self.waiting:
            document["waiting"] = list(self.waiting)
        if self.stuck:
            document["cannotMigrate"] = [{"name": vm, "reason": why} for vm, why in self.stuck]
        return document


@dataclass(frozen=True)
class HostMoves:
    """The operations this pass creates, those whose reports go, and the drain's progress
    (None when the host's Node is in service)."""

    created: tuple[GeneratedOperation, ...] = ()
    retired: frozenset[ObjectId] = frozenset()
    drain: DrainProgress | None = None
    notes: tuple[str, ...] = ()


NO_MOVES = HostMoves()


def host_moves(
    context: PlanContext,
    domains: Mapping[str, ObservedDomain],
    here: Sequence[VirtualMachine],
    why_not_migratable: Callable[[VirtualMachine], str],
) -> HostMoves:
    """`here`: the VMs this host reports; `why_not_migratable`: "" for a VM that can
    live-migrate, else why not (its Migratable condition)."""
    local = context.host.node_name
    member = next((m for m in context.members if m.name == local), None)
    draining = member is not None and not member.schedulable
    hotplug = context.host.change_profile == "hotplug"
    reported = context.operation_reports
    generated = [r.generated for r in reported.values() if r.generated is not None]
    mine = [g for g in generated if g.origin == local]
    if not draining and not hotplug and not mine:
        return NO_MOVES
    operations = operations_by_vm(context.inventory)
    schedule = context.fleet_schedule
    running = 0
    moving: list[str] = []
    candidates: list[tuple[VirtualMachine, Cause, ObservedDomain]] = []
    stuck: list[tuple[str, str]] = []
    still_wanted: set[ObjectId] = set()
    known_again: list[GeneratedOperation] = []
    for vm in here:
        observed = domains.get(domain_name(vm))
        if observed is None or not observed.state.active:
            continue
        running += 1
        key = f"{vm.namespace}/{vm.name}"
        # One this host made and announced, whose report is not read back yet (the
        # pass's second plan, or a host that died before its status commit).
        announced = _announced(vm, observed, context)
        known_again.extend(announced)
        ops = [*operations.get(vm.id, ()), *(Operation(g.id, g.spec) for g in announced)]
        if any(_unfinished(op, observed, context) for op in ops):
            moving.append(key)
            continue
        broken = schedule.rules_broken(vm.id) if schedule is not None and hotplug else ""
        cause = Cause.EVACUATION if draining else Cause.NODE_PLACEMENT if broken else None
        if cause is None:
            continue
        earlier = [g for g in mine if g.vm_id == vm.id and g.cause is cause]
        still_wanted.update(g.id for g in earlier)
        failed = next((g for g in earlier if reported[g.id].phase == OperationPhase.FAILED), None)
        if failed is not None:
            stuck.append((key, f"{failed.id.name} failed: {reported[failed.id].message}"))
            continue
        why = why_not_migratable(vm)
        if why:
            stuck.append((key, f"not migratable: {why}"))
            continue
        target = move_target(vm.id, schedule, context.members)
        if not target.node:
            stuck.append((key, f"no other host can take it: {target.why}"))
            continue
        candidates.append((vm, cause, observed))
    room = max(0, AT_ONCE - len(moving))
    new = [
        GeneratedOperation(
            ObjectId(
                "VirtualMachineOperation",
                vm.namespace,
                generated_name(cause, local, vm.id, next_attempt(cause, observed.config.metadata)),
            ),
            vm.name,
            local,
            cause,
        )
        for vm, cause, observed in candidates[:room]
    ]
    created = (*known_again, *new)
    waiting = tuple(f"{vm.namespace}/{vm.name}" for vm, _, _ in candidates[room:])
    retired = frozenset(
        g.id
        for g in mine
        if reported[g.id].phase in FINAL_PHASES
        and g.id not in still_wanted
        and not (g.cause is Cause.EVACUATION and draining)
    )
    drain = None
    if draining:
        moving_now = tuple(sorted({*moving, *(f"{g.id.namespace}/{g.vm_name}" for g in created)}))
        drain = DrainProgress(running, moving_now, waiting, tuple(stuck))
    notes = tuple(f"{g.id.name}: moves VirtualMachine {g.vm_name} ({g.cause})" for g in new)
    return HostMoves(created, retired, drain, notes)


def _unfinished(operation: Operation, observed: ObservedDomain, context: PlanContext) -> bool:
    """An Evict or Migrate of the VM that neither its report nor its record calls final."""
    if operation.spec.type not in MOVES:
        return False
    report = context.operation_reports.get(operation.id)
    if report is not None and report.phase in FINAL_PHASES:
        return False
    record = records(observed.config.metadata).get(operation.key)
    return record not in {Record.COMPLETED, Record.FAILED}


def _announced(
    vm: VirtualMachine, observed: ObservedDomain, context: PlanContext
) -> list[GeneratedOperation]:
    """The operations this host made for the VM that its domain's record lists as started
    to another node and the revision does not hold."""
    local = context.host.node_name
    found: list[GeneratedOperation] = []
    meta = observed.config.metadata
    for entry in meta.completed_operations if meta is not None else ():
        key, _, state = entry.partition(":")
        state, _, target = state.partition(">")
        namespace, _, name = key.partition("/")
        cause = next((c for c in Cause if name.startswith(f"{c}-")), None)
        if cause is None or state != Record.STARTED or not target or target == local:
            continue
        operation = ObjectId("VirtualMachineOperation", namespace, name)
        if namespace == vm.namespace and context.inventory.get(operation) is None:
            found.append(GeneratedOperation(operation, vm.name, local, cause))
    return found
