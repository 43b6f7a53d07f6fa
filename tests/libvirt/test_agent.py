"""The guest agent and the VM's phases through whole passes on libvirt's test driver.

The test driver runs no guest, so no agent ever connects: what it shows is that a
host without agents is handled quietly (no errors, no agent calls) and that the
phases and their reports are written as an operator reads them.
"""

from __future__ import annotations

from typing import Any

import libvirt
import pytest
from ruamel.yaml import YAML

from reconciler.libvirt.agent import GuestAgents
from reconciler.libvirt.observe import Observer
from reconciler.model.guest import NOT_CONNECTED
from tests.hosts import Host, vm_yaml


def report(host: Host, name: str = "linux-vm") -> dict[str, Any] | None:
    path = host.repo / "status" / "virtualmachines" / "default" / f"{name}.yaml"
    if not path.exists():
        return None
    return dict(YAML(typ="safe").load(path.read_text(encoding="utf-8"))["status"])


def readme_row(host: Host, name: str = "linux-vm") -> dict[str, str]:
    lines = (host.repo / "status" / "README.md").read_text(encoding="utf-8").splitlines()
    header = next(line for line in lines if line.startswith("| NAMESPACE"))
    row = next(line for line in lines if f"| {name} |" in line)
    names = [cell.strip() for cell in header.strip("|").split("|")]
    return dict(zip(names, [cell.strip() for cell in row.strip("|").split("|")], strict=True))


def conditions(status: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in status.get("conditions", [])}


def test_running_vm_on_a_host_without_agents_reports_agent_not_ready(host: Host) -> None:
    host.write("vm.yaml", vm_yaml())
    observer = Observer(host.connection)

    result, _ = host.reconcile(observer=observer)
    host.write_statuses(result)

    assert not result.errors
    status = report(host)
    assert status is not None and status["phase"] == "Running"
    agent = conditions(status)["AgentReady"]
    assert (agent["status"], agent["reason"], agent["message"]) == (
        "False",
        "AgentNotReady",
        NOT_CONNECTED,
    )
    assert "guestOSInfo" not in status
    assert readme_row(host)["AGENT"] == "False"
    assert observer.agents.asks == 0, "no agent call for a guest whose channel is not open"


def test_passes_without_agents_stay_idempotent(host: Host) -> None:
    host.write("vm.yaml", vm_yaml())
    observer = Observer(host.connection)
    host.write_statuses(host.reconcile(observer=observer)[0])

    second, mutations = host.reconcile(observer=observer)

    assert mutations == 0
    assert host.write_statuses(second) == []


def test_stopped_vm_report_has_no_agent_condition(host: Host) -> None:
    host.write("vm.yaml", vm_yaml(run_policy="Manual"))

    result, _ = host.reconcile()
    host.write_statuses(result)

    status = report(host)
    assert status is not None and status["phase"] == "Stopped"
    assert "AgentReady" not in conditions(status)


def test_deleted_vm_is_reported_terminating_until_its_domain_is_undefined(host: Host) -> None:
    host.write("vm.yaml", vm_yaml())
    host.write("other.yaml", vm_yaml(name="other-vm"))
    host.write_statuses(host.reconcile()[0])
    host.remove("vm.yaml")

    planned, _ = host.reconcile(apply=False)  # `reconciler plan`, or a suspended daemon
    host.write_statuses(planned)
    terminating = report(host)
    applied, _ = host.reconcile()
    host.write_statuses(applied)

    assert terminating is not None and terminating["phase"] == "Terminating"
    assert terminating["nodeName"] == "hv1"
    assert readme_row(host, "other-vm")["PHASE"] == "Running"
    assert report(host) is None, "the report goes with the domain"
    assert "linux-vm.default" not in [d.name() for d in host.connection.listAllDomains(0)]


# ---------------------------------------------------------------- asking an agent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def running(host: Host) -> libvirt.virDomain:
    host.write("vm.yaml", vm_yaml())
    host.reconcile()
    return host.domain()


def test_agent_that_cannot_answer_is_asked_again_only_after_the_retry_period(
    running: libvirt.virDomain,
) -> None:
    """The test driver has no agent API: as an agent that does not answer, it is asked
    once, then not again on every pass, however many passes run."""
    clock = Clock()
    agents = GuestAgents(retry_seconds=10.0, clock=clock)

    first = agents.read(running, running.name(), "connected")
    for _ in range(5):
        agents.read(running, running.name(), "connected")
    asked_within_period = agents.asks
    clock.now = 11.0
    agents.read(running, running.name(), "connected")

    assert first.connected and not first.ready
    assert "not supported" in first.error
    assert asked_within_period == 1
    assert agents.asks == 2


def test_agent_event_makes_the_next_read_ask_again(running: libvirt.virDomain) -> None:
    agents = GuestAgents(clock=Clock())
    agents.read(running, running.name(), "connected")

    agents.agent_changed(running.name())
    agents.read(running, running.name(), "connected")
    agents.read(running, running.name(), "connected")

    assert agents.asks == 2


def test_a_new_boot_is_asked_again(host: Host, running: libvirt.virDomain) -> None:
    agents = GuestAgents(clock=Clock())
    agents.read(running, running.name(), "connected")
    running.destroy()
    running.create()

    agents.read(host.domain(), running.name(), "connected")

    assert agents.asks == 2


def test_disconnected_channel_costs_no_agent_call(running: libvirt.virDomain) -> None:
    agents = GuestAgents(clock=Clock())

    reads = [agents.read(running, running.name(), state) for state in ("disconnected", "")]

    assert agents.asks == 0
    assert not any(agent.connected for agent in reads)


def test_observer_asks_no_agent_on_a_host_of_many_running_vms(host: Host) -> None:
    for index in range(20):
        host.write(f"vm{index}.yaml", vm_yaml(name=f"vm{index}"))
    host.reconcile()
    observer = Observer(host.connection)

    observed = observer.observe()

    running = [domain for domain in observed.values() if domain.state.active]
    assert len(running) == 20
    assert all(domain.agent is not None and not domain.agent.connected for domain in running)
    assert observer.agents.asks == 0
