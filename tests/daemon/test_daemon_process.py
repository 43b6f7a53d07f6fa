"""`reconciler run` as a subprocess on libvirt's test driver, following a bare remote.

Each daemon has a test:///default of its own (the driver's state lives in the
process), which makes it a separate host: two of them are a fleet of two.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemonlab import Daemon, Remote, Workspace, settings, wait_until
from tests.hosts import CLASS, vm_yaml

NODE = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
spec:
  capacity:
    cpu: 64
    memory: 256Gi
"""


def vm_reports(remote: Remote) -> dict[str, dict[str, Any]]:
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", remote.branch, "status/virtualmachines/"],
        cwd=remote.path,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    reports = {}
    for path in listing:
        document = remote.document(path)
        if document:
            reports[document["metadata"]["name"]] = document["status"]
    return reports


def one_vm_host(
    remote: Remote,
    operator: Workspace,
    daemons: list[Daemon],
    tmp_path: Path,
    run_policy: str = "AlwaysOnUnlessStoppedManually",
) -> Daemon:
    """A repository with one VM `vm`, followed by a running, ready daemon on host `hv`."""
    operator.write("vms/vm.yaml", vm_yaml(name="vm", run_policy=run_policy))
    operator.commit_and_push("one VM")
    daemon = Daemon(tmp_path / "hv", settings(remote, "hv"))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    return daemon


