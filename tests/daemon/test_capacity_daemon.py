"""A running daemon states its host's capacity for the fleet (issue 14): in its Node report
(what placement reads) and in its cacheDir (what libvirt's migration hook weighs with)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemonlab import Daemon, Remote, Workspace, settings, wait_until
from tests.hosts import vm_yaml

# libvirt's test driver counts 16 CPUs and 3072 MiB.
GIB = 1 << 30


def test_the_daemon_reports_its_capacity_and_what_its_vms_hold(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    # given a host running one VM of 2 cores at 50% and 1 GiB
    operator.write("vms/vm.yaml", vm_yaml(name="vm", cores=2, fraction="50%", memory="1Gi"))
    operator.commit_and_push("one VM")
    daemon = Daemon(tmp_path / "hv", settings(remote, "hv"))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()

    def node_report() -> dict[str, object]:
        document = remote.document("status/nodes/hv.yaml") or {}
        status = document.get("status", {})
        return status if isinstance(status, dict) else {}

    wait_until("the VM held in the Node report", lambda: node_report().get("allocated"), 60)
    wait_until(
        "the VM running in the Node report",
        lambda: node_report()["allocated"] == {"cpu": "1", "memory": "1Gi"},
        60,
    )
    # then its Node report states libvirt's count and what the VM holds
    assert node_report()["capacity"] == {"cpu": "16", "memory": "3Gi"}
    # and its cacheDir holds the same for the migration hook (written just after the push)
    state_file = tmp_path / "hv" / "cache" / "migration-admission.json"

    def state() -> dict[str, object]:
        return json.loads(state_file.read_text(encoding="utf-8")) if state_file.exists() else {}

    wait_until("the VM in the hook's state", lambda: state().get("domains"), 30)
    assert state()["node"] == "hv"
    assert state()["capacity"] == {"cpuMillicores": 16000, "memoryBytes": 3 * GIB}
    assert state()["domains"] == {"vm.default": [1000, GIB]}
    assert daemon.terminate() == 0
