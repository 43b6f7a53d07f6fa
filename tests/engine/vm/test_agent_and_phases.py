"""The guest agent and the VM's phases in the planner: observed hosts in, statuses out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from reconciler.api import ObjectId
from reconciler.engine.plan import Observation, PlanContext, plan
from reconciler.engine.vm.lifecycle import explain_failed_starts, phase_of
from reconciler.model.actions import Action, DefineDomain, StartDomain, StopDomain, UndefineDomain
from reconciler.model.domain import DomainSpec, ObservedDomain, PowerState
from reconciler.model.guest import DISCONNECTED, GuestAgent, GuestOSInfo
from tests.engine.conftest import context_for, empty, observed_as_defined, revision, vm_yaml

LINUX_VM = ObjectId("VirtualMachine", "default", "linux-vm")
NOW = "2026-11-25T09:00:00Z"
OS_INFO = GuestOSInfo(
    id="vmr-test-guest",
    name="vm-reconciler test guest",
    pretty_name="vm-reconciler test guest (Debian 12 cloud kernel, busybox, qemu-ga)",
    version_id="12",
    kernel_release="6.1.0-56-cloud-amd64",
    kernel_version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)",
    machine="x86_64",
)


def _spec(yaml: str = "") -> DomainSpec:
    first = plan(context_for(revision(yaml or vm_yaml())), empty())
    return next(a.spec for a in first.actions if isinstance(a, DefineDomain))


def _host(observed: ObservedDomain) -> Observation:
    return Observation({observed.name: observed}, {})


def _running(agent: GuestAgent | None, yaml: str = "") -> Observation:
    return _host(replace(observed_as_defined(_spec(yaml)), agent=agent))


def _document(observation: Observation, yaml: str = "") -> dict[str, Any]:
    status = plan(context_for(revision(yaml or vm_yaml())), observation).statuses[LINUX_VM]
    return status.as_dict(NOW)


def _conditions(document: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in document["conditions"]}


# ---------------------------------------------------------------- the guest agent


def test_answering_agent_makes_agent_ready_and_reports_the_guest_os() -> None:
    document = _document(_running(GuestAgent(connected=True, os_info=OS_INFO)))

    assert _conditions(document)["AgentReady"] == {
        "type": "AgentReady",
        "status": "True",
        "reason": "AgentReady",
        "lastTransitionTime": NOW,
    }
    assert document["guestOSInfo"] == {
        "id": "vmr-test-guest",
        "kernelRelease": "6.1.0-56-cloud-amd64",
        "kernelVersion": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)",
        "machine": "x86_64",
        "name": "vm-reconciler test guest",
        "prettyName": "vm-reconciler test guest (Debian 12 cloud kernel, busybox, qemu-ga)",
        "versionId": "12",
    }


def test_vm_without_agent_says_so_in_the_platform_words_and_has_no_guest_os() -> None:
    document = _document(_running(DISCONNECTED))

    condition = _conditions(document)["AgentReady"]
    assert (condition["status"], condition["reason"]) == ("False", "AgentNotReady")
    assert condition["message"] == "Failed to connect to VM Agent."
    assert "guestOSInfo" not in document
    assert document["phase"] == "Running"


def test_vm_without_agent_is_managed_like_any_other() -> None:
    """No wait on an agent: a runPolicy change to AlwaysOff stops it in the same pass."""
    observation = _running(DISCONNECTED)

    result = plan(context_for(revision(vm_yaml(run_policy="AlwaysOff"))), observation)

    assert any(isinstance(action, StopDomain) for action in result.actions)


def test_connected_agent_that_does_not_answer_gives_the_reason() -> None:
    agent = GuestAgent(connected=True, error="Guest agent is not responding: timeout")

    condition = _conditions(_document(_running(agent)))["AgentReady"]

    assert condition["status"] == "False"
    assert condition["message"] == (
        "the guest agent is connected but does not answer: Guest agent is not responding: timeout"
    )


def test_stopped_vm_shows_no_agent_condition_and_no_guest_os() -> None:
    stopped = _host(observed_as_defined(_spec(), PowerState.SHUTOFF, "shutdown"))

    document = _document(stopped)

    assert document["phase"] == "Stopped"
    assert "AgentReady" not in _conditions(document)
    assert "guestOSInfo" not in document


def test_agent_readiness_flips_its_transition_time_and_nothing_else() -> None:
    context = context_for(revision(vm_yaml()))
    before = plan(context, _running(DISCONNECTED)).statuses[LINUX_VM].as_dict("T1")
    after = (
        plan(context, _running(GuestAgent(True, OS_INFO))).statuses[LINUX_VM].as_dict("T2", before)
    )

    changed = {c["type"] for c in after["conditions"] if c["lastTransitionTime"] == "T2"}
    assert changed == {"AgentReady"}


# ---------------------------------------------------------------- phases


@pytest.mark.parametrize(
    ("state", "reason", "phase"),
    [
        (PowerState.PAUSED, "starting_up", "Starting"),
        (PowerState.RUNNING, "booted", "Running"),
        (PowerState.SHUTDOWN, "user", "Stopping"),
        (PowerState.PAUSED, "shutting_down", "Stopping"),
        (PowerState.SHUTOFF, "shutdown", "Stopped"),
        (PowerState.SHUTOFF, "destroyed", "Stopped"),
        (PowerState.PAUSED, "user", "Pause"),
        (PowerState.PAUSED, "migration", "Migrating"),
    ],
)
def test_phase_follows_the_domain_state_and_its_reason(
    state: PowerState, reason: str, phase: str
) -> None:
    assert phase_of(observed_as_defined(_spec(), state, reason)) == phase


def test_vm_with_no_domain_yet_is_pending() -> None:
    assert phase_of(None) == "Pending"


def test_domain_libvirt_is_starting_is_reported_starting_and_not_started_again() -> None:
    starting = _host(observed_as_defined(_spec(), PowerState.PAUSED, "starting_up"))

    result = plan(context_for(revision(vm_yaml())), starting)

    assert result.statuses[LINUX_VM].phase == "Starting"
    assert not any(isinstance(action, StartDomain) for action in result.actions)


def test_planned_start_and_stop_show_starting_and_stopping() -> None:
    stopped = _host(observed_as_defined(_spec(), PowerState.SHUTOFF, "destroyed"))
    running = _running(DISCONNECTED)

    starting = plan(context_for(revision(vm_yaml(run_policy="AlwaysOn"))), stopped)
    stopping = plan(context_for(revision(vm_yaml(run_policy="AlwaysOff"))), running)

    assert starting.statuses[LINUX_VM].phase == "Starting"
    assert stopping.statuses[LINUX_VM].phase == "Stopping"


# ---------------------------------------------------------------- Terminating


def _orphaned(observed: ObservedDomain) -> tuple[Observation, PlanContext]:
    """The host with linux-vm's domain, and a revision in which only another VM is left."""
    return _host(observed), context_for(revision(vm_yaml(name="other-vm")))


