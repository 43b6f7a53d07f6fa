"""Operations a host makes (evacuations) live in its status tree: the report carries the
operation whole, every host reads it back as an operation of the revision, and the host
that made it removes it when it is finished with (issue 14)."""

from __future__ import annotations

from pathlib import Path

from reconciler.api import ObjectId, VirtualMachineOperation
from reconciler.engine.operations.generated import (
    CAUSE_LABEL,
    ORIGIN_LABEL,
    Cause,
    GeneratedOperation,
)
from reconciler.engine.plan import Plan
from reconciler.reports.documents import read_document
from reconciler.reports.pass_inputs import read_plan_context
from reconciler.reports.reported_operations import reported_operations
from reconciler.reports.tree import write_host_reports, write_object_reports
from tests.engine.conftest import HOST, revision, vm_yaml
from tests.reports.conftest import host, plan_of

OPERATION = GeneratedOperation(
    ObjectId("VirtualMachineOperation", "default", "evacuation-x2b4c"),
    "linux-vm",
    "hv1",
    Cause.EVACUATION,
)
IN_PROGRESS = {
    "phase": "InProgress",
    "conditions": [
        {
            "type": "Completed",
            "status": "False",
            "reason": "MigrationInProgress",
            "message": "migrating the VM to hv2",
        }
    ],
}
PATH = Path("virtualmachineoperations") / "default" / "evacuation-x2b4c.yaml"


def written(root: Path) -> None:
    plan = Plan(
        object_reports={OPERATION.id: IN_PROGRESS},
        generated_operations={OPERATION.id: OPERATION},
    )
    write_object_reports(
        root,
        plan.object_reports,
        set(),
        "2026-12-03T00:00:00Z",
        made=plan.generated_operations,
    )


def test_the_report_of_a_made_operation_carries_its_spec_and_who_made_it(
    tmp_path: Path,
) -> None:
    written(tmp_path)
    document = read_document(tmp_path / PATH)
    assert document["spec"] == {"type": "Evict", "virtualMachineName": "linux-vm"}
    assert document["metadata"]["labels"] == {ORIGIN_LABEL: "hv1", CAUSE_LABEL: "evacuation"}
    assert document["status"]["phase"] == "InProgress"
    assert list(document) == ["apiVersion", "kind", "metadata", "spec", "status"]


def test_every_host_reads_it_back_as_an_operation_of_the_revision(tmp_path: Path) -> None:
    # given hv1's report of its evacuation in the status tree
    written(tmp_path)
    # when another host reads its pass inputs
    assert reported_operations(tmp_path)[OPERATION.id].generated == OPERATION
    ctx = read_plan_context(
        revision(vm_yaml(run_policy="AlwaysOn")), HOST, "rev", status_root=tmp_path
    )
    # then the Evict is an operation of the revision like one from Git
    loaded = ctx.inventory.get(OPERATION.id)
    assert loaded is not None and isinstance(loaded.model, VirtualMachineOperation)
    assert loaded.model.spec.virtual_machine_name == "linux-vm"


def test_an_operation_from_git_of_the_same_name_wins_over_the_report(tmp_path: Path) -> None:
    written(tmp_path)
    from_git = f"""
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineOperation
metadata:
  name: {OPERATION.id.name}
  namespace: default
spec:
  type: Restart
  virtualMachineName: linux-vm
"""
    ctx = read_plan_context(revision(vm_yaml(), from_git), HOST, "rev", status_root=tmp_path)
    loaded = ctx.inventory.get(OPERATION.id)
    assert loaded is not None and isinstance(loaded.model, VirtualMachineOperation)
    assert loaded.model.spec.type == "Restart"


def test_a_retired_operation_report_is_removed_and_nothing_else(tmp_path: Path) -> None:
    written(tmp_path)
    other = tmp_path / PATH.with_name("restart-linux-vm-1718000000.yaml")
    other.write_text((tmp_path / PATH).read_text())
    write_object_reports(
        tmp_path, {}, None, "2026-12-03T00:00:00Z", retired=frozenset({OPERATION.id})
    )
    assert not (tmp_path / PATH).exists()
    assert other.exists()


def test_a_drained_host_node_report_and_the_readme_show_the_drain(tmp_path: Path) -> None:
    # given hv1's plan while its Node is drained, two VMs still there
    plan = plan_of("hv1", "vm-a", "vm-b")
    plan.drain = {"phase": "Draining", "message": "2 still run", "running": 2}
    # when hv1 writes its reports
    write_host_reports(tmp_path, plan, host("hv1"), "rev1")
    # then its Node report has the drain, and the README's host row says so
    node = read_document(tmp_path / "nodes" / "hv1.yaml")
    assert node["status"]["drain"]["phase"] == "Draining"
    assert "| hv1 (Draining: 2 running) | 2 |" in (tmp_path / "README.md").read_text()
    # and once drained, and back in service
    plan.drain = {"phase": "Drained", "message": "none", "running": 0}
    write_host_reports(tmp_path, plan, host("hv1"), "rev1")
    assert "| hv1 (Drained) |" in (tmp_path / "README.md").read_text()
    plan.drain = None
    write_host_reports(tmp_path, plan, host("hv1"), "rev1")
    assert "drain" not in read_document(tmp_path / "nodes" / "hv1.yaml")["status"]
    assert "| hv1 | 2 |" in (tmp_path / "README.md").read_text()


def test_another_host_never_removes_the_report_of_an_operation_a_host_made(
    tmp_path: Path,
) -> None:
    # given hv1's evacuation report, and a plain operation's report, in the tree
    written(tmp_path)
    plain = tmp_path / PATH.with_name("restart-linux-vm-1718000000.yaml")
    plain.write_text((tmp_path / PATH).read_text().replace("evacuation-x2b4c", "restart-x"))
    # when a host whose revision knows neither writes its reports (its view is older)
    write_object_reports(tmp_path, {}, set(), "2026-12-03T00:00:00Z")
    # then the plain report goes, the evacuation stays for hv1 to retire
    assert not plain.exists()
    assert (tmp_path / PATH).exists()