def test_two_hosts_pushing_to_one_remote_at_once_both_land(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    for node in ("hv-a", "hv-b"):
        operator.write(f"nodes/{node}.yaml", NODE.format(name=node))
    names = [f"vm-{n}" for n in range(12)]
    for name in names:
        operator.write(f"vms/{name}.yaml", vm_yaml(name=name, run_policy="AlwaysOn"))
    operator.commit_and_push("a fleet of two hosts and twelve VMs")

    for node in ("hv-a", "hv-b"):
        daemons.append(Daemon(tmp_path / node, settings(remote, node)))
    for daemon in daemons:
        daemon.start()
    for daemon in daemons:
        daemon.wait_ready()

    def every_vm_reported() -> dict[str, dict[str, Any]] | None:
        reports = vm_reports(remote)
        if set(reports) == set(names) and all(
            r.get("phase") == "Running" for r in reports.values()
        ):
            return reports
        return None

    reports = wait_until("all twelve VMs reported Running", every_vm_reported, 60, interval=0.3)
    by_node = {
        node: {n for n, r in reports.items() if r["nodeName"] == node} for node in ("hv-a", "hv-b")
    }
    assert by_node["hv-a"] and by_node["hv-b"], "the rendezvous placement uses both hosts"
    assert by_node["hv-a"] | by_node["hv-b"] == set(names)
    authors = {line.split(" ", 1)[1].split("|")[0] for line in remote.status_commits()}
    assert authors == {"vm-reconciler on hv-a", "vm-reconciler on hv-b"}

    # A change for every VM at once: both hosts report the new revision, nothing is lost.
    for name in names:
        operator.write(
            f"vms/{name}.yaml",
            vm_yaml(name=name, run_policy="AlwaysOn", cores=2, approval="Automatic"),
        )
    operator.commit_and_push("two cores everywhere")
    for daemon in daemons:
        daemon.push_hook()

    def all_two_cores() -> bool:
        reports = vm_reports(remote)
        return set(reports) == set(names) and all(
            r.get("resources", {}).get("cpu", {}).get("cores") == 2
            and not r.get("restartAwaitingChanges")
            for r in reports.values()
        )

    wait_until("every VM reported with two cores", all_two_cores, 60, interval=0.3)
    readme = remote.show("status/README.md") or ""
    for name in names:
        assert f"| {name} |" in readme
    for node in ("hv-a", "hv-b"):
        node_report = remote.document(f"status/nodes/{node}.yaml")
        assert node_report is not None and node_report["status"]["lastError"] == ""
    for daemon in daemons:
        assert daemon.terminate() == 0


def test_the_daemon_ignores_its_own_status_commits(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    daemon = one_vm_host(remote, operator, daemons, tmp_path)
    wait_until("a status commit", remote.status_commits, 30)
    commits = len(remote.status_commits())
    for _ in range(3):  # pushes of its own status commit, as a forge's webhook would send
        assert daemon.push_hook() == 202
    wait_until(
        "the daemon to see the pushes",
        lambda: daemon.log_text().count("manifests unchanged") >= 1,
        15,
    )
    assert len(remote.status_commits()) == commits
    assert daemon.terminate() == 0


def test_endpoints_metrics_health_and_the_webhook_secret(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    daemon = one_vm_host(remote, operator, daemons, tmp_path)
    wait_until("a status commit", remote.status_commits, 30)

    # The pass records its metrics just after its status commit is pushed.
    running = 'reconciler_virtual_machines{phase="Running"} 1.0'

    def recorded() -> tuple[int, str] | None:
        answer = daemon.get("/metrics")
        return answer if running in answer[1] else None

    code, metrics = wait_until("the pass's metrics", recorded, 15)
    assert code == 200
    assert "reconciler_pass_duration_seconds" in metrics
    health = daemon.health()
    assert health["healthy"] is True, health
    assert health["libvirt"] == "ok" and health["source"] == "ok"
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{daemon.port}/hooks/git",
        data=b"{}",
        headers={"X-Reconciler-Token": "wrong"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403
    assert daemon.terminate() == 0
    assert "STOPPING=1" in daemon.notifications()


def test_sighup_reloads_and_global_suspend_keeps_reporting_but_changes_nothing(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    daemon = one_vm_host(remote, operator, daemons, tmp_path, run_policy="AlwaysOn")
    wait_until("vm Running", lambda: vm_reports(remote).get("vm", {}).get("phase") == "Running", 30)

    daemon.settings["suspend"] = True
    daemon.write_config()
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    wait_until("the reload", lambda: "configuration reloaded" in daemon.log_text(), 15)
    operator.write("vms/vm.yaml", vm_yaml(name="vm", run_policy="AlwaysOff"))
    operator.commit_and_push("turn it off")
    daemon.push_hook()
    wait_until(
        "the suspended pass",
        lambda: daemon.log_text().count("pass (") >= 3,
        15,
    )
    wait_until(
        "a status commit of the new revision", lambda: _reported_revision(remote, operator), 15
    )
    assert vm_reports(remote)["vm"]["phase"] == "Running", "suspended: nothing is stopped"

    daemon.settings["suspend"] = False
    daemon.write_config()
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(
        "vm Stopped once resumed",
        lambda: vm_reports(remote).get("vm", {}).get("phase") == "Stopped",
        30,
    )
    assert daemon.terminate() == 0


def _reported_revision(remote: Remote, operator: Workspace) -> bool:
    node = remote.document("status/nodes/hv.yaml")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=operator.path, capture_output=True, text=True, check=True
    ).stdout.strip()
    return bool(node) and node["status"]["lastAppliedRevision"] == head


def test_a_bad_configuration_stops_the_daemon_at_start_with_the_setting_named(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            """
            repository:
              url: file:///nowhere.git
              intervalSeconds: 0
            virtualMachineCIDRs: [10.66.10.1/24]
            """
        ),
        encoding="utf-8",
    )
    completed = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "intervalSeconds" in completed.stderr or "interval_seconds" in completed.stderr
    assert "10.66.10.1/24" in completed.stderr


def test_a_revision_that_does_not_parse_deletes_nothing(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    daemon = one_vm_host(remote, operator, daemons, tmp_path, run_policy="AlwaysOn")
    wait_until("vm Running", lambda: vm_reports(remote).get("vm", {}).get("phase") == "Running", 30)

    operator.write("vms/vm.yaml", "kind: VirtualMachine\nspec: [unclosed\n")
    operator.write("class.yaml", "{ not yaml")
    broken = operator.commit_and_push("every file broken")
    daemon.push_hook()

    def applied_broken() -> bool:
        node = remote.document("status/nodes/hv.yaml")
        return bool(node) and node["status"]["lastAppliedRevision"] == broken

    wait_until("the broken revision's pass", applied_broken, 30)
    # No deletion among the pass's actions (its warning says "nothing is deleted").
    assert "undefine" not in daemon.log_text() and "] delete" not in daemon.log_text()
    assert vm_reports(remote)["vm"]["phase"] == "Running", "its report stays"

    operator.write("vms/vm.yaml", vm_yaml(name="vm", run_policy="AlwaysOn"))
    operator.write("class.yaml", CLASS)
    operator.commit_and_push("repaired")
    daemon.push_hook()
    wait_until(
        "the repaired revision's pass", lambda: daemon.log_text().count("pass (push)") >= 2, 30
    )
    # The domain was there all along: nothing is created or started again.
    assert daemon.log_text().count("define domain vm.default: new") == 1
    assert daemon.log_text().count("start vm.default") == 1
    assert daemon.terminate() == 0


def test_a_listen_address_in_use_stops_the_daemon_at_start_saying_so(
    remote: Remote, operator: Workspace, tmp_path: Path
) -> None:
    operator.commit_and_push("a class")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = Daemon(tmp_path / "hv", settings(remote, "hv"), port=port)
        daemon.start()
        assert daemon.process is not None
        assert daemon.process.wait(60) == 2
    assert f"listen 127.0.0.1:{port}" in daemon.log_text()
    daemon.close()


def test_a_local_directory_is_watched_and_its_status_written_beside_it(
    daemons: list[Daemon], tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
    (manifests / "vm.yaml").write_text(vm_yaml(name="vm"), encoding="utf-8")
    daemon = Daemon(
        tmp_path / "hv",
        {
            "repository": {"url": str(manifests), "intervalSeconds": 3600},
            "libvirtUri": "test:///default",
            "nodeName": "hv",
            "storagePool": "default-pool",
            "network": "default",
        },
    )
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    report = manifests / "status" / "virtualmachines" / "default" / "vm.yaml"
    try:
        wait_until("the report beside the manifests", report.is_file, 30)
        # No push, no interval: the file watch alone brings the edit in.
        (manifests / "vm.yaml").write_text(vm_yaml(name="vm", cores=2), encoding="utf-8")
        wait_until(
            "cpu.cores awaiting restart in the report",
            lambda: "cpu.cores" in report.read_text(encoding="utf-8"),
            30,
        )
    except AssertionError as error:
        raise AssertionError(f"{error}; the daemon's log ends:\n{daemon.log_tail(30)}") from None
    # The watch's request may be merged with another into one pass: "pass (file, …)".
    assert re.search(r"pass \([^)]*\bfile\b", daemon.log_text()), daemon.log_tail(30)
    assert not (manifests / ".git").exists(), "nothing is committed into a plain directory"
    assert daemon.terminate() == 0


def test_two_hosts_agree_on_every_address_and_stop_committing(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    """Both hosts compute the fleet's whole allocation and write its vmip and lease
    reports: the same bytes from each, so the remote settles instead of flapping."""
    for node in ("hv-a", "hv-b"):
        operator.write(f"nodes/{node}.yaml", NODE.format(name=node))
    names = [f"vm-{n}" for n in range(8)]
    for name in names:
        operator.write(f"vms/{name}.yaml", vm_yaml(name=name, run_policy="AlwaysOn"))
    operator.commit_and_push("eight VMs with addresses")
    # The test driver's network is 192.168.122.0/24, its host .1.
    cidrs = {"virtualMachineCIDRs": ["192.168.122.0/24"]}
    for node in ("hv-a", "hv-b"):
        daemons.append(Daemon(tmp_path / node, settings(remote, node, **cidrs)))
    for daemon in daemons:
        daemon.start()
    for daemon in daemons:
        daemon.wait_ready()

    def every_vm_addressed() -> dict[str, dict[str, Any]] | None:
        reports = vm_reports(remote)
        if set(reports) == set(names) and all(r.get("ipAddress") for r in reports.values()):
            return reports
        return None

    reports = wait_until("all eight VMs reported with an address", every_vm_addressed, 60)
    addresses = [r["ipAddress"] for r in reports.values()]
    assert len(set(addresses)) == len(names)
    assert "192.168.122.1" not in addresses
    assert {r["nodeName"] for r in reports.values()} == {"hv-a", "hv-b"}

    def settled() -> str | None:
        head = remote.head()
        time.sleep(5)  # two interval passes of each host
        return head if remote.head() == head else None

    head = wait_until("the remote to stop moving", settled, 60, interval=0)
    for address in addresses:
        lease = remote.document(
            f"status/virtualmachineipaddressleases/ip-{address.replace('.', '-')}.yaml"
        )
        assert lease is not None and lease["status"]["phase"] == "Bound"
    assert remote.head() == head
    for daemon in daemons:
        assert daemon.terminate() == 0
