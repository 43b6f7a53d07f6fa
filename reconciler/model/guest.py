"""The guest agent of a running instance, as plain values, and what the status says of it.

The platform shows the agent twice (reference/dvp-api.md §2.1, §2.3): the `AgentReady`
condition and `status.guestOSInfo`, copied from what the agent's `guest-get-osinfo`
answered. Nothing here talks to libvirt: `reconciler.libvirt.agent` reads the agent.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.conditions import Condition, VMCondition, VMReason, mark_false, mark_true

# The platform's own words when the instance has no connected agent (controller/vm/
# internal/agent.go): an operator searching for them finds the same explanation.
NOT_CONNECTED = "Failed to connect to VM Agent."
NOT_RUNNING = "VirtualMachine is not running."


@dataclass(frozen=True)
class GuestOSInfo:
    """The agent's `guest-get-osinfo`, with KubeVirt's field names (guestOSInfo)."""

    id: str = ""
    name: str = ""
    pretty_name: str = ""
    version: str = ""
    version_id: str = ""
    kernel_release: str = ""
    kernel_version: str = ""
    machine: str = ""

    def as_status(self) -> dict[str, str]:
        """`status.guestOSInfo`: keys in the order the reference prints them, empty ones left
        out as KubeVirt leaves them out (`omitempty`)."""
        fields = {
            "id": self.id,
            "kernelRelease": self.kernel_release,
            "kernelVersion": self.kernel_version,
            "machine": self.machine,
            "name": self.name,
            "prettyName": self.pretty_name,
            "version": self.version,
            "versionId": self.version_id,
        }
        return {key: value for key, value in fields.items() if value}


@dataclass(frozen=True)
class GuestAgent:
    """What the agent of one running instance did.

    `connected`: qemu-ga holds its channel open (libvirt's channel state). `os_info`:
    its answer to guest-get-osinfo; None while it has not answered. `error`: why it
    did not, when it was asked.
    """

    connected: bool = False
    os_info: GuestOSInfo | None = None
    error: str = ""

    @property
    def ready(self) -> bool:
        """The agent answers: the platform's AGENT column says True."""
        return self.connected and self.os_info is not None


DISCONNECTED = GuestAgent()


def agent_ready(agent: GuestAgent | None) -> Condition:
    """The `AgentReady` condition of an instance (None: no running instance).

    Never a wait: a VM without an agent is managed exactly like one with it.
    """
    if agent is None:
        return mark_false(VMCondition.AGENT_READY, VMReason.AGENT_NOT_READY, NOT_RUNNING)
    if agent.ready:
        return mark_true(VMCondition.AGENT_READY, VMReason.AGENT_READY)
    if agent.connected and agent.error:
        return mark_false(
            VMCondition.AGENT_READY,
            VMReason.AGENT_NOT_READY,
            f"the guest agent is connected but does not answer: {agent.error}",
        )
    return mark_false(VMCondition.AGENT_READY, VMReason.AGENT_NOT_READY, NOT_CONNECTED)
