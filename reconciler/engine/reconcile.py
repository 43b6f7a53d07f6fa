"""One reconcile pass: observe -> load -> plan -> apply -> observe again -> statuses.

The only engine module that touches the host, through the two narrow interfaces below,
which `reconciler.libvirt` implements. It reads no file: the policies and the earlier
reports come in as values (plan_context), read by the pass driver that calls it
(`read_plan_context`, beside the report files it reads).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from reconciler.api import ObjectId
from reconciler.api.node import Node
from reconciler.engine.devices.block_devices import explain_failures
from reconciler.engine.devices.device_index import device_index
from reconciler.engine.devices.disks import DiskRecord
from reconciler.engine.devices.storage import ImageSourceFacts
from reconciler.engine.devices.vm_devices import images_to_inspect
from reconciler.engine.fleet.placement import ReportedCapacity, fleet
from reconciler.engine.network.addressing import AddressInputs, NetworkFacts, assign
from reconciler.engine.operations.execute import ReportedOperation
from reconciler.engine.operations.generated import as_loaded
from reconciler.engine.operations.status import explain_operation_failures, keep_refusals
from reconciler.engine.plan import (
    Observation,
    Plan,
    PlanContext,
    Settled,
    plan,
)
from reconciler.engine.plan_types import Step, no_step
from reconciler.engine.vm.changes import change_table_for
from reconciler.engine.vm.desired import HostContext
from reconciler.engine.vm.lifecycle import explain_failed_starts
from reconciler.findings import Finding
from reconciler.loader import LoadResult
from reconciler.model.actions import ADDRESS_ACTIONS, VOLUME_ACTIONS, Action, touched_domain
from reconciler.model.conditions import VMCondition, VMReason, mark_false
from reconciler.model.domain import ObservedDomain, VolumeFacts
from reconciler.model.errors import ReconcileError, RetryableError
from reconciler.model.secrets import NO_SECRETS, OpenedSecrets
from reconciler.policies import ChangeRule, TopologyPolicy
from reconciler.rules import Inventory
from reconciler.rules.inventory import models_of_kind


class DomainSource(Protocol):
    def observe(self) -> Mapping[str, ObservedDomain]: ...

    def refresh(self, names: Collection[str]) -> Mapping[str, ObservedDomain | None]:
        """The named domains read again; None for one that is gone or not owned."""
        ...

    def volumes(self, pool: str) -> Mapping[str, VolumeFacts]: ...

    def network(self, name: str) -> NetworkFacts | None:
        """The network's addresses and DHCP reservations; None when it does not exist."""
        ...

    def image_source(self, path: str, directories: Sequence[str]) -> ImageSourceFacts:
        """What an image file on the host holds (format, size), or why it cannot be used;
        a file outside `directories` is not opened."""
        ...


class ActionRunner(Protocol):
    def run(self, action: Action) -> None:
        """Carry out one action. A failure of it raises a ReconcileError (its message
        names what failed); the pass goes on. Anything else raised is a bug."""
        ...


class SkippedAfterFailure(RetryableError):
    """An action not tried because an earlier one of its object failed."""


@dataclass
class ActionOutcome:
    action: Action
    error: ReconcileError | None


@dataclass
class PassResult:
    context: PlanContext
    plan: Plan
    findings: list[Finding]
    applied: list[ActionOutcome] = field(default_factory=list)
    final: Plan | None = None

    @property
    def errors(self) -> list[ActionOutcome]:
        return [outcome for outcome in self.applied if outcome.error is not None]

    @property
    def statuses_plan(self) -> Plan:
        return self.final or self.plan


@dataclass(frozen=True)
class EarlierReports:
    """What the latest reports in Git say, as values the pass driver read
    (`earlier_reports`): where each VM runs, which disks existed (without
    them no disk volume is ever deleted) and the VirtualMachineOperations' outcomes (a
    final one is never run again)."""

    nodes: Mapping[ObjectId, str] = field(default_factory=dict)
    # The node each VM reported Migrating goes to.
    migrations: Mapping[ObjectId, str] = field(default_factory=dict)
    disks: Mapping[str, DiskRecord] = field(default_factory=dict)
    operations: Mapping[ObjectId, ReportedOperation] = field(default_factory=dict)
    # The guaranteed capacity each host's own Node report states, by Node name.
    capacities: Mapping[str, ReportedCapacity] = field(default_factory=dict)


