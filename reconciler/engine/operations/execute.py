"""VirtualMachineOperations: a VM's Start, Stop, Restart and Evict, each carried out once.

The platform runs one unfinished operation per VM at a time, oldest first, checks once,
before it runs, that it applies (reference/dvp-api.md §7.3), and reports it in
`status.phase` and its `Completed` condition (§7.2). Here an operation is a manifest in
Git and its report a file under status/; what Git cannot give is decided so:

Order. Git has no creation time. Operations whose names end in a Unix time, as
`reconciler vm` and the user guide name them (`restart-linux-vm-1718000000`, with `-2`
after it for a second one in the same second), run in the order of that time; those
without one run after them, in name order. A refused operation does not hold up the next.

Identity. An operation is NAMESPACE/NAME, with no digest of its spec: the platform's
spec is immutable (CEL `self == oldSelf`) and Git cannot tell an edited file from a
deleted and re-created one, so an edited spec is the same operation and its outcome
stands. A new request takes a new name, as `reconciler vm` gives it.

Exactly once. The domain's next-boot metadata lists its VM's operations
(`DomainMetadata.completed_operations`) as `NS/NAME` (completed), `NS/NAME:failed` or
`NS/NAME:started`. An operation that its report or that list calls completed or failed
is final and never looked at again, so losing the status tree, or the domain with its
VM, loses nothing. A power step is recorded as started *before* it is taken and as
completed right after (libvirt/apply.py). A daemon killed in between leaves "started",
and the next pass finishes the step rather than begin it again (turn.py).

This module holds the operations of a revision and their record; turn.py decides what
each VM's operations do in a pass.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from reconciler.api import ObjectId, VirtualMachine, VirtualMachineOperation
from reconciler.api.operation import VirtualMachineOperationSpec
from reconciler.engine.operations.generated import GeneratedOperation
from reconciler.model.domain import DomainMetadata
from reconciler.model.phases import OperationPhase
from reconciler.rules.inventory import Inventory

KIND = VirtualMachineOperation.KIND
FINAL_PHASES = frozenset(  # dvp-api.md §7.2
    {OperationPhase.COMPLETED, OperationPhase.FAILED, OperationPhase.SUPERSEDED}
)


class Record(StrEnum):
    """An operation's state in its domain's metadata."""

    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class ReportedOperation:
    """What an operation's latest report says (status/reported_operations.py)."""

    phase: str
    reason: str = ""
    message: str = ""
    # The operation itself, when a host made it (generated.py): its report is all of it.
    generated: GeneratedOperation | None = None


@dataclass(frozen=True)
class Operation:
    id: ObjectId
    spec: VirtualMachineOperationSpec

    @property
    def key(self) -> str:
        return operation_key(self.id)


def operation_key(operation: ObjectId) -> str:
    return f"{operation.namespace}/{operation.name}"


# --- The domain's record ---------------------------------------------------------------------


def records(meta: DomainMetadata | None) -> dict[str, Record]:
    """The operations a domain's metadata lists, by NAMESPACE/NAME."""
    found: dict[str, Record] = {}
    for entry in meta.completed_operations if meta is not None else ():
        key, _, state = entry.partition(":")
        state = state.partition(">")[0]
        # An entry this version cannot read counts as completed: in doubt, never again.
        found[key] = Record(state) if state in _RECORDS else Record.COMPLETED
    return found


def migration_targets(meta: DomainMetadata | None) -> dict[str, str]:
    """The node each started migration of the domain goes to, by NAMESPACE/NAME: the
    record `NS/NAME:started>NODE` travels with the domain, so the host it arrives on
    knows the operation is done, and the host it left knows where it went."""
    found: dict[str, str] = {}
    for entry in meta.completed_operations if meta is not None else ():
        key, _, state = entry.partition(":")
        state, _, target = state.partition(">")
        if state == Record.STARTED and target:
            found[key] = target
    return found


_RECORDS = frozenset(record.value for record in Record)


def recorded(
    meta: DomainMetadata,
    key: str,
    record: Record,
    stopped_manually: bool | None = None,
    target: str = "",
) -> DomainMetadata:
    """The metadata with an operation's new state and the run-policy flag it sets;
    `target`: the node a migration that starts goes to."""
    entry = key if record is Record.COMPLETED else f"{key}:{record}"
    if record is Record.STARTED and target:
        entry = f"{entry}>{target}"
    kept = tuple(e for e in meta.completed_operations if e.partition(":")[0] != key)
    flag = meta.stopped_manually if stopped_manually is None else stopped_manually
    return replace(meta, completed_operations=(*kept, entry), stopped_manually=flag)


# --- Which operations, in which order --------------------------------------------------------

_UNIX_TIME = re.compile(r"-(\d{10})(?:-(\d{1,4}))?$")


def order_key(name: str) -> tuple[int, int, int, str]:
    """Unix time in the name first (then its `-N` serial), names without one after."""
    found = _UNIX_TIME.search(name)
    if found is None:
        return (1, 0, 0, name)
    return (0, int(found[1]), int(found[2] or 1), name)


_INDEXES: weakref.WeakKeyDictionary[Inventory, dict[ObjectId, tuple[Operation, ...]]] = (
    weakref.WeakKeyDictionary()
)


def operations_by_vm(inventory: Inventory) -> Mapping[ObjectId, tuple[Operation, ...]]:
    """Every operation of the revision under its VM, in run order; built once per revision."""
    index = _INDEXES.get(inventory)
    if index is None:
        grouped: dict[ObjectId, list[Operation]] = {}
        for loaded, vmop in inventory.of_kind(VirtualMachineOperation):
            vm_id = ObjectId(VirtualMachine.KIND, vmop.namespace, vmop.spec.virtual_machine_name)
            grouped.setdefault(vm_id, []).append(Operation(loaded.id, vmop.spec))
        index = {
            vm_id: tuple(sorted(ops, key=lambda op: order_key(op.id.name)))
            for vm_id, ops in grouped.items()
        }
        _INDEXES[inventory] = index
    return index
