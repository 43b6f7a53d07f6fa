"""A host's copies of VMs other hosts run (engine/fleet/strays.py) in its Node report:
named for the operator, while the VM's own report stays the running host's."""

from __future__ import annotations

from pathlib import Path

from reconciler.engine.fleet.strays import StrayDomain, StrayKind
from reconciler.engine.plan import Plan
from reconciler.reports.documents import read_document
from reconciler.reports.tree import write_host_reports
from tests.reports.conftest import host, plan_of, vm

LEFT_BEHIND = StrayDomain("moved.default", vm("moved"), "hv2", StrayKind.DUPLICATE, "hv2")


def with_stray(plan: Plan) -> Plan:
    plan.strays = [LEFT_BEHIND]
    return plan


def test_the_node_report_names_each_stray_domain_and_what_was_done(tmp_path: Path) -> None:
    # given hv1 has an older copy of a VM that hv2 runs
    write_host_reports(tmp_path, with_stray(plan_of("hv1", "a")), host("hv1"), "rev1")
    # then hv1's Node report says so, with the VM, the host that runs it and the remedy
    node = read_document(tmp_path / "nodes" / "hv1.yaml")["status"]
    (entry,) = node["strayDomains"]
    assert entry["name"] == "moved.default"
    assert entry["virtualMachine"] == "default/moved"
    assert entry["node"] == "hv2"
    assert entry["reason"] == "Duplicate"
    assert "paused" in entry["message"] and "virsh undefine" in entry["message"]


def test_the_running_hosts_report_of_the_vm_is_left_alone(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv2", "moved"), host("hv2"), "rev1")
    theirs = (tmp_path / "virtualmachines" / "default" / "moved.yaml").read_bytes()

    write_host_reports(
        tmp_path,
        with_stray(plan_of("hv1", "a")),
        host("hv1"),
        "rev1",
        desired_vms={vm("a"), vm("moved")},
    )

    assert (tmp_path / "virtualmachines" / "default" / "moved.yaml").read_bytes() == theirs


def test_a_node_report_without_strays_has_no_such_field(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev1")
    assert "strayDomains" not in read_document(tmp_path / "nodes" / "hv1.yaml")["status"]