def plan_context(
    result: LoadResult,
    host: HostContext,
    revision: str,
    *,
    findings: list[Finding],
    topology: TopologyPolicy,
    change_rules: Sequence[ChangeRule],
    earlier: EarlierReports = EarlierReports(),
    addresses: AddressInputs | None = None,
    secrets: OpenedSecrets = NO_SECRETS,
) -> PlanContext:
    """Everything a plan needs besides the observation, from values only: the revision's
    `findings` (rules.check), the policies and the earlier reports. `addresses` turns
    on IP address management (the pool, the last leases, the clock); `secrets` are the
    revision's encrypted Secrets as the host decrypted them."""
    # The operations hosts made live in their reports (operations/generated.py).
    made_by_hosts = (r.generated for r in earlier.operations.values() if r.generated)
    indexed = Inventory.of(result)
    nodes = models_of_kind(result, Node)
    return PlanContext(
        inventory=indexed.with_secrets(secrets).with_objects(as_loaded(g) for g in made_by_hosts),
        findings=findings,
        broken=frozenset(result.broken),
        unreadable_files=tuple(f for f in result.findings if not f.object),
        topology=topology,
        change_table=change_table_for(change_rules, topology),
        host=host,
        revision=revision,
        fleet=tuple(fleet(nodes, host.node_name, dict(host.node_labels), earlier.capacities)),
        reported_nodes=earlier.nodes,
        reported_migrations=earlier.migrations,
        addresses=addresses if addresses is not None and addresses.pool else None,
        disk_records=earlier.disks,
        operation_reports=earlier.operations,
    )


# How many unreadable files a warning names; the rest are counted (`validate` lists all).
_NAMED_FILES = 5


def deletions_held_back(context: PlanContext, plan: Plan) -> str:
    """Why this revision deletes nothing, for the log, the node report and `apply`; ""
    when it deletes normally.

    Unreadable files are named whenever there are any, with or without something to
    delete right now: no deletion can happen until they are fixed, and an operator
    deleting a manifest then should not have to guess why nothing goes. A revision
    without any object is named only when it holds something back: an empty repository
    on a new host is no problem.
    """
    count = len(plan.held_back)
    held = f"{count} deletion(s) held back" if count else "deletions are held back"
    revision = f"revision {context.revision[:12]}" if context.revision else "the revision"
    if context.unreadable_files:
        first: dict[str, Finding] = {}
        for finding in sorted(context.unreadable_files):
            first.setdefault(finding.path, finding)
        files = [f"{f.path}:{f.line}: {' '.join(f.message.split())}" for f in first.values()]
        if len(files) > _NAMED_FILES:
            files[_NAMED_FILES:] = [f"and {len(files) - _NAMED_FILES} more"]
        return (
            f"{revision} has {len(first)} unreadable file(s), so nothing is deleted"
            f" ({held}): {'; '.join(files)}"
        )
    if count and not context.inventory.objects:
        return f"{revision} has no objects at all, so nothing is deleted ({held})"
    return ""


def _volumes(source: DomainSource, host: HostContext) -> dict[tuple[str, str], VolumeFacts]:
    return {(host.storage_pool, name): v for name, v in source.volumes(host.storage_pool).items()}


def _network(source: DomainSource, host: HostContext) -> NetworkFacts | None:
    return source.network(host.network) if host.network else None


def observe(source: DomainSource, host: HostContext) -> Observation:
    return Observation(source.observe(), _volumes(source, host), _network(source, host))


def with_image_sources(
    source: DomainSource, context: PlanContext, observation: Observation
) -> Observation:
    """The observation with the files of the images the revision needs and the pool does
    not hold yet: their content names their volume (qcow2, raw, iso). Imported images
    are never read again, and images a finding refuses (image-source) are never read."""
    index = device_index(context.inventory, context.broken)
    host = context.host
    paths = images_to_inspect(
        context.inventory, observation.volumes, host.storage_pool, index, context.findings
    )
    if not paths:
        return observation
    sources = {p: source.image_source(p, host.image_directories) for p in sorted(paths)}
    return replace(observation, image_sources=sources)


