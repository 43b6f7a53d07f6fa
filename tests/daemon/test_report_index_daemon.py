"""A live `reconciler run` of a fleet whose interval is an hour: after its first pass it
lists its clone's status tree no more (reports/status_index.py), yet the pass after each
push reads what another host pushed, removed or made a symlink, from what Git says the
fetch changed."""

from __future__ import annotations

import os
from pathlib import Path

from tests.daemonlab import Daemon, Remote, Workspace, git, settings, wait_until
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
  labels:
    role: second
"""
# What hv2 writes of the VM it runs.
HV2_REPORT = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: {name}
  namespace: default
status:
  phase: {phase}
  nodeName: hv2
"""


def placed(name: str, role: str) -> str:
    return vm_yaml(name=name).replace("spec:\n", f"spec:\n  nodeSelector:\n    role: {role}\n", 1)


def readme(remote: Remote) -> str:
    return remote.show("status/README.md") or ""


def row(remote: Remote, name: str) -> str:
    return next((line for line in readme(remote).splitlines() if f"| {name} |" in line), "")


def test_a_push_pass_reads_what_another_host_pushed_without_an_interval_pass(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    # given hv1's daemon with an interval of an hour, past its first pass
    operator.write("nodes.yaml", NODES)
    operator.write("vms/a.yaml", placed("a", "first"))
    operator.commit_and_push("two nodes, one VM")
    config = settings(remote, "hv1")
    config["repository"]["intervalSeconds"] = 3600
    daemon = Daemon(tmp_path / "hv1", config)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    wait_until("a in the README", lambda: bool(row(remote, "a")), 30)

    def pushed(message: str, files: dict[str, str | None]) -> None:
        git(operator.path, "pull", "--quiet", "--rebase", "origin", remote.branch)
        for relative, text in files.items():
            if text is None:
                (operator.path / relative).unlink()
            else:
                operator.write(relative, text)
        operator.commit_and_push(message)
        daemon.push_hook()

    # when hv2's reports of two VMs land with them (a push that changes manifests too)
    pushed(
        "b and c on hv2",
        {
            "vms/b.yaml": placed("b", "second"),
            "vms/c.yaml": placed("c", "second"),
            "status/virtualmachines/default/b.yaml": HV2_REPORT.format(name="b", phase="Running"),
            "status/virtualmachines/default/c.yaml": HV2_REPORT.format(name="c", phase="Running"),
        },
    )
    # then hv1's push pass puts them into the README
    wait_until("b and c in the README", lambda: bool(row(remote, "b") and row(remote, "c")), 30)
    # when hv2 then stops b, removes c and turns d's report into a symlink to a host file
    host_file = tmp_path / "host-report.yaml"
    host_file.write_text(HV2_REPORT.format(name="d", phase="Secret"), encoding="utf-8")
    git(operator.path, "pull", "--quiet", "--rebase", "origin", remote.branch)
    os.symlink(host_file, operator.path / "status/virtualmachines/default/d.yaml")
    pushed(
        "b stopped, c gone, d linked",
        {
            "vms/c.yaml": None,
            "vms/d.yaml": placed("d", "second"),
            "status/virtualmachines/default/b.yaml": HV2_REPORT.format(name="b", phase="Stopped"),
            "status/virtualmachines/default/c.yaml": None,
        },
    )
    # then the next push pass reads b's new report, drops c, and never reads the symlink
    wait_until("b Stopped in the README", lambda: "Stopped" in row(remote, "b"), 30)
    assert not row(remote, "c")
    assert "Secret" not in readme(remote)
    # and every pass but the first was fed by events (a push, libvirt), none by the timer
    passes = [
        line for line in daemon.log_text().splitlines() if "reconciler.daemon: pass (" in line
    ]
    assert len(passes) >= 3, passes
    assert all("pass (push)" in line or "pass (libvirt)" in line for line in passes[1:]), passes
    assert daemon.terminate() == 0
