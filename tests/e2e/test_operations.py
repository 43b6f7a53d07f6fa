"""VirtualMachineOperations on a real libvirtd with QEMU under TCG, as an operator uses them.

One VM walks through the reference's own example (a second core waits for a restart,
a Restart operation applies it, the guest then runs two vCPUs), then a Stop operation
that keeps an AlwaysOnUnlessStoppedManually VM off until a Start operation. One walk,
so the guest boots three times in all (about 6 s each here).
"""

from __future__ import annotations

from typing import Any

import libvirt
import pytest
from ruamel.yaml import YAML

from tests.hosts import Host, NamespaceObserver, vm_yaml

from .lab import (
    TestGuest,
    agent_command,
    wait_for_agent,
)

pytestmark = pytest.mark.e2e

VMOP = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineOperation
metadata:
  name: {name}
  namespace: {namespace}
spec:
  type: {type}
  virtualMachineName: linux-vm
"""


class Operator:
    """Edits the repository, runs passes, and reads what the operator would read."""

    def __init__(self, host: Host, namespace: str, guest: TestGuest) -> None:
        self.host = host
        self.namespace = namespace
        self.guest = guest
        self.observer = NamespaceObserver(host.connection, (namespace,))

    def vm(self, **spec: Any) -> None:
        self.host.write(
            "vm.yaml",
            vm_yaml(namespace=self.namespace, kernel_boot=self.guest.kernel_boot(), **spec),
        )

    def request(self, kind: str, name: str) -> None:
        text = VMOP.format(name=name, namespace=self.namespace, type=kind)
        self.host.write(f"operations/{name}.yaml", text)

    def apply(self) -> int:
        result, mutations = self.host.reconcile(observer=self.observer)
        assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]
        self.host.write_statuses(result)
        return mutations

    @property
    def domain(self) -> libvirt.virDomain:
        return self.host.connection.lookupByName(f"linux-vm.{self.namespace}")

    def report(self, folder: str, name: str) -> dict[str, Any]:
        path = self.host.repo / "status" / folder / self.namespace / f"{name}.yaml"
        return dict(YAML(typ="safe").load(path.read_text(encoding="utf-8"))["status"])

    def vm_status(self) -> dict[str, Any]:
        return self.report("virtualmachines", "linux-vm")

    def phase_of(self, operation: str) -> str:
        return str(self.report("virtualmachineoperations", operation)["phase"])

    def online_vcpus(self) -> int:
        wait_for_agent(self.domain)
        vcpus = agent_command(self.domain, "guest-get-vcpus")
        return sum(1 for vcpu in vcpus if vcpu["online"])


def test_restart_applies_the_new_core_and_stop_keeps_the_vm_off_until_start(
    host: Host, e2e_namespace: str, guest: TestGuest
) -> None:
    operator = Operator(host, e2e_namespace, guest)
    common = {"fraction": "20%", "grace": 30, "memory": "1Gi"}

    # linux-vm with 1 core runs; the guest sees one vCPU.
    operator.vm(cores=1, **common)
    operator.apply()
    assert operator.online_vcpus() == 1

    # 2 cores in the manifest: the running guest keeps 1, the change awaits a restart.
    operator.vm(cores=2, **common)
    operator.apply()
    before = operator.domain.ID()
    assert operator.vm_status()["restartAwaitingChanges"] == [
        {"currentValue": 1, "desiredValue": 2, "operation": "replace", "path": "cpu.cores"}
    ]
    assert operator.online_vcpus() == 1

    # `reconciler vm restart linux-vm`: the Restart operation applies it.
    operator.request("Restart", "restart-linux-vm-1718000000")
    operator.apply()
    restarted = operator.domain.ID()
    assert restarted != before
    assert operator.phase_of("restart-linux-vm-1718000000") == "Completed"
    assert operator.vm_status().get("restartAwaitingChanges", []) == []
    assert operator.online_vcpus() == 2
    assert operator.apply() == 0, "the operation runs once"
    assert operator.domain.ID() == restarted

    # A Stop operation: the guest shuts down and stays off, pass after pass.
    operator.request("Stop", "stop-linux-vm-1718000100")
    operator.apply()
    state, reason = operator.domain.state()
    assert (state, reason) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN)
    assert operator.phase_of("stop-linux-vm-1718000100") == "Completed"
    for _ in range(2):
        assert operator.apply() == 0
        assert not operator.domain.isActive()
    assert operator.vm_status()["phase"] == "Stopped"

    # A Start operation brings it back, still with two vCPUs.
    operator.request("Start", "start-linux-vm-1718000200")
    operator.apply()
    assert operator.domain.isActive()
    assert operator.phase_of("start-linux-vm-1718000200") == "Completed"
    assert operator.vm_status()["phase"] == "Running"
    assert operator.online_vcpus() == 2
    assert operator.apply() == 0
