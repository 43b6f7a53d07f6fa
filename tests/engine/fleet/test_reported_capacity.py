"""Placement weighs the guaranteed capacity each host states in its own Node report when
its Node manifest states none (issue 14: "guaranteed CPU and memory capacity from the
Node reports"); a report is input like any other, so a malformed capacity is ignored."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.api import ObjectId
from reconciler.api.node import Node
from reconciler.engine.fleet.placement import ReportedCapacity, fleet
from reconciler.engine.plan import Outcome, plan
from reconciler.engine.vm.desired import HostContext
from reconciler.reports.pass_inputs import read_plan_context
from reconciler.reports.reported_capacity import reported_capacities
from reconciler.reports.tree import write_node_report
from tests.engine.conftest import HOST, empty, revision, vm_yaml
from tests.engine.fleet.test_placement import NODE_WITH_CPU, node

GIB = 1 << 30
# A VM of two full cores, which the rendezvous hash places on hv2 when nothing limits it.
BIG = "big-0"


def host(name: str) -> HostContext:
    return replace(HOST, node_name=name, cpu_capacity_millicores=64000)


def node_report(status_root: Path, name: str, capacity: str) -> None:
    folder = status_root / "nodes"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        "apiVersion: reconciler.vm-gitops.io/v1alpha1\n"
        "kind: Node\n"
        f"metadata:\n  name: {name}\n"
        f"status:\n  capacity: {capacity}\n  lastError: ''\n",
        encoding="utf-8",
    )


def placed_on(name: str, documents: list[str], status_root: Path | None) -> set[str]:
    context = read_plan_context(revision(*documents), host(name), "rev1", status_root=status_root)
    result = plan(context, empty())
    return {v.object_id.name for v in result.vms if v.outcome is not Outcome.BLOCKED}


def big_vm() -> str:
    return vm_yaml(BIG, cores=2, fraction="100%")


def test_the_chosen_vm_goes_to_hv2_when_no_capacity_is_known(tmp_path: Path) -> None:
    # The premise of the tests below: without any capacity, hv2 is where BIG goes.
    documents = [node("hv1"), node("hv2"), big_vm()]

    assert placed_on("hv2", documents, tmp_path) == {BIG}
    assert placed_on("hv1", documents, tmp_path) == set()


def test_a_node_whose_report_states_too_little_cpu_leaves_the_vm_to_the_other(
    tmp_path: Path,
) -> None:
    # given two Nodes without a capacity in their manifests, hv2 reporting one CPU
    documents = [node("hv1"), node("hv2"), big_vm()]
    node_report(tmp_path, "hv2", "{cpu: '1', memory: 64Gi}")
    # when each host plans the revision with the same reports
    on_hv1 = placed_on("hv1", documents, tmp_path)
    on_hv2 = placed_on("hv2", documents, tmp_path)
    # then the VM of two cores goes to hv1
    assert on_hv1 == {BIG}
    assert on_hv2 == set()


def test_a_node_whose_report_states_too_little_memory_leaves_the_vm_to_the_other(
    tmp_path: Path,
) -> None:
    documents = [node("hv1"), node("hv2"), big_vm()]
    node_report(tmp_path, "hv2", "{cpu: '64', memory: 512Mi}")

    assert placed_on("hv1", documents, tmp_path) == {BIG}


def test_the_manifests_capacity_wins_over_the_report(tmp_path: Path) -> None:
    # given hv2's manifest guaranteeing 4 CPUs while its report says 1
    documents = [node("hv1"), NODE_WITH_CPU.format(name="hv2", cpu=4), big_vm()]
    node_report(tmp_path, "hv2", "{cpu: '1'}")
    # then the manifest counts: the VM stays where the hash puts it
    assert placed_on("hv2", documents, tmp_path) == {BIG}


@pytest.mark.parametrize(
    "capacity",
    [
        "{cpu: '-1'}",
        "{cpu: lots}",
        "{cpu: [1]}",
        "{cpu: true}",
        "{cpu: '1', memory: 1e3}",
        "{memory: 99999999Ei}",
        "{cpu: '99999999999999'}",
        "'1'",
    ],
)
def test_a_malformed_capacity_in_a_report_is_ignored(tmp_path: Path, capacity: str) -> None:
    # given hv2's report with a capacity that is no valid number, and small besides
    documents = [node("hv1"), node("hv2"), big_vm()]
    node_report(tmp_path, "hv2", capacity)
    # then hv2 counts as unlimited, as before it ever reported: the VM goes there
    assert placed_on("hv2", documents, tmp_path) == {BIG}


def test_a_malformed_capacity_is_logged_once_naming_the_report_and_the_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node_report(tmp_path, "hv2", "{cpu: lots}")
    caplog.set_level(logging.WARNING, "reconciler.reports")

    first = reported_capacities(tmp_path)
    second = reported_capacities(tmp_path)

    assert first == second == {}
    warnings = [r.getMessage() for r in caplog.records if "capacity is ignored" in r.getMessage()]
    assert len(warnings) == 1
    assert "nodes/hv2.yaml" in warnings[0] and "hv2" in warnings[0]
    assert "status.capacity.cpu" in warnings[0]


def test_a_host_reads_back_the_capacity_its_own_report_states(tmp_path: Path) -> None:
    # given hv1 writing its Node report with 6 CPUs and 24 GiB
    own = replace(host("hv1"), cpu_capacity_millicores=6000, memory_capacity_bytes=24 * GIB)
    write_node_report(tmp_path, own, "rev1", "")
    # then every host reads that very capacity from it
    assert reported_capacities(tmp_path) == {"hv1": ReportedCapacity(6000, 24 * GIB)}


def test_a_report_of_another_nodes_name_counts_only_for_the_file_it_is_in(
    tmp_path: Path,
) -> None:
    # given a report in hv2's file that claims to be hv1's
    node_report(tmp_path, "hv2", "{cpu: '1'}")
    text = (tmp_path / "nodes" / "hv2.yaml").read_text(encoding="utf-8")
    (tmp_path / "nodes" / "hv2.yaml").write_text(text.replace("name: hv2", "name: hv1"))
    # then it is hv2's capacity, never hv1's
    assert set(reported_capacities(tmp_path)) == {"hv2"}


# --- every host merges manifests and reports alike ------------------------------------

CPUS = st.one_of(st.none(), st.integers(1, 64))
MEMORY = st.one_of(st.none(), st.integers(1, 64).map(lambda g: g * GIB))


def manifest(name: str, cpu: int | None, memory: int | None) -> Node:
    capacity: dict[str, object] = {}
    if cpu is not None:
        capacity["cpu"] = cpu
    if memory is not None:
        capacity["memory"] = str(memory)
    return Node.model_validate(
        {
            "apiVersion": "reconciler.vm-gitops.io/v1alpha1",
            "kind": "Node",
            "metadata": {"name": name},
            "spec": {"capacity": capacity},
        }
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(CPUS, MEMORY, CPUS, MEMORY), min_size=1, max_size=5),
    st.randoms(use_true_random=False),
)
def test_each_capacity_is_the_manifests_else_the_reports_on_every_host(
    stated: list[tuple[int | None, int | None, int | None, int | None]], shuffler: object
) -> None:
    nodes = [manifest(f"hv{i}", cpu, memory) for i, (cpu, memory, _, _) in enumerate(stated)]
    reports = {
        f"hv{i}": ReportedCapacity(None if cpu is None else cpu * 1000, memory)
        for i, (_, _, cpu, memory) in enumerate(stated)
    }
    shuffled = list(nodes)
    shuffler.shuffle(shuffled)  # type: ignore[attr-defined]
    # every host computes the same fleet, whichever host it is and in whatever order
    assert fleet(nodes, "hv0", {}, reports) == fleet(shuffled, "hv0", {}, reports)
    for member, (cpu, memory, reported_cpu, reported_memory) in zip(
        fleet(nodes, "hv0", {}, reports), stated, strict=True
    ):
        want_cpu = cpu if cpu is not None else reported_cpu
        assert member.cpu_millicores == (None if want_cpu is None else want_cpu * 1000)
        assert member.memory_bytes == (memory if memory is not None else reported_memory)


def test_a_vm_reported_on_a_host_keeps_its_home_whatever_that_host_reports(
    tmp_path: Path,
) -> None:
    # A VM that runs somewhere stays there (schedule.py): a report can only steer new ones.
    documents = [node("hv1"), node("hv2"), big_vm()]
    node_report(tmp_path, "hv2", "{cpu: '1'}")
    context = read_plan_context(revision(*documents), host("hv2"), "rev1", status_root=tmp_path)
    context = replace(context, reported_nodes={ObjectId("VirtualMachine", "default", BIG): "hv2"})

    assert {v.object_id.name for v in plan(context, empty()).vms} == {BIG}
