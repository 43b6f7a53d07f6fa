"""A fleet of hosts reading one revision: every VM is run and reported by exactly one."""

from __future__ import annotations

import textwrap
from dataclasses import replace

from reconciler.api import ObjectId
from reconciler.engine.plan import Observation, Outcome, plan
from reconciler.engine.vm.desired import HostContext
from reconciler.model.actions import DefineDomain
from reconciler.reports.pass_inputs import read_plan_context
from tests.engine.conftest import HOST, empty, observed_as_defined, revision, vm_yaml

NODE = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
  labels: {labels}
spec:
  unschedulable: {unschedulable}
"""


def node(name: str, labels: str = "{}", unschedulable: str = "false") -> str:
    return NODE.format(name=name, labels=labels, unschedulable=unschedulable)


def host(name: str) -> HostContext:
    return replace(HOST, node_name=name, cpu_capacity_millicores=64000)


def planned_on(name: str, documents: list[str], observation: Observation | None = None):  # type: ignore[no-untyped-def]
    context = read_plan_context(revision(*documents), host(name), "rev1")
    return plan(context, observation or empty())


def vms(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {vm.object_id.name for vm in result.vms}


def test_without_nodes_the_host_runs_everything() -> None:
    result = planned_on("anyhost", [vm_yaml("a"), vm_yaml("b")])
    assert vms(result) == {"a", "b"}


def test_two_hosts_split_the_vms_without_overlap() -> None:
    documents = [node("hv1"), node("hv2")] + [vm_yaml(f"vm{i}") for i in range(12)]
    on_hv1 = vms(planned_on("hv1", documents))
    on_hv2 = vms(planned_on("hv2", documents))
    assert on_hv1.isdisjoint(on_hv2)
    assert on_hv1 | on_hv2 == {f"vm{i}" for i in range(12)}
    assert on_hv1 and on_hv2  # rendezvous hashing spreads them


def test_node_selector_and_unschedulable_nodes_are_respected() -> None:
    selected = vm_yaml("db").replace(
        "  virtualMachineClassName: generic",
        "  virtualMachineClassName: generic\n  nodeSelector:\n    disktype: ssd",
    )
    documents = [
        node("hv1", "{disktype: hdd}"),
        node("hv2", "{disktype: ssd}"),
        node("hv3", "{disktype: ssd}", unschedulable="true"),
        selected,
    ]
    assert vms(planned_on("hv2", documents)) == {"db"}
    assert vms(planned_on("hv1", documents)) == set()
    assert vms(planned_on("hv3", documents)) == set()


def test_a_vm_running_here_stays_here() -> None:
    documents = [node("hv1"), node("hv2", unschedulable="true"), vm_yaml("a")]
    context = read_plan_context(revision(*documents), host("hv2"), "rev1")
    desired = plan(read_plan_context(revision(*documents), host("hv1"), "rev1"), empty())
    spec = next(a.spec for a in desired.actions if isinstance(a, DefineDomain))
    observed = Observation({spec.name: observed_as_defined(spec)}, {})
    result = plan(context, observed)
    assert vms(result) == {"a"}
    assert result.vms[0].outcome is Outcome.UNCHANGED


def test_the_reported_node_keeps_the_vm() -> None:
    documents = [node("hv1"), node("hv2")] + [vm_yaml(f"vm{i}") for i in range(6)]
    first = vms(planned_on("hv1", documents))
    moved = next(iter(first))
    context = read_plan_context(revision(*documents), host("hv2"), "rev1")
    context = replace(context, reported_nodes={ObjectId("VirtualMachine", "default", moved): "hv2"})
    assert moved in vms(plan(context, empty()))


def test_a_vm_no_node_can_take_is_reported_once_as_unschedulable() -> None:
    stuck = vm_yaml("stuck").replace(
        "  virtualMachineClassName: generic",
        "  virtualMachineClassName: generic\n  nodeSelector:\n    gpu: 'yes'",
    )
    documents = [node("hv1"), node("hv2"), stuck]
    first = planned_on("hv1", documents)
    assert vms(planned_on("hv2", documents)) == set()
    status = first.statuses[ObjectId("VirtualMachine", "default", "stuck")]
    assert status.phase == "Pending"
    running = next(c for c in status.conditions if c.type == "Running")
    assert running.reason == "Unschedulable"
    assert not first.actions


def test_a_host_outside_the_fleet_starts_nothing_and_says_so() -> None:
    result = planned_on("stranger", [node("hv1"), vm_yaml("a")])
    assert vms(result) == set()
    assert any("not a Node" in note for note in result.notes)


def test_a_suspended_vm_is_reported_but_not_changed() -> None:
    suspended = vm_yaml("a").replace(
        "metadata:\n  name: a\n",
        "metadata:\n  name: a\n  annotations:\n    reconciler.vm-gitops.io/suspend: 'true'\n",
    )
    result = planned_on("anyhost", [suspended])
    assert not result.actions
    assert result.vms[0].outcome is Outcome.SUSPENDED
    assert ObjectId("VirtualMachine", "default", "a") in result.statuses


def with_spec(document: str, extra: str) -> str:
    """A VM manifest with more of its spec (indented two spaces under spec:)."""
    return document.replace(
        "  virtualMachineClassName: generic",
        "  virtualMachineClassName: generic\n" + textwrap.indent(textwrap.dedent(extra), "  "),
    )


def labelled(document: str, labels: str) -> str:
    return document.replace("metadata:\n", f"metadata:\n  labels: {labels}\n", 1)


APART = """
affinity:
  virtualMachineAndPodAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector:
          matchLabels:
            app: db
        topologyKey: kubernetes.io/hostname
"""


def test_replicas_with_strict_anti_affinity_never_share_a_host() -> None:
    # given two hosts and three database replicas that must not share one
    replicas = [labelled(with_spec(vm_yaml(f"db{i}"), APART), "{app: db}") for i in range(3)]
    documents = [node("hv1"), node("hv2"), *replicas]
    # when each host plans the same revision
    on_hv1, on_hv2 = planned_on("hv1", documents), planned_on("hv2", documents)
    placed_hv1 = {v.object_id.name for v in on_hv1.vms if v.outcome is not Outcome.BLOCKED}
    placed_hv2 = {v.object_id.name for v in on_hv2.vms if v.outcome is not Outcome.BLOCKED}
    # then each host runs one replica, and the third waits, reported once with the rule
    assert len(placed_hv1) == 1 and len(placed_hv2) == 1 and placed_hv1 != placed_hv2
    waiting = [v for r in (on_hv1, on_hv2) for v in r.vms if v.outcome is Outcome.BLOCKED]
    assert len(waiting) == 1
    assert "virtualMachineAndPodAntiAffinity" in waiting[0].details[0]


def test_a_node_full_of_guaranteed_cpu_takes_no_more_and_the_vm_waits_on_the_first() -> None:
    # given a fleet of one node that guarantees 1 CPU, and two VMs of one full core each
    full = [vm_yaml(f"v{i}", fraction="100%") for i in range(2)]
    documents = [NODE_WITH_CPU.format(name="hv1", cpu=1), *full]
    result = planned_on("hv1", documents)
    # then one is planned, the other waits with the capacity named
    blocked = [v for v in result.vms if v.outcome is Outcome.BLOCKED]
    assert len(result.vms) == 2 and len(blocked) == 1
    assert "guaranteed CPU" in blocked[0].details[0]


NODE_WITH_CPU = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
spec:
  capacity:
    cpu: {cpu}
"""
