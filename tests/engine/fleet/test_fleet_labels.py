"""A Node's labels are its manifest's: a host's configured nodeLabels serve a fleet of one
and never change what its peers cannot see (issue 14: two hosts never pick different
homes for one VM)."""

from __future__ import annotations

from dataclasses import replace

from reconciler.engine.plan import Observation, plan
from reconciler.model.actions import DefineDomain
from tests.engine.conftest import HOST, context_for, revision, vm_yaml

NODE = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
"""
VM = vm_yaml(run_policy="AlwaysOn").replace(
    "  runPolicy:", "  nodeSelector:\n    disk: ssd\n  runPolicy:", 1
)


def defines(local: str, labels: dict[str, str], *nodes: str) -> bool:
    host = replace(HOST, node_name=local, node_labels=tuple(labels.items()))
    ctx = context_for(revision(VM, *(NODE.format(name=n) for n in nodes)), host)
    result = plan(ctx, Observation({}, {}))
    return any(isinstance(a, DefineDomain) for a in result.actions)


def test_configured_labels_do_not_place_a_vm_in_a_fleet_of_nodes() -> None:
    # given hv1 configured with disk=ssd, which its Node manifest does not state
    # then no host of the fleet places the VM on hv1 (hv2 could not know the label)
    assert not defines("hv1", {"disk": "ssd"}, "hv1", "hv2")
    assert not defines("hv2", {}, "hv1", "hv2")


def test_configured_labels_serve_a_fleet_of_one() -> None:
    assert defines("hv1", {"disk": "ssd"})
    assert not defines("hv1", {})
