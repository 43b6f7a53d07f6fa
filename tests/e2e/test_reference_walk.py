"""The reference's own example on a real libvirtd with QEMU under TCG.

One VM, `linux-vm`, walks through the changes the platform documents, in the
order an operator would make them; each step asserts what the operator would
see in libvirt and in the status reports. Steps share the running guest to
keep starts (about 7 s each here) to the few the walk needs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import libvirt
import pytest
from ruamel.yaml import YAML

from reconciler.engine.plan import Outcome
from reconciler.libvirt.facts import parse_definition
from tests.hosts import Host, vm_yaml

from .lab import TestGuest, wait_for_agent

pytestmark = pytest.mark.e2e


class Walk:
    """The VM under test and the manifest edits of the walk."""

    def __init__(self, host: Host, namespace: str, guest: TestGuest) -> None:
        self.host = host
        self.namespace = namespace
        self.guest = guest
        self.domain_name = f"linux-vm.{namespace}"

    def write(self, **spec: object) -> None:
        self.host.write(
            "vm.yaml",
            vm_yaml(
                namespace=self.namespace,
                kernel_boot=self.guest.kernel_boot(),
                grace=30,
                **spec,  # type: ignore[arg-type]
            ),
        )

    @property
    def domain(self) -> libvirt.virDomain:
        return self.host.connection.lookupByName(self.domain_name)

    def running_vcpus(self) -> int:
        return parse_definition(self.domain.XMLDesc(0)).facts.vcpus

    def next_boot_vcpus(self) -> int:
        xml = self.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        return parse_definition(xml).facts.vcpus

    def status(self) -> dict:  # type: ignore[type-arg]
        path = self.host.repo / "status" / "virtualmachines" / self.namespace / "linux-vm.yaml"
        return YAML(typ="safe").load(path.read_text(encoding="utf-8"))["status"]

    def readme_row(self) -> list[str]:
        readme = (self.host.repo / "status" / "README.md").read_text(encoding="utf-8")
        header = next(line for line in readme.splitlines() if line.startswith("| NAMESPACE"))
        row = next(line for line in readme.splitlines() if f"| {self.namespace} |" in line)
        names = [cell.strip() for cell in header.strip("|").split("|")]
        return dict(zip(names, [c.strip() for c in row.strip("|").split("|")], strict=True))

    def apply(self) -> int:
        """One pass plus the status reports; the number of mutating libvirt calls."""
        result, mutations = self.host.reconcile()
        assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]
        self.host.write_statuses(result)
        self.last = result
        return mutations


def conditions(status: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {c["type"]: c["status"] for c in status.get("conditions", [])}


def test_reference_walk(host: Host, e2e_namespace: str, guest: TestGuest) -> None:
    walk = Walk(host, e2e_namespace, guest)

    # linux-vm with 1 core runs.
    walk.write(cores=1, fraction="20%")
    walk.apply()
    assert walk.domain.isActive()
    wait_for_agent(walk.domain)
    assert walk.running_vcpus() == 1
    assert walk.status()["phase"] == "Running"

    # The manifest goes to 2 cores: the running VM keeps 1, the next boot has 2.
    walk.write(cores=2, fraction="20%")
    walk.apply()
    started_id = walk.domain.ID()
    assert walk.running_vcpus() == 1
    assert walk.next_boot_vcpus() == 2
    status = walk.status()
    assert status["restartAwaitingChanges"] == [
        {"currentValue": 1, "desiredValue": 2, "operation": "replace", "path": "cpu.cores"}
    ]
    assert conditions(status)["AwaitingRestartToApplyConfiguration"] == "True"
    assert walk.readme_row()["NEED RESTART"] == "True"

    # A second apply over the same revision changes nothing, not even a status file.
    before = {p: p.read_bytes() for p in (host.repo / "status").rglob("*") if p.is_file()}
    assert walk.apply() == 0
    after = {p: p.read_bytes() for p in (host.repo / "status").rglob("*") if p.is_file()}
    assert after == before
    assert walk.domain.ID() == started_id

    # restartApprovalMode Automatic: the engine restarts the VM, which then runs 2 vCPUs.
    walk.write(cores=2, fraction="20%", approval="Automatic")
    walk.apply()
    assert any(vm.outcome is Outcome.RESTARTED for vm in walk.last.plan.vms)
    assert walk.domain.isActive()
    assert walk.domain.ID() != started_id
    assert walk.running_vcpus() == 2
    status = walk.status()
    assert status.get("restartAwaitingChanges", []) == []
    assert "AwaitingRestartToApplyConfiguration" not in conditions(status)
    assert walk.readme_row()["NEED RESTART"] == "False"
    wait_for_agent(walk.domain)

    # A runPolicy change needs no restart.
    running_id = walk.domain.ID()
    walk.write(cores=2, fraction="20%", approval="Automatic", run_policy="AlwaysOn")
    walk.apply()
    assert walk.domain.ID() == running_id
    assert walk.status().get("restartAwaitingChanges", []) == []

    # A sizing violation (5 cores need at least 5Gi here) leaves the VM untouched.
    next_boot = walk.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    walk.write(cores=5, fraction="20%", approval="Automatic", run_policy="AlwaysOn")
    assert walk.apply() == 0
    assert walk.domain.ID() == running_id
    assert walk.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == next_boot
    status = walk.status()
    assert conditions(status)["SizingPolicyMatched"] == "False"
    assert "generic" in next(
        c["message"] for c in status["conditions"] if c["type"] == "SizingPolicyMatched"
    )

    # A hand-made `virsh destroy` is undone on the next pass.
    walk.write(cores=2, fraction="20%", approval="Automatic", run_policy="AlwaysOn")
    walk.domain.destroy()
    walk.apply()
    assert walk.domain.isActive()
    assert walk.status()["phase"] == "Running"
    wait_for_agent(walk.domain)

    # AlwaysOff shuts the guest down (gracefully: it powers itself off) and keeps it off.
    walk.write(cores=2, fraction="20%", approval="Automatic", run_policy="AlwaysOff")
    walk.apply()
    state, reason = walk.domain.state()
    assert state == libvirt.VIR_DOMAIN_SHUTOFF
    assert reason == libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN  # not forced off
    assert walk.status()["phase"] == "Stopped"
    assert walk.apply() == 0
    assert not walk.domain.isActive()

    # The manifest deleted: the domain goes, its disk stays.
    host.remove("vm.yaml")
    host.write(
        "disk.yaml",
        vm_yaml(namespace=e2e_namespace).split("---", 1)[1],
    )
    walk.apply()
    assert walk.domain_name not in [d.name() for d in host.connection.listAllDomains(0)]
    pool = host.connection.storagePoolLookupByName(host.storage_pool)
    pool.refresh(0)
    assert f"vd-{e2e_namespace}-linux-vm-root.qcow2" in pool.listVolumes()


def test_cli_apply_twice_rewrites_no_status_file(
    host: Host, e2e_namespace: str, guest: TestGuest, tmp_path: Path
) -> None:
    """The same through `reconciler apply`, as an operator runs it."""
    host.write(
        "vm.yaml",
        vm_yaml(namespace=e2e_namespace, kernel_boot=guest.kernel_boot(), run_policy="AlwaysOff"),
    )
    status_dir = tmp_path / "status"
    command = [
        sys.executable,
        "-m",
        "reconciler",
        "apply",
        str(host.repo),
        "--libvirt-uri",
        "qemu:///system",
        "--storage-pool",
        host.storage_pool,
        "--network",
        str(host.network),
        "--domain-type",
        "qemu",
        "--node-name",
        "e2e",
        "--status-dir",
        str(status_dir),
    ]
    first = subprocess.run(command, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "define domain" in first.stdout + first.stderr
    written = {p: p.read_bytes() for p in status_dir.rglob("*") if p.is_file()}
    assert status_dir / "virtualmachines" / e2e_namespace / "linux-vm.yaml" in written
    second = subprocess.run(command, capture_output=True, text=True, check=False)
    assert second.returncode == 0, second.stderr
    assert {p: p.read_bytes() for p in status_dir.rglob("*") if p.is_file()} == written
    assert "0 VM(s) with changes, 1 unchanged" in second.stdout
