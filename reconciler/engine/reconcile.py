"""One reconcile pass: observe -> load -> plan -> apply -> observe again -> statuses.

The only engine module that does I/O, through the two narrow interfaces below,
which `reconciler.libvirt` implements.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from reconciler.api.node import Node
from reconciler.engine.actions import (
    Action,
    DefineDomain,
    DeleteDiskVolume,
    DeleteImageVolume,
    DeleteSeedVolume,
    EnsureDiskVolume,
    EnsureImageVolume,
    EnsureSeedVolume,
    ReleaseAddress,
    ReserveAddress,
    ResizeDisk,
)
from reconciler.engine.addressing import AddressInputs, NetworkFacts, assign
from reconciler.engine.block_devices import explain_failures
from reconciler.engine.desired import HostContext
from reconciler.engine.device_index import device_index
from reconciler.engine.domain import ObservedDomain, VolumeFacts
from reconciler.engine.lifecycle import explain_failed_starts
from reconciler.engine.operation_reports import explain_operation_failures, keep_refusals
from reconciler.engine.placement import fleet
from reconciler.engine.plan import (
    Observation,
    Plan,
    PlanContext,
    Settled,
    change_table_for,
    plan,
)
from reconciler.engine.storage import ImageSourceFacts, images_to_inspect
from reconciler.findings import Finding
from reconciler.loader import LoadResult
from reconciler.model.conditions import VMCondition, VMReason, mark_false
from reconciler.policies import load_change_rules, load_topology_policy
from reconciler.rules import Inventory, check
from reconciler.status.reported import reported_disks, reported_nodes
from reconciler.status.reported_operations import reported_operations


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
    def run(self, action: Action) -> str | None:
        """Carry out one action; the error message, or None on success."""
        ...


@dataclass
class ActionOutcome:
    action: Action
    error: str | None


@dataclass
class PassResult:
    context: PlanContext
    plan: Plan
    findings: list[Finding]
    applied: list[ActionOutcome] = field(default_factory=list)
    final: Plan | None = None

    @property
    def errors(self) -> list[ActionOutcome]:
        return [outcome for outcome in self.applied if outcome.error]

    @property
    def statuses_plan(self) -> Plan:
        return self.final or self.plan


def plan_context(
    result: LoadResult,
    host: HostContext,
    revision: str,
    pool: Sequence[ipaddress.IPv4Network] = (),
    policy_dir: Path | None = None,
    status_root: Path | None = None,
    addresses: AddressInputs | None = None,
    disk_reports_root: Path | None = None,
) -> PlanContext:
    """Everything a plan needs besides the observation; status_root holds the fleet's
    latest reports, which keep each VM on the host that runs it. `addresses` turns on
    IP address management (the pool, the last leases, the clock). The disk reports
    (under disk_reports_root, else status_root) tell which disks existed: without them
    no disk volume is ever deleted. The operation reports are read from the same root:
    the reports this pass writes over."""
    disks_root = disk_reports_root or status_root
    findings = check(result, pool, policy_dir, host.image_directories)
    topology = load_topology_policy(policy_dir)
    rules = load_change_rules(host.change_profile, policy_dir)
    return PlanContext(
        inventory=Inventory(result),
        findings=findings,
        broken=frozenset(result.broken),
        unreadable_files=tuple(f for f in result.findings if not f.object),
        topology=topology,
        change_table=change_table_for(rules, topology),
        host=host,
        revision=revision,
        fleet=tuple(
            fleet(
                (obj.model for obj in result.objects if isinstance(obj.model, Node)),
                host.node_name,
                dict(host.node_labels),
            )
        ),
        reported_nodes=reported_nodes(status_root) if status_root is not None else {},
        addresses=addresses if addresses is not None and addresses.pool else None,
        disk_records=reported_disks(disks_root) if disks_root is not None else {},
        operation_reports=reported_operations(disks_root) if disks_root is not None else {},
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
        if isinstance(action, _VOLUME_ACTIONS):
            volumes_touched = True
        elif isinstance(action, ReserveAddress | ReleaseAddress):
            network_touched = True
        elif isinstance(action, DefineDomain):
            names.add(action.spec.name)
        else:
            name = getattr(action, "domain", None)
            if not isinstance(name, str):
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


_VOLUME_ACTIONS = (
    DeleteImageVolume,
    EnsureImageVolume,
    EnsureDiskVolume,
    ResizeDisk,
    DeleteDiskVolume,
    EnsureSeedVolume,
    DeleteSeedVolume,
)


def reconcile_once(
    context: PlanContext,
    source: DomainSource,
    runner: ActionRunner | None,
    progress: Callable[[str], None] = lambda _: None,
) -> PassResult:
    """Plan, and with a runner apply and re-plan so statuses describe the result; the
    second plan keeps the VMs the first had nothing to do for (plan.Settled)."""
    observation = with_image_sources(source, context, observe(source, context.host))
    context = with_addressing(context, observation)
    first = plan(context, observation)
    result = PassResult(context, first, context.findings)
    if runner is None or not first.has_changes:
        return result
    total = len(first.actions)
    for vm_plan in first.vms:
        failed = False
        for action in vm_plan.actions:
            if failed:
                # An object's later steps depend on its earlier ones.
                result.applied.append(ActionOutcome(action, "skipped after an earlier failure"))
                continue
            progress(f"[{len(result.applied) + 1}/{total}] {action.describe()}")
            error = runner.run(action)
            result.applied.append(ActionOutcome(action, error))
            failed = error is not None
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
    failures = [(o.action, o.error or "") for o in result.errors]
    explain_failed_starts(result.final.statuses, failures)
    explain_failures(result.final.statuses, result.final.object_reports, failures)
    explain_operation_failures(result.final.object_reports, failures)
    return result
