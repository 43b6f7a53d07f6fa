"""Build revisions and observed hosts for planner tests, as plain values."""

from __future__ import annotations

import textwrap

from reconciler.engine.plan import Observation, PlanContext
from reconciler.engine.vm.desired import HostContext
from reconciler.loader import LoadResult, load_text
from reconciler.model.domain import DefinitionView, DomainSpec, ObservedDomain, PowerState
from reconciler.reports.pass_inputs import read_plan_context
from tests.hosts import CLASS

VM = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: {name}
spec:
  virtualMachineClassName: generic
  runPolicy: {run_policy}
  disruptions:
    restartApprovalMode: {approval}
  cpu:
    cores: {cores}
    coreFraction: {fraction}
  memory:
    size: {memory}
  blockDeviceRefs:
    - kind: VirtualDisk
      name: {name}-root
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: {name}-root
spec:
  persistentVolumeClaim:
    size: 10Gi
"""

# The planner tests' images are files under /srv.
HOST = HostContext(
    node_name="hv1",
    domain_type="qemu",
    storage_pool="pool",
    cpu_capacity_millicores=8000,
    image_directories=("/srv",),
)


def vm_yaml(
    name: str = "linux-vm",
    cores: int = 1,
    fraction: str = "10%",
    memory: str = "1Gi",
    run_policy: str = "AlwaysOnUnlessStoppedManually",
    approval: str = "Manual",
) -> str:
    return VM.format(
        name=name,
        cores=cores,
        fraction=fraction,
        memory=memory,
        run_policy=run_policy,
        approval=approval,
    )


def revision(*documents: str) -> LoadResult:
    result = LoadResult()
    for index, text in enumerate((CLASS, *documents)):
        result.extend(load_text(textwrap.dedent(text), f"file{index}.yaml"))
    return result


def context_for(result: LoadResult, host: HostContext = HOST) -> PlanContext:
    return read_plan_context(result, host, revision="rev1")


def observed_as_defined(
    spec: DomainSpec,
    state: PowerState = PowerState.RUNNING,
    reason: str = "booted",
    live: DomainSpec | None = None,
) -> ObservedDomain:
    """What libvirt reports for a domain defined from `spec` (and started from `live`)."""
    config = DefinitionView(spec.facts(), spec.metadata)
    started = live or spec
    live_view = DefinitionView(started.facts(), started.metadata) if state.active else None
    return ObservedDomain(spec.name, spec.uuid, state, reason, True, config, live_view)


def empty() -> Observation:
    return Observation({}, {})
