"""The VM's phase as the guest really moves, and the conditions that say why it waits.

Pure functions the planner and the reconcile pass call; the phase table follows
reference/dvp-api.md §2.2 read onto libvirt's domain states and their reasons.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from reconciler.api import ObjectId
from reconciler.model.actions import Action, RestartDomain, StartDomain
from reconciler.model.conditions import VMCondition, VMReason, mark_false, mark_true
from reconciler.model.domain import DomainMetadata, ObservedDomain, PowerState
from reconciler.model.guest import DISCONNECTED, agent_ready
from reconciler.model.phases import VMPhase
from reconciler.model.status import VMStatus
from reconciler.policies import TopologyPolicy
from reconciler.rules.topology import TopologyError, topology_for

# libvirt keeps a domain paused with these reasons while it starts or stops it, for as
# long as QEMU takes (seconds under TCG): the platform's Starting and Stopping.
_PAUSED_PHASES = {
    "starting_up": VMPhase.STARTING,
    "shutting_down": VMPhase.STOPPING,
    "migration": VMPhase.MIGRATING,
    "postcopy": VMPhase.MIGRATING,
}

_STATE_PHASES = {
    PowerState.RUNNING: VMPhase.RUNNING,
    PowerState.BLOCKED: VMPhase.RUNNING,
    PowerState.PAUSED: VMPhase.PAUSE,
    PowerState.PMSUSPENDED: VMPhase.PAUSE,
    PowerState.SHUTDOWN: VMPhase.STOPPING,
    PowerState.SHUTOFF: VMPhase.STOPPED,
    PowerState.CRASHED: VMPhase.STOPPED,
    PowerState.NOSTATE: VMPhase.PENDING,
}

# The Running condition's reason when libvirt could not start the domain: the platform
# gives it when the hypervisor side of a VM failed (dvp-api.md §2.3).
START_FAILED = VMReason.INTERNAL_VIRTUAL_MACHINE_ERROR


def phase_of(observed: ObservedDomain | None) -> VMPhase:
    """The phase libvirt's view of the domain shows; no domain yet is Pending."""
    if observed is None:
        return VMPhase.PENDING
    if observed.migration is not None:
        return VMPhase.MIGRATING
    if observed.state is PowerState.PAUSED and observed.reason in _PAUSED_PHASES:
        return _PAUSED_PHASES[observed.reason]
    return _STATE_PHASES[observed.state]


def running_metadata(observed: ObservedDomain | None) -> DomainMetadata | None:
    """The metadata of the instance that runs, else of the next-boot definition."""
    if observed is None:
        return None
    if observed.state.active and observed.live is not None and observed.live.metadata is not None:
        return observed.live.metadata
    return observed.config.metadata


def report_agent(status: VMStatus, observed: ObservedDomain | None) -> None:
    """`AgentReady` and `guestOSInfo` of the running instance (dvp-api.md §2.1, §2.3).

    The condition is always set and VMStatus.as_dict leaves it out in Pending, Starting
    and Stopped, as the platform removes it there.
    """
    agent = None
    if observed is not None and observed.state.active:
        # An instance observed without its agent (a hand-built observation) has none.
        agent = observed.agent or DISCONNECTED
    status.set(agent_ready(agent))
    if agent is not None and agent.ready and agent.os_info is not None:
        status.guest_os_info = agent.os_info.as_status()


def start_failed(status: VMStatus, message: str) -> None:
    """A start libvirt refused: the VM still waits to run, and `Running` says why.

    Pending, as the platform shows a VM whose instance could not be created (§2.2); the
    next pass tries again. A domain that runs after all keeps its phase.
    """
    if status.phase in (VMPhase.STOPPED, VMPhase.PENDING, VMPhase.STARTING):
        status.phase = VMPhase.PENDING
        status.set(
            mark_false(VMCondition.RUNNING, START_FAILED, f"the VM did not start: {message}")
        )


def explain_failed_starts(
    statuses: Mapping[ObjectId, VMStatus], failures: Sequence[tuple[Action, str]]
) -> None:
    """Put a failed start into the `Running` condition of its VM's final status.

    The message is the VM's first error, in the order the actions ran: when the start
    was skipped because defining the domain failed, that failure is what explains it
    (ConfigurationApplied, which also carries it, is hidden in Pending).
    """
    first: dict[ObjectId, str] = {}
    starts: set[ObjectId] = set()
    for action, error in failures:
        first.setdefault(action.owner, f"{action.describe()}: {error}")
        if isinstance(action, StartDomain | RestartDomain):
            starts.add(action.owner)
    for owner in sorted(starts):
        status = statuses.get(owner)
        if status is not None:
            start_failed(status, first[owner])


def terminating_status(
    node_name: str,
    observed: ObservedDomain,
    topology: TopologyPolicy,
    requested_millicores: int,
) -> VMStatus:
    """The report of a VM whose manifest was deleted while its domain is still on the host:
    Terminating (the platform's phase for a VM being deleted) until it is undefined."""
    active = observed.state.active
    meta: DomainMetadata | None = None
    if active and observed.live is not None:
        meta = observed.live.metadata
    meta = meta or observed.config.metadata
    spec = meta.spec if meta is not None else {}
    cpu = spec.get("cpu", {}) if isinstance(spec.get("cpu"), dict) else {}
    memory = spec.get("memory", {}) if isinstance(spec.get("memory"), dict) else {}
    status = VMStatus(
        phase=VMPhase.TERMINATING,
        node_name=node_name if active else "",
        cores=int(cpu.get("cores", 0) or 0),
        core_fraction=str(cpu.get("coreFraction", "100%")),
        memory=str(memory.get("size", "")),
        requested_millicores=requested_millicores if active else None,
        revision=meta.revision if meta is not None else "",
        created=observed.config.metadata.created if observed.config.metadata else "",
    )
    with contextlib.suppress(TopologyError):
        layout = topology_for(topology, status.cores)
        status.sockets, status.cores_per_socket = layout.sockets, layout.cores_per_socket
    if active:
        status.set(mark_true(VMCondition.RUNNING, VMReason.RUNNING))
    else:
        status.set(mark_false(VMCondition.RUNNING, VMReason.NOT_RUNNING))
    report_agent(status, observed)
    return status
