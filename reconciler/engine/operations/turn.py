"""A VM's VirtualMachineOperations in one pass: the one that acts (its power step
replaces the run policy's), the ones refused now (dvp-api.md §7.3), and the reports of
the others. Which operations, in which order, and their record: execute.py.

An operation recorded as started is finished rather than begun again, judging by the
domain:

- Start: running means done; shut off means the start is still to make.
- Stop: shut off means done; running means the stop is still to make, unless that
  instance was started after the record (someone started it again since).
- Restart: an instance started after the record means done (its live metadata, the
  next-boot metadata copied at start, lists the operation); an older running instance
  means the restart never began; shut off means it was cut between its stop and its
  start, so it is started.

- Evict, Migrate: the record names the node the VM goes to (`started>NODE`) and
  travels with the domain. On that node the domain has arrived: done. On the node it
  left, a migration libvirt still runs is waited for; a running domain without one
  (a daemon killed while libvirt migrated, which aborted it) is migrated again; a
  domain that stopped meanwhile fails the operation.

A power step that failed stays "started" and the next pass tries it again the same way;
deleting the operation's manifest gives it up, as deleting a vmop does on the platform
(a migration that runs is cancelled: operation_step).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.api import ObjectId, RunPolicy, VirtualMachine
from reconciler.api.operation import OperationType
from reconciler.engine.operations.execute import (
    FINAL_PHASES,
    Operation,
    Record,
    ReportedOperation,
    operations_by_vm,
    records,
)
from reconciler.engine.operations.moves import (
    MOVES,
    Migrations,
    cancelled_migrations,
    continued_move,
    failed,
    migration,
    migration_refusal,
)
from reconciler.engine.operations.orders import DONE, Order, Step, Verdict
from reconciler.engine.vm.lifecycle import phase_of
from reconciler.engine.vm.power import PowerDecision
from reconciler.model.actions import Action
from reconciler.model.conditions import OperationReason
from reconciler.model.domain import ObservedDomain
from reconciler.model.phases import OperationPhase, VMPhase
from reconciler.rules.inventory import Inventory

# dvp-api.md §7.3: the run policies and VM phases each type applies to.
_ANY_ON = frozenset({RunPolicy.MANUAL, RunPolicy.ALWAYS_ON_UNLESS_STOPPED_MANUALLY})
_POLICIES = {
    OperationType.START: _ANY_ON,
    OperationType.STOP: _ANY_ON,
    OperationType.RESTART: _ANY_ON | {RunPolicy.ALWAYS_ON},
    OperationType.EVICT: _ANY_ON | {RunPolicy.ALWAYS_ON},
    OperationType.MIGRATE: _ANY_ON | {RunPolicy.ALWAYS_ON},
}
_PHASES = {
    OperationType.START: frozenset({VMPhase.STOPPED, VMPhase.STOPPING}),
    OperationType.STOP: frozenset(
        {VMPhase.RUNNING, VMPhase.DEGRADED, VMPhase.STARTING, VMPhase.PAUSE, VMPhase.PENDING}
    ),
    OperationType.RESTART: frozenset(
        {VMPhase.RUNNING, VMPhase.DEGRADED, VMPhase.STARTING, VMPhase.PAUSE}
    ),
    OperationType.EVICT: frozenset({VMPhase.RUNNING}),
    OperationType.MIGRATE: frozenset({VMPhase.RUNNING}),
}
_ONLY_WITH_FORCE = {OperationType.STOP: VMPhase.STOPPING, OperationType.RESTART: VMPhase.STOPPING}
# The run-policy flag each type leaves: a Stop keeps an AlwaysOnUnlessStoppedManually VM
# off (power.py) until a Start, or a Restart, powers it on again.
_STOPPED_MANUALLY = {
    OperationType.START: False,
    OperationType.STOP: True,
    OperationType.RESTART: False,
}


_STEPS = {
    OperationType.START: Step.START,
    OperationType.STOP: Step.STOP,
    OperationType.RESTART: Step.RESTART,
    OperationType.EVICT: Step.MIGRATE,
    OperationType.MIGRATE: Step.MIGRATE,
}


@dataclass(frozen=True)
class Turn:
    """A VM's operations in this pass: the one that acts, the refused ones to record, and
    the reports of the others whose reports are not final yet."""

    acting: Order | None
    to_record: tuple[Order, ...]
    verdicts: Mapping[ObjectId, Verdict]

    def record_actions(self, vm_id: ObjectId, domain: str) -> list[Action]:
        return [order.action(vm_id, domain, 0) for order in self.to_record]


NO_TURN = Turn(None, (), {})


def operation_step(
    inventory: Inventory,
    reported: Mapping[ObjectId, ReportedOperation],
    vm: VirtualMachine,
    domain: str,
    observed: ObservedDomain | None,
    decision: PowerDecision,
    moves: Migrations | None = None,
) -> tuple[list[Action], Order | None]:
    """What a VM's operations add to this pass's plan: the records to write, and the
    operation whose power step replaces the run policy's decision (None: none does)."""
    operations = operations_by_vm(inventory).get(vm.id, ())
    turn = operation_turn(operations, observed, vm.spec.run_policy, decision, reported, moves)
    actions = turn.record_actions(vm.id, domain)
    actions.extend(cancelled_migrations(vm.id, domain, operations, observed))
    order = turn.acting
    if order is not None and order.step is None:
        actions.append(order.action(vm.id, domain, 0))  # found done: only recorded
        return actions, None
    if order is not None and order.waiting:
        return actions, None
    return actions, order


