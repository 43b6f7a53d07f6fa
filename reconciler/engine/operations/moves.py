"""Evict and Migrate in a VM's turn: refused, announced, followed while libvirt moves the
VM, completed where it arrives (the module doc of turn.py says how a record is read)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.api import ObjectId, VirtualMachine
from reconciler.api.operation import OperationType
from reconciler.api.vm import LiveMigrationPolicy
from reconciler.engine.fleet.moves import MoveTarget, move_target
from reconciler.engine.operations.execute import Operation, migration_targets
from reconciler.engine.operations.orders import Order, Step, Verdict
from reconciler.engine.plan_types import PlanContext
from reconciler.engine.vm.migratable import why_not_migratable
from reconciler.model.actions import AbortMigration, Action
from reconciler.model.conditions import OperationReason
from reconciler.model.domain import ObservedDomain
from reconciler.model.migration import NotApplicableForPolicy, StorageMode, auto_converge
from reconciler.model.phases import OperationPhase

MOVES = (OperationType.EVICT, OperationType.MIGRATE)


@dataclass(frozen=True)
class Migrations:
    """What Evict and Migrate need to know beyond the VM: this host, where the fleet's
    schedule moves the VM, and why this host's own migrations failed."""

    local: str
    policy: LiveMigrationPolicy
    target: Callable[[Operation], MoveTarget]
    failures: Mapping[str, str] = field(default_factory=dict)
    # The URIs this host's configuration lets it migrate to (migrationPeers).
    peers: tuple[str, ...] = ()
    # How the disks move: copied, or only memory from a pool marked shared.
    storage: StorageMode = StorageMode.COPY
    # Why the VM cannot live-migrate (vm/migratable.py), asked only of an Evict or Migrate.
    why_not_migratable: Callable[[], str] = lambda: ""


def migrations_for(context: PlanContext, vm: VirtualMachine) -> Migrations | None:
    """What the VM's Evict and Migrate operations need; None for a fleet of one."""
    if len(context.members) < 2:
        return None

    def target(operation: Operation) -> MoveTarget:
        wanted = operation.spec.migrate.node_selector if operation.spec.migrate else None
        return move_target(vm.id, context.fleet_schedule, context.members, wanted)

    return Migrations(
        context.host.node_name,
        vm.spec.live_migration_policy,
        target,
        context.migration_failures,
        context.host.migration_peers,
        context.host.migration_storage,
        lambda: why_not_migratable(context, vm),
    )


def cancelled_migrations(
    vm_id: ObjectId,
    domain: str,
    operations: Sequence[Operation],
    observed: ObservedDomain | None,
) -> list[Action]:
    """A migration that runs for an operation no longer in the revision is cancelled, as
    deleting a vmop cancels it on the platform; the guest keeps running here."""
    if observed is None or observed.migration is None:
        return []
    present = {operation.key for operation in operations}
    going = migration_targets(observed.config.metadata)
    return [
        AbortMigration(vm_id, domain, key, "its VirtualMachineOperation was deleted")
        for key in sorted(going)
        if key not in present
    ]


def failed(operation: Operation, moves: Migrations | None) -> Verdict:
    """The report of an operation its record calls failed, when nothing refuses it now."""
    if operation.spec.type not in MOVES:
        message = "refused when it was checked; its report was lost"
    elif moves is not None and operation.key in moves.failures:
        message = (
            f"the live migration failed: {moves.failures[operation.key]};"
            " the VirtualMachine keeps running where it was"
        )
    else:
        message = (
            "the live migration failed (the source host's log says why);"
            " the VirtualMachine keeps running where it was"
        )
    return Verdict(OperationPhase.FAILED, OperationReason.OPERATION_FAILED, message)


def migration_refusal(operation: Operation, moves: Migrations | None) -> Verdict | None:
    """Evict and Migrate move a running VM to another node by live migration (the same
    on the platform, §7.3): refused when the VM is not migratable (its Migratable
    condition is False), when its force contradicts the VM's migration policy, when the
    fleet's schedule has no other node for it, or when that node states no libvirt URI
    to reach it by."""
    if moves is None:
        return Verdict(
            OperationPhase.FAILED,
            OperationReason.TARGET_UNSCHEDULABLE,
            "there is nowhere to move the VirtualMachine: the fleet has no other node;"
            " it keeps running here",
        )
    why = moves.why_not_migratable()
    if why:
        # The platform's words (vmop migration handler), then what cannot migrate.
        return Verdict(
            OperationPhase.FAILED,
            OperationReason.OPERATION_FAILED,
            f"VirtualMachine is not migratable: {why}",
        )
    converge = auto_converge(moves.policy, operation.spec.force)
    if isinstance(converge, NotApplicableForPolicy):
        return Verdict(OperationPhase.FAILED, converge.reason, converge.message)
    target = moves.target(operation)
    if not target.node:
        return Verdict(
            OperationPhase.FAILED,
            OperationReason.TARGET_UNSCHEDULABLE,
            f"there is nowhere to move the VirtualMachine: {target.why}; it keeps running here",
        )
    if not target.uri:
        return Verdict(
            OperationPhase.FAILED,
            OperationReason.OPERATION_FAILED,
            f"Node {target.node} states no spec.libvirtUri, so no host can migrate to it"
            ' (docs/install.md, "Connecting hosts for live migration"); it keeps running here',
        )
    if target.uri not in moves.peers:
        return Verdict(
            OperationPhase.FAILED,
            OperationReason.OPERATION_FAILED,
            f"this host migrates only to the libvirt URIs its configuration lists"
            f" (migrationPeers); Node {target.node}'s {target.uri} is not one of them;"
            " it keeps running here",
        )
    return None


def migration(operation: Operation, moves: Migrations, continuing: bool = False) -> Order:
    """The migration the schedule's target takes (refusal() found one). A new one is only
    announced: its record and the VM's Migrating report go out before libvirt moves it,
    so Git shows where it goes even when the move takes a second."""
    target = moves.target(operation)
    converge = auto_converge(moves.policy, operation.spec.force)
    return Order(
        operation.id,
        operation.spec.type,
        Step.MIGRATE,
        continuing=continuing,
        target=target.node,
        target_uri=target.uri,
        auto_converge=converge is True,
        announce=not continuing,
        storage=moves.storage,
    )


def continued_move(
    operation: Operation, observed: ObservedDomain | None, moves: Migrations | None
) -> Order | Verdict:
    """An Evict or Migrate recorded as started (see the module doc)."""
    target = migration_targets(observed.config.metadata if observed else None).get(
        operation.key, ""
    )
    if observed is not None and moves is not None and target == moves.local:
        # Arrived: the migration is done. Recorded completed here, where the VM now is.
        return Order(operation.id, operation.spec.type, None, continuing=True)
    if observed is not None and observed.migration is not None:
        return Order(
            operation.id,
            operation.spec.type,
            Step.MIGRATE,
            continuing=True,
            target=target,
            waiting=f"migrating to {target}: {observed.migration.progress}",
        )
    if observed is None or not observed.state.active:
        return Verdict(
            OperationPhase.FAILED,
            OperationReason.OPERATION_FAILED,
            "the VirtualMachine stopped before it moved; it was not migrated",
        )
    if moves is None or (refused := migration_refusal(operation, moves)) is not None:
        return refused or failed(operation, moves)
    # Running here and no migration under way: announced by the pass before, or begun
    # and cut off (the daemon was killed, and libvirt aborted it with its client).
    return migration(operation, moves, continuing=True)
