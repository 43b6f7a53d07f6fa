"""The guest agent and the VM's phases on a real libvirtd with the tiny guest under TCG.

What an operator reads in status/: `AgentReady` and `guestOSInfo` appear once the guest's
qemu-ga answers, and the daemon learns of it from libvirt's agent lifecycle event rather
than at its next interval. A start that libvirt refuses leaves the VM Pending with
libvirt's own words. Each test starts one domain at most (about 6 s each here).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.libvirt.events import LifecycleWatch
from reconciler.libvirt.observe import Observer
from reconciler.model.guest import NOT_CONNECTED
from tests.daemonlab import Daemon, Remote, Workspace
from tests.hosts import CLASS, Host, NamespaceObserver, vm_yaml

from .conftest import SYSTEM_URI
from .lab import AGENT_TIMEOUT_S, LabPool, TestGuest, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def host(host: Host) -> Host:
    # No network: the agent needs none, and the guest boots the same without a NIC.
    host.network = None
    return host


class AgentEvents:
    """libvirt's agent lifecycle events of one domain, through the daemon's own watch."""

    def __init__(self, domain_name: str) -> None:
        self.domain_name = domain_name
        self.seen: list[tuple[float, str]] = []
        self.connected = threading.Event()
        self.watch = LifecycleWatch(SYSTEM_URI, self._event, self._connection)

    def _event(self, domain: str, event: str) -> None:
        if domain == self.domain_name and event.startswith("agent-"):
            self.seen.append((time.monotonic(), event))

    def _connection(self, up: bool, _why: str) -> None:
        if up:
            self.connected.set()

    def wait_for(self, event: str, timeout: float = AGENT_TIMEOUT_S) -> float:
        """When `event` arrived (time.monotonic)."""

        def arrived() -> float | None:
            return next((at for at, seen in self.seen if seen == event), None)

        return wait_until(f"{event} of {self.domain_name}", arrived, timeout)


def report(host: Host, namespace: str) -> dict[str, Any]:
    path = host.repo / "status" / "virtualmachines" / namespace / "linux-vm.yaml"
    return dict(YAML(typ="safe").load(path.read_text(encoding="utf-8"))["status"])


def agent_column(host: Host, namespace: str) -> str:
    lines = (host.repo / "status" / "README.md").read_text(encoding="utf-8").splitlines()
    header = next(line for line in lines if line.startswith("| NAMESPACE"))
    row = next(line for line in lines if f"| {namespace} |" in line)
    names = [cell.strip() for cell in header.strip("|").split("|")]
    return dict(zip(names, [c.strip() for c in row.strip("|").split("|")], strict=True))["AGENT"]


def conditions(status: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in status.get("conditions", [])}


def apply(host: Host, observer: Observer) -> int:
    result, mutations = host.reconcile(observer=observer)
    assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]
    host.write_statuses(result)
    return mutations


def status_files(host: Host) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in (host.repo / "status").rglob("*") if p.is_file()}


def test_agent_is_reported_once_it_answers_and_asked_once_per_boot(
    host: Host, e2e_namespace: str, guest: TestGuest
) -> None:
    domain_name = f"linux-vm.{e2e_namespace}"
    events = AgentEvents(domain_name)
    events.watch.start()
    try:
        assert events.connected.wait(30), "the lifecycle watch did not connect"
        host.write(
            "vm.yaml",
            vm_yaml(namespace=e2e_namespace, kernel_boot=guest.kernel_boot(), grace=30),
        )
        observer = NamespaceObserver(host.connection, host.namespaces)

        # The pass that starts the guest: running, its agent not there yet.
        apply(host, observer)
        started = time.monotonic()
        status = report(host, e2e_namespace)
        assert status["phase"] == "Running"
        agent = conditions(status)["AgentReady"]
        assert (agent["status"], agent["reason"]) == ("False", "AgentNotReady")
        assert agent["message"] == NOT_CONNECTED
        assert "guestOSInfo" not in status
        assert agent_column(host, e2e_namespace) == "False"

        # qemu-ga opens its channel: libvirt says so with an event, which the daemon turns
        # into a pass (reconciler/daemon/run.py); here the same pass, run by hand.
        connected_at = events.wait_for("agent-connected")
        observer.agents.agent_changed(domain_name)
        apply(host, observer)
        status = report(host, e2e_namespace)
        agent = conditions(status)["AgentReady"]
        assert (agent["status"], agent["reason"]) == ("True", "AgentReady")
        assert status["guestOSInfo"] == {
            "id": "vmr-test-guest",
            "kernelRelease": guest.kernel_release,
            "kernelVersion": status["guestOSInfo"]["kernelVersion"],
            "machine": "x86_64",
            "name": "vm-reconciler test guest",
            "prettyName": "vm-reconciler test guest (Debian 12 cloud kernel, busybox, qemu-ga)",
            "versionId": "12",
        }
        assert status["guestOSInfo"]["kernelVersion"].startswith("#1 SMP")
        assert agent_column(host, e2e_namespace) == "True"
        asks = observer.agents.asks
        assert asks == 1, "the agent is asked once it connected, not before"

        # Later passes of the same boot ask the agent nothing and rewrite nothing.
        before = status_files(host)
        assert apply(host, observer) == 0
        assert apply(host, observer) == 0
        assert observer.agents.asks == asks
        assert status_files(host) == before

        # Stopped: the agent's condition and the guest's OS leave the report.
        host.write(
            "vm.yaml",
            vm_yaml(
                namespace=e2e_namespace,
                kernel_boot=guest.kernel_boot(),
                grace=30,
                run_policy="AlwaysOff",
            ),
        )
        apply(host, observer)
        status = report(host, e2e_namespace)
        assert status["phase"] == "Stopped"
        assert "AgentReady" not in conditions(status)
        assert "guestOSInfo" not in status
        assert agent_column(host, e2e_namespace) == "False"
        print(f"agent connected {connected_at - started:.1f} s after the start returned")
    finally:
        events.watch.stop()


def test_start_libvirt_refuses_leaves_the_vm_pending_with_libvirt_s_message(
    host: Host, e2e_namespace: str, guest: TestGuest
) -> None:
    missing = guest.kernel.parent / "no-such-vmlinuz"
    host.write(
        "vm.yaml",
        vm_yaml(
            namespace=e2e_namespace, kernel_boot={**guest.kernel_boot(), "kernel": str(missing)}
        ),
    )

    result, _ = host.reconcile()
    host.write_statuses(result)

    assert [type(e.action).__name__ for e in result.errors] == ["StartDomain"]
    status = report(host, e2e_namespace)
    assert status["phase"] == "Pending"
    running = conditions(status)["Running"]
    assert (running["status"], running["reason"]) == ("False", "InternalVirtualMachineError")
    assert running["message"].startswith(f"the VM did not start: start linux-vm.{e2e_namespace}: ")
    assert str(missing) in running["message"]


# ---------------------------------------------------------------- the daemon


def test_daemon_reports_the_agent_on_its_event_not_at_its_interval(
    tmp_path: Path, e2e_namespace: str, e2e_pool: LabPool, guest: TestGuest
) -> None:
    remote = Remote.create(tmp_path / "remote.git")
    operator = Workspace.clone(remote, tmp_path / "operator")
    operator.write("class.yaml", CLASS)
    operator.write(
        "vms/linux-vm.yaml",
        vm_yaml(namespace=e2e_namespace, kernel_boot=guest.kernel_boot(), grace=30),
    )
    operator.commit_and_push("linux-vm")
    daemon = Daemon(
        tmp_path / "daemon",
        {
            # An interval no test waits for: only the start and libvirt's events run passes.
            "repository": {"url": remote.url, "intervalSeconds": 3600},
            "libvirtUri": SYSTEM_URI,
            "nodeName": f"hv-{e2e_namespace}",
            "storagePool": e2e_pool.name,
            "network": "",  # no NIC, as in the engine-level test
        },
        env={"RECONCILER_DOMAIN_TYPE": "qemu"},
    )
    path = f"status/virtualmachines/{e2e_namespace}/linux-vm.yaml"

    def agent_ready() -> dict[str, Any] | None:
        daemon.check_alive()
        document = remote.document(path)
        status = document["status"] if document else {}
        ready = conditions(status).get("AgentReady", {}).get("status") == "True"
        return status if ready else None

    daemon.start()
    try:
        daemon.wait_ready()
        status = wait_until("AgentReady in the pushed report", agent_ready, AGENT_TIMEOUT_S)
        assert status["phase"] == "Running"
        assert status["guestOSInfo"]["id"] == "vmr-test-guest"
        log = daemon.log_text()
        assert "pass (agent" in log, daemon.log_tail()
        assert "interval" not in log, "an interval pass ran: the test proves nothing"
        assert daemon.terminate() == 0
    finally:
        daemon.close()