def operation_phase(observed: ObservedDomain | None, decision: PowerDecision) -> VMPhase:
    """The VM's phase when an operation is checked: one the run policy is about to start
    is still Pending; one this pass defines and leaves off is Stopped."""
    if decision is PowerDecision.START and (observed is None or not observed.state.active):
        return VMPhase.PENDING
    return phase_of(observed) if observed is not None else VMPhase.STOPPED


def operation_turn(
    operations: Sequence[Operation],
    observed: ObservedDomain | None,
    policy: RunPolicy,
    decision: PowerDecision,
    reported: Mapping[ObjectId, ReportedOperation],
    moves: Migrations | None = None,
) -> Turn:
    """Decide a VM's operations from their reports and the domain's record. `moves`:
    what Evict and Migrate need; without it (a fleet of one) they have nowhere to go."""
    if not operations:
        return NO_TURN
    listed = records(observed.config.metadata if observed is not None else None)
    phase = operation_phase(observed, decision)
    verdicts: dict[ObjectId, Verdict] = {}
    to_record: list[Order] = []
    acting: Order | None = None
    for operation in operations:
        previous = reported.get(operation.id)
        if previous is not None and previous.phase in FINAL_PHASES:
            continue  # its report stands
        state = listed.get(operation.key)
        if state is Record.COMPLETED:
            verdicts[operation.id] = DONE
        elif state is Record.FAILED:
            verdicts[operation.id] = refusal(operation, policy, phase, moves) or failed(
                operation, moves
            )
        elif acting is not None:
            verdicts[operation.id] = Verdict(
                OperationPhase.PENDING,
                OperationReason.NOT_READY_TO_BE_EXECUTED,
                f"waits for VirtualMachineOperation {acting.operation.name} to finish",
            )
        elif state is Record.STARTED and operation.spec.type in MOVES:
            moved = continued_move(operation, observed, moves)
            if isinstance(moved, Verdict):
                verdicts[operation.id] = moved
                to_record.append(
                    Order(operation.id, operation.spec.type, None, outcome=Record.FAILED)
                )
            else:
                acting = moved
        elif state is Record.STARTED:
            acting = _continued(operation, observed)
        elif (refused := refusal(operation, policy, phase, moves)) is not None:
            verdicts[operation.id] = refused
            to_record.append(Order(operation.id, operation.spec.type, None, outcome=Record.FAILED))
        else:
            acting = _begun(operation, phase, moves)
    return Turn(acting, tuple(to_record), verdicts)


def refusal(
    operation: Operation, policy: RunPolicy, phase: VMPhase, moves: Migrations | None = None
) -> Verdict | None:
    """Why an operation does not apply to its VM now (dvp-api.md §7.3); None when it does."""
    kind = operation.spec.type
    if policy not in _POLICIES[kind]:
        return Verdict(
            OperationPhase.FAILED,
            OperationReason.NOT_APPLICABLE_FOR_RUN_POLICY,
            f"{kind} is not applicable for a VirtualMachine with runPolicy {policy}",
        )
    forced_only = _ONLY_WITH_FORCE.get(kind)
    if phase not in _PHASES[kind] and not (phase == forced_only and operation.spec.force):
        without = " without force" if phase == forced_only else ""
        return Verdict(
            OperationPhase.FAILED,
            OperationReason.NOT_APPLICABLE_FOR_PHASE,
            f"{kind} is not applicable for a VirtualMachine in phase {phase}{without}",
        )
    if kind in MOVES:
        return migration_refusal(operation, moves)
    return None


def _begun(operation: Operation, phase: VMPhase, moves: Migrations | None) -> Order:
    kind = operation.spec.type
    step = _STEPS[kind]
    if step is Step.MIGRATE and moves is not None:
        return migration(operation, moves)
    waiting = ""
    if step is Step.START and phase == VMPhase.STOPPING:
        # The guest is still shutting down: starting now would be a no-op, lost once it
        # stops. The shutdown's lifecycle event brings the next pass.
        waiting = "the VM is still stopping; it is started once it has stopped"
    return Order(
        operation.id,
        kind,
        step,
        force=bool(operation.spec.force) and step is not Step.START,
        stopped_manually=_STOPPED_MANUALLY[kind],
        waiting=waiting,
    )


def _continued(operation: Operation, observed: ObservedDomain | None) -> Order:
    """The step still to take for an operation recorded as started (see the module doc)."""
    kind = operation.spec.type
    active = observed is not None and observed.state.active
    live = observed.live.metadata if observed is not None and observed.live else None
    started_after = active and operation.key in records(live)
    step: Step | None = None
    if kind is OperationType.START:
        step = None if active else Step.START
    elif kind is OperationType.STOP:
        step = Step.STOP if active and not started_after else None
    elif kind is OperationType.RESTART and not started_after:
        step = Step.RESTART if active else Step.START
    return Order(
        operation.id,
        kind,
        step,
        force=bool(operation.spec.force) and step is not Step.START,
        stopped_manually=_STOPPED_MANUALLY.get(kind),
        continuing=True,
    )
