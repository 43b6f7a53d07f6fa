"""Each VM's settled plan, served again while nothing it was planned from has changed.

A daemon plans every VM it owns on every pass. After a push that changed one manifest,
or an event about one domain, every other VM's plan would come out as the last pass's:
at 1,000 VMs planning them again was a fifth of a push's pass (issue 16). So the
first plan of a pass keeps, per VM, the plan it made, and serves it again to a later
pass when every input of it is the one it was made from.

What is kept: only a plan with nothing to do and nothing to explain (as
plan_types.Settled keeps one within a pass), of a VM without any operation and not
migrating. A plan with actions is made anew each time (its definition carries the
revision), and so is everything about operations, migrations and the fleet's schedule.

When it is served, all of these must hold, else the VM is planned anew:
- the pass's world is the one of the plan: the policies, the host, the fleet, what the
  earlier reports say (operations, migrations, disks), the pool's volumes, the network,
  the image files read, the broken objects, and every object of the revision that is
  not a VM (classes, disks, images, Secrets and their decrypted content, addresses,
  operations) as the very same or equal objects; a world that changed forgets every
  plan at once;
- the VM's own inputs are: its manifest (the very object: the manifest cache keeps an
  unchanged file's objects), its findings, its domain as observed, the host's capacity
  left by the VMs before it, its address and its devices as this pass resolves them.

Equal to a full plan: tests/engine/vm/test_plan_memo.py plans random repositories and
hosts, changes them at random and compares every plan with one made without the memo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from reconciler.api import VirtualMachine
from reconciler.engine.devices.block_devices import PassDevices
from reconciler.engine.devices.vm_devices import DeviceProblem
from reconciler.engine.from_last import FromLast, others_equal, vm_pairs
from reconciler.engine.network.vm_address import address_report
from reconciler.engine.operations.execute import operations_by_vm
from reconciler.engine.plan_types import Observation, Outcome, PlanContext
from reconciler.engine.vm.capacity import Capacity
from reconciler.engine.vm.plan_vm import PlannedVM
from reconciler.findings import Finding
from reconciler.model.domain import ObservedDomain
from reconciler.model.names import domain_name
from reconciler.model.status import VMStatus
from reconciler.rules.inventory import Inventory

_KEPT_OUTCOMES = frozenset({Outcome.UNCHANGED, Outcome.AWAITING_RESTART})


def _same(a: object, b: object) -> bool:
    return a is b or a == b


def _world(context: PlanContext, observation: Observation) -> tuple[object, ...]:
    """Everything of the pass that any VM's plan may read, besides the VM's own inputs."""
    others = _OTHERS(context.inventory)
    return (
        context.topology,
        # Its rules: the table is made anew for each pass, from them and the topology.
        tuple(context.change_table.rules),
        context.host,
        context.fleet,
        context.broken,
        context.reported_migrations,
        context.operation_reports,
        context.migration_failures,
        context.disk_records,
        observation.volumes,
        observation.network,
        observation.image_sources,
        others,
    )


def _others(inventory: Inventory, _extra: object) -> tuple[tuple[object, object], ...]:
    """Every object of the revision that is not a VM, with a Secret's content."""
    return tuple(
        (loaded.model, inventory.secret_content(loaded.id) if loaded.id.kind == "Secret" else None)
        for loaded in inventory.objects
        if loaded.id.kind != VirtualMachine.KIND
    )


# The last revision's, for one that edited only VMs (engine/from_last.py): its objects
# that are not VMs are equal ones, with the same Secrets' contents (replaced_since), and
# worlds are compared by equality.
_OTHERS = FromLast(
    _others,
    lambda last, replaced: (
        last if vm_pairs(replaced) is not None and others_equal(replaced) else None
    ),
)