def test_vm_whose_manifest_was_deleted_is_terminating_while_its_domain_exists() -> None:
    running = replace(observed_as_defined(_spec()), agent=GuestAgent(True, OS_INFO))
    observation, context = _orphaned(running)

    result = plan(context, observation)

    assert any(isinstance(action, UndefineDomain) for action in result.actions)
    document = result.statuses[LINUX_VM].as_dict(NOW)
    assert document["phase"] == "Terminating"
    assert document["nodeName"] == "hv1"
    assert _conditions(document)["Running"]["status"] == "True"
    assert _conditions(document)["AgentReady"]["status"] == "True"
    assert document["resources"]["cpu"]["cores"] == 1
    assert document["resources"]["memory"]["size"] == "1Gi"


def test_deleted_vm_has_no_report_once_its_domain_is_gone() -> None:
    _observation, context = _orphaned(observed_as_defined(_spec()))

    result = plan(context, empty())

    assert LINUX_VM not in result.statuses


# ---------------------------------------------------------------- a start that fails


def _after_failed_start(failures: list[tuple[Action, str]]) -> dict[str, Any]:
    """The final status of a pass whose actions for linux-vm failed so."""
    stopped = _host(observed_as_defined(_spec(), PowerState.SHUTOFF, "failed"))
    final = plan(replace(context_for(revision(vm_yaml())), anticipate=False), stopped)
    explain_failed_starts(final.statuses, failures)
    return final.statuses[LINUX_VM].as_dict(NOW)


def test_failed_start_keeps_the_vm_pending_with_libvirt_s_message() -> None:
    start = StartDomain(LINUX_VM, "linux-vm.default")

    document = _after_failed_start([(start, "Cannot access storage file '/nope/vmlinuz'")])

    assert document["phase"] == "Pending"
    running = _conditions(document)["Running"]
    assert (running["status"], running["reason"]) == ("False", "InternalVirtualMachineError")
    assert running["message"] == (
        "the VM did not start: start linux-vm.default: Cannot access storage file '/nope/vmlinuz'"
    )


def test_start_skipped_after_a_failed_definition_names_the_definition_error() -> None:
    define = DefineDomain(LINUX_VM, _spec(), "new")
    start = StartDomain(LINUX_VM, "linux-vm.default")

    document = _after_failed_start(
        [(define, "XML error: bad disk"), (start, "skipped after an earlier failure")]
    )

    message = _conditions(document)["Running"]["message"]
    assert "XML error: bad disk" in message
    assert "skipped" not in message


def test_failures_of_other_actions_leave_the_running_condition_alone() -> None:
    define = DefineDomain(LINUX_VM, _spec(), "new")

    document = _after_failed_start([(define, "XML error: bad disk")])

    assert document["phase"] == "Stopped"
    assert _conditions(document)["Running"]["reason"] == "NotRunning"
