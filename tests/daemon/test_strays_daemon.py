"""A `reconciler run` daemon that finds, in its own libvirt, a copy of a VM another host
of the fleet now runs (engine/fleet/strays.py): it leaves the copy running, stops
reporting the VM, names the copy in its Node report and logs it once."""

from __future__ import annotations

from pathlib import Path

from tests.daemonlab import Daemon, Remote, Workspace, settings, wait_until
from tests.gitrepos import git
from tests.hosts import vm_yaml

NODES = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: hv1
  labels:
    role: first
---
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: hv2
"""
VM_REPORT = "status/virtualmachines/default/vm.yaml"
NODE_REPORT = "status/nodes/hv1.yaml"
# What hv2 writes once it runs the VM (a copy of its own, no migration involved).
ON_HV2 = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: vm
  namespace: default
status:
  phase: Running
  nodeName: hv2
"""


def reported_node(remote: Remote) -> str | None:
    document = remote.document(VM_REPORT)
    return document["status"].get("nodeName") if document else None


def strays(remote: Remote) -> list[dict[str, str]]:
    document = remote.document(NODE_REPORT)
    return list(document["status"].get("strayDomains", [])) if document else []


def test_a_copy_another_host_runs_is_left_running_named_and_logged_once(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    # given hv1's daemon runs vm (its nodeSelector picks hv1)
    operator.write("nodes.yaml", NODES)
    vm = vm_yaml(name="vm").replace("spec:\n", "spec:\n  nodeSelector:\n    role: first\n", 1)
    operator.write("vms/vm.yaml", vm)
    operator.commit_and_push("two nodes, one VM")
    daemon = Daemon(tmp_path / "hv1", settings(remote, "hv1"))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    wait_until("vm reported on hv1", lambda: reported_node(remote) == "hv1", 30)
    # when hv2's report of the same VM lands in Git (hv2 runs a copy of its own)
    git(operator.path, "pull", "--quiet", "--rebase", "origin", remote.branch)
    operator.write(VM_REPORT, ON_HV2)
    operator.commit_and_push("status(hv2): vm runs here")
    daemon.push_hook()
    # then hv1 names its copy in its Node report, and leaves hv2's report alone
    wait_until("the copy in hv1's Node report", lambda: bool(strays(remote)), 30)
    (entry,) = strays(remote)
    assert (entry["name"], entry["node"], entry["reason"]) == (
        "vm.default",
        "hv2",
        "OwnedElsewhere",
    )
    assert reported_node(remote) == "hv2"

    def passes(count: int) -> bool:
        return daemon.log_text().count("reconciler.daemon: pass (") >= count

    # and after more passes: the copy was never stopped or undefined, and logged once
    seen = daemon.log_text().count("reconciler.daemon: pass (")
    wait_until("two more passes", lambda: passes(seen + 2), 30)
    log = daemon.log_text()
    assert log.count("domain vm.default is a copy of VirtualMachine default/vm") == 1, log
    assert "undefine vm.default" not in log and "shut down vm.default" not in log
    assert reported_node(remote) == "hv2"
    assert daemon.terminate() == 0