def _worlds_equal(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    *a_values, a_objects = a
    *b_values, b_objects = b
    if not all(_same(x, y) for x, y in zip(a_values, b_values, strict=True)):
        return False
    assert isinstance(a_objects, tuple) and isinstance(b_objects, tuple)
    return a_objects is b_objects or (
        len(a_objects) == len(b_objects)
        and all(
            (x[0] is y[0] or x[0] == y[0]) and _same(x[1], y[1])
            for x, y in zip(a_objects, b_objects, strict=True)
        )
    )


@dataclass(frozen=True)
class VMInputs:
    """One VM's own inputs to its plan (the module's docstring)."""

    vm: VirtualMachine
    findings: tuple[Finding, ...]
    observed: ObservedDomain | None
    capacity: Capacity
    address: object
    devices: object

    def same_as(self, other: VMInputs) -> bool:
        return (
            self.vm is other.vm
            and _same(self.observed, other.observed)
            and self.capacity == other.capacity
            and self.findings == other.findings
            and self.address == other.address
            and self.devices == other.devices
        )


@dataclass(frozen=True)
class _Entry:
    inputs: VMInputs
    planned: PlannedVM


class PlanMemo:
    """The settled plans of the last first plan of a pass, by VM."""

    def __init__(self) -> None:
        self._world: tuple[object, ...] | None = None
        self._entries: dict[Any, _Entry] = {}
        # How many plans were served: the tests' proof that the memo is used at all.
        self.served = 0

    def begin(self, context: PlanContext, observation: Observation) -> bool:
        """Start a plan: whether the memo serves it (the first plan of a pass, with the
        statuses anticipating it). A world unlike the last one forgets every plan."""
        if not context.anticipate:
            return False
        world = _world(context, observation)
        if self._world is None or not _worlds_equal(world, self._world):
            self._entries.clear()
        self._world = world
        return True

    def inputs(
        self,
        context: PlanContext,
        vm: VirtualMachine,
        findings: Sequence[Finding],
        observation: Observation,
        capacity: Capacity,
        devices: PassDevices,
    ) -> VMInputs:
        try:
            resolved: object = devices.devices(vm.id)
        except DeviceProblem as problem:
            resolved = str(problem)
        return VMInputs(
            vm,
            tuple(findings),
            observation.domains.get(domain_name(vm)),
            capacity,
            address_report(context.addressing, vm),
            resolved,
        )

    def get(self, inputs: VMInputs) -> PlannedVM | None:
        entry = self._entries.get(inputs.vm.id)
        if entry is None or not inputs.same_as(entry.inputs):
            return None
        planned = entry.planned
        self.served += 1
        return PlannedVM(planned.plan, _copy(planned.status), planned.capacity, planned.held)

    def put(self, context: PlanContext, inputs: VMInputs, planned: PlannedVM) -> None:
        vm_id = inputs.vm.id
        plan = planned.plan
        keep = (
            plan.outcome in _KEPT_OUTCOMES
            and not plan.actions
            and not plan.details
            and (inputs.observed is None or inputs.observed.migration is None)
            and not _has_operations(context, inputs.vm)
        )
        if keep:
            kept = PlannedVM(plan, _copy(planned.status), planned.capacity, planned.held)
            self._entries[vm_id] = _Entry(inputs, kept)
        else:
            self._entries.pop(vm_id, None)

    def clear(self) -> None:
        self._world = None
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _has_operations(context: PlanContext, vm: VirtualMachine) -> bool:
    """Whether an operation names the VM: its plan reads the fleet's schedule and the
    operation's report, which are not inputs of the memo."""
    return vm.id in operations_by_vm(context.inventory)


def _copy(status: VMStatus) -> VMStatus:
    """A status of its own for each plan: a later step of the pass may change it."""
    return replace(
        status,
        conditions=list(status.conditions),
        restart_awaiting_changes=[dict(change) for change in status.restart_awaiting_changes],
        guest_os_info=dict(status.guest_os_info),
        block_device_refs=[dict(ref) for ref in status.block_device_refs],
    )


# One per process: the daemon's passes follow one another.
PLANS = PlanMemo()
