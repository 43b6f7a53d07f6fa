"""An invalid Node manifest holds placement back (issue 14): with a Node the hosts
cannot read, each might see another fleet (with every Node invalid, each would be a
fleet of one and start every VM itself), so no VM is placed anew until it is fixed."""

from __future__ import annotations

from dataclasses import replace

from reconciler.api import ObjectId
from reconciler.engine.plan import Observation, PlanContext, plan
from reconciler.model.actions import DefineDomain, StartDomain
from tests.engine.conftest import HOST, context_for, revision, vm_yaml
from tests.engine.operations.vmops import DOMAIN, LINUX_VM, defined

NODE = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
"""


def host(name: str, *nodes: str, reported: dict[ObjectId, str] | None = None) -> PlanContext:
    ctx = context_for(
        revision(vm_yaml(run_policy="AlwaysOn"), *(NODE.format(name=n) for n in nodes)),
        replace(HOST, node_name=name),
    )
    return replace(ctx, reported_nodes=reported or {})


def defines(result: object) -> bool:
    actions = result.actions  # type: ignore[attr-defined]
    return any(isinstance(a, DefineDomain | StartDomain) for a in actions)


def test_with_every_node_invalid_no_host_starts_a_new_vm() -> None:
    # given two hosts whose Node manifests are both invalid (upper case names)
    for local in ("hosta", "hostb"):
        ctx = host(local, "hostA", "hostB")
        # when each plans a new AlwaysOn VM
        result = plan(ctx, Observation({}, {}))
        # then neither defines it; it is reported Pending with the reason
        assert not defines(result)
        running = result.statuses[LINUX_VM].get("Running")  # type: ignore[arg-type]
        assert running is not None and "Node hostA, hostB is invalid" in running.message


def test_one_invalid_node_holds_back_new_vms_on_the_valid_ones_too() -> None:
    ctx = host("hostb", "hostA", "hostb")
    result = plan(ctx, Observation({}, {}))
    assert not defines(result)
    assert "placement is held back" in result.vms[0].details[0]


def test_a_vm_running_here_stays_and_is_reported_here() -> None:
    # given the VM's domain running on hosta, defined while the Nodes were valid
    running = defined(host("hosta", "hosta", "hostb"))
    assert DOMAIN in running.domains
    # when a Node manifest turns invalid
    result = plan(host("hosta", "hostA", "hostb"), running)
    # then the VM keeps running and reported here
    assert result.statuses[LINUX_VM].phase == "Running"
    assert result.statuses[LINUX_VM].node_name == "hosta"


def test_a_vm_another_host_reports_is_left_to_it() -> None:
    ctx = host("hosta", "hostA", "hostB", reported={LINUX_VM: "hostb"})
    result = plan(ctx, Observation({}, {}))
    assert LINUX_VM not in result.statuses and not defines(result)


def test_valid_nodes_place_as_before() -> None:
    ctx = host("hosta", "hosta")
    assert defines(plan(ctx, Observation({}, {})))
