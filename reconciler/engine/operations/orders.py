"""The values an operation's turn is made of: its step, what it asks of the pass (Order)
and its report (Verdict)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.api import ObjectId
from reconciler.api.operation import OperationType
from reconciler.engine.operations.execute import Record, operation_key
from reconciler.model.actions import Action, CarryOutOperation, MigrateDomain
from reconciler.model.conditions import Condition, OperationCondition, OperationReason
from reconciler.model.migration import StorageMode
from reconciler.model.phases import OperationPhase


class Step(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    MIGRATE = "migrate"


@dataclass(frozen=True)
class Verdict:
    """An operation's report: phase and the reason and message of `Completed`."""

    phase: OperationPhase
    reason: OperationReason
    message: str = ""
    signal_sent: bool = False

    def status(self) -> dict[str, Any]:
        done = self.phase == OperationPhase.COMPLETED
        completed = Condition(OperationCondition.COMPLETED, done, self.reason, self.message)
        conditions = [completed.as_entry()]
        if self.signal_sent:
            signal = Condition(
                OperationCondition.SIGNAL_SENT, True, OperationReason.SIGNAL_SENT_SUCCESS
            )
            conditions.append(signal.as_entry())
        return {"phase": str(self.phase), "conditions": conditions}


DONE = Verdict(OperationPhase.COMPLETED, OperationReason.OPERATION_COMPLETED, signal_sent=True)


@dataclass(frozen=True)
class Order:
    """What one operation asks of this pass: a power step, or only its record."""

    operation: ObjectId
    type: OperationType
    step: Step | None
    force: bool = False
    stopped_manually: bool | None = None
    outcome: Record = Record.COMPLETED  # recorded when there is no step
    # Begun by an earlier pass (its record says started): finished, never begun again.
    continuing: bool = False
    # Why the step cannot be taken yet; nothing is done this pass.
    waiting: str = ""
    # A migration's target node, its libvirt URI, whether it auto-converges, and how
    # its disks move.
    target: str = ""
    target_uri: str = ""
    auto_converge: bool = False
    storage: StorageMode = StorageMode.COPY
    # A migration only announced this pass: recorded as started (the VM reported
    # Migrating, committed), begun by the next pass.
    announce: bool = False

    def action(self, vm_id: ObjectId, domain: str, grace_seconds: int) -> Action:
        if self.step is Step.MIGRATE and self.announce:
            return CarryOutOperation(
                vm_id,
                domain,
                operation_key(self.operation),
                outcome=str(Record.STARTED),
                target=self.target,
            )
        if self.step is Step.MIGRATE:
            return MigrateDomain(
                vm_id,
                domain,
                operation_key(self.operation),
                self.target,
                self.target_uri,
                storage=self.storage,
                auto_converge=self.auto_converge,
            )
        return CarryOutOperation(
            vm_id,
            domain,
            operation_key(self.operation),
            str(self.step or ""),
            self.force,
            grace_seconds,
            self.stopped_manually,
            str(self.outcome),
        )
