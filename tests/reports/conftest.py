"""Real Git for the status tests: a bare remote seeded with a manifest, and a clone of
it that plays "someone else" pushing."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.api import ObjectId
from reconciler.engine.plan import Plan
from reconciler.engine.vm.desired import HostContext
from reconciler.model.conditions import Condition
from reconciler.model.status import VMStatus
from tests.gitrepos import Remote

MANIFEST = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: linux-vm
  namespace: default
spec:
  virtualMachineClassName: generic
"""


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    """A remote whose `main` already holds a manifest, as a fleet's repository does."""
    remote = Remote.create(tmp_path / "remote.git", author=tmp_path / "author")
    remote.commit({"vm.yaml": MANIFEST}, "seed")
    return remote


def host(node_name: str) -> HostContext:
    return HostContext(node_name=node_name, cpu_capacity_millicores=16_000)


def vm(name: str, namespace: str = "default") -> ObjectId:
    return ObjectId("VirtualMachine", namespace, name)


def running(node_name: str, cores: int = 1) -> VMStatus:
    return VMStatus(
        phase="Running",
        node_name=node_name,
        conditions=[Condition("AgentReady", True, "AgentReady")],
        cores=cores,
        core_fraction="10%",
        requested_millicores=100 * cores,
        sockets=1,
        cores_per_socket=cores,
        memory="1Gi",
        revision="rev1",
        created="2024-01-01T00:00:00Z",
    )


def plan_of(node_name: str, *names: str) -> Plan:
    """The plan of a host that runs the VMs `names`, all settled."""
    return Plan(statuses={vm(name): running(node_name) for name in names})