def with_addressing(context: PlanContext, observation: Observation) -> PlanContext:
    """The context with the pass's address allocation (once per pass: both plans of a
    pass must give every VM the same address)."""
    if context.addresses is None:
        return context
    incomplete = sorted({b.namespace for b in context.broken if b.kind == "VirtualMachine"})
    addressing = assign(
        context.addresses,
        context.inventory,
        observation.network,
        incomplete_namespaces=incomplete,
        incomplete_everywhere=bool(context.unreadable_files),
    )
    return replace(context, addressing=addressing)


def _observe_after(
    source: DomainSource, host: HostContext, before: Observation, actions: Sequence[Action]
) -> Observation:
    """The host after a pass's actions: the domains and volumes they touched read again.

    The rest is the observation the pass started from, as a pass with nothing
    to do reports it: whatever changed there without us is found by the next
    pass, exactly as a change made just after a full read would be.
    """
    names: set[str] = set()
    volumes_touched = False
    network_touched = False
    for action in actions:
        if isinstance(action, VOLUME_ACTIONS):
            volumes_touched = True
        elif isinstance(action, ADDRESS_ACTIONS):
            network_touched = True
        else:
            name = touched_domain(action)
            if name is None:
                return observe(source, host)  # an action of unknown reach: read it all
            names.add(name)
    if len(names) > len(before.domains) // 2:
        return observe(source, host)  # most of the host: one bulk read is cheaper
    domains = dict(before.domains)
    for name, found in source.refresh(sorted(names)).items():
        if found is None:
            domains.pop(name, None)
        else:
            domains[name] = found
    volumes = _volumes(source, host) if volumes_touched else before.volumes
    network = _network(source, host) if network_touched else before.network
    return Observation(domains, volumes, network, before.image_sources)


def reconcile_once(
    context: PlanContext,
    source: DomainSource,
    runner: ActionRunner | None,
    progress: Callable[[str], None] = lambda _: None,
    step: Step = no_step,
) -> PassResult:
    """Plan, and with a runner apply and re-plan so statuses describe the result; the
    second plan keeps the VMs the first had nothing to do for (plan.Settled).
    `progress` hears each action as it starts; `step` how far the pass is (the VMs
    planned, the actions done), for the caller to show when the pass is long."""
    observation = with_image_sources(source, context, observe(source, context.host))
    context = with_addressing(context, observation)
    first = plan(context, observation, step=step)
    result = PassResult(context, first, context.findings)
    if runner is None or not first.has_changes:
        return result
    total = len(first.actions)
    for vm_plan in first.vms:
        failed = False
        for action in vm_plan.actions:
            if failed:
                # An object's later steps depend on its earlier ones.
                skipped = SkippedAfterFailure("skipped after an earlier failure")
                result.applied.append(ActionOutcome(action, skipped))
                continue
            step("actions done", len(result.applied), total)
            progress(f"[{len(result.applied) + 1}/{total}] {action.describe()}")
            try:
                runner.run(action)
            except ReconcileError as error:
                result.applied.append(ActionOutcome(action, error))
                failed = True
            else:
                result.applied.append(ActionOutcome(action, None))
    after = _observe_after(source, context.host, observation, [o.action for o in result.applied])
    if after.image_sources is not observation.image_sources:
        after = replace(after, image_sources=observation.image_sources)
    result.final = plan(replace(context, anticipate=False), after, Settled.of(first, observation))
    keep_refusals(first.object_reports, result.final.object_reports)
    for outcome in result.errors:
        status = result.final.statuses.get(outcome.action.owner)
        if status is not None:
            status.set(
                mark_false(
                    VMCondition.CONFIGURATION_APPLIED,
                    VMReason.CONFIGURATION_NOT_APPLIED,
                    f"{outcome.action.describe()} failed: {outcome.error}",
                )
            )
    failures = [(o.action, o.error) for o in result.errors if o.error is not None]
    messages = [(action, str(error)) for action, error in failures]
    explain_failed_starts(result.final.statuses, messages)
    explain_failures(result.final.statuses, result.final.object_reports, failures)
    explain_operation_failures(result.final.object_reports, messages)
    return result
