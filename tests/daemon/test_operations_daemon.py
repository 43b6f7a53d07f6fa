"""A VirtualMachineOperation left in the repository runs once, across a SIGKILLed daemon.

The daemon runs on libvirt's test driver, whose host lives inside the daemon's process:
a daemon killed and started again (here with a new cache directory too) finds a fresh
host, and only the operation's report in the repository remembers it. Every action the
daemon carries out is one log line, so the log tells how often the operation ran.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.daemonlab import Daemon, Remote, Workspace, settings, wait_until
from tests.hosts import vm_yaml

OPERATION = "restart-vm-1718000000"
VMOP = f"""
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineOperation
metadata:
  name: {OPERATION}
spec:
  type: Restart
  virtualMachineName: vm
"""
REPORT = f"status/virtualmachineoperations/default/{OPERATION}.yaml"
# The applier's progress line for the operation's power step (CarryOutOperation.describe).
STEP = re.compile(
    rf"\] shut down \(grace \d+s\), then start vm\.default \(vmop default/{OPERATION}\)"
)


def phase(remote: Remote, relative: str) -> str | None:
    document = remote.document(relative)
    return document["status"]["phase"] if document else None


def start(daemons: list[Daemon], workdir: Path, remote: Remote) -> Daemon:
    daemon = Daemon(workdir, settings(remote, "hv"))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    return daemon


def test_an_operation_is_not_run_again_by_a_daemon_killed_and_started_again(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    operator.write("vms/vm.yaml", vm_yaml(name="vm"))
    operator.commit_and_push("one VM")
    first = start(daemons, tmp_path / "hv", remote)
    vm_report = "status/virtualmachines/default/vm.yaml"
    wait_until("the VM reported Running", lambda: phase(remote, vm_report) == "Running", 30)

    operator.write(f"operations/{OPERATION}.yaml", VMOP)
    operator.commit_and_push("vm restart default/vm")
    first.push_hook()
    wait_until("the restart reported Completed", lambda: phase(remote, REPORT) == "Completed", 30)
    assert len(STEP.findall(first.log_text())) == 1
    first.kill()  # SIGKILL: no clean shutdown, nothing flushed

    again = start(daemons, tmp_path / "hv-again", remote)  # and a new, empty cache

    def passes(count: int) -> bool:
        return again.log_text().count("reconciler.daemon: pass (") >= count

    wait_until("three passes of the restarted daemon", lambda: passes(3), 30)
    assert STEP.findall(again.log_text()) == [], again.log_tail()
    assert phase(remote, REPORT) == "Completed"
    assert phase(remote, vm_report) == "Running"
    assert again.terminate() == 0
