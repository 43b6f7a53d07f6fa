"""VM status as the platform reports it: phase, conditions, resources, pending changes.

Conditions follow metav1.Condition with small fixed reason vocabularies
(reference/dvp-api.md §2.3, reconciler/model/conditions.py); `lastTransitionTime` moves only when a
condition's status flips, so an unchanged VM has a byte-identical status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.conditions import Condition, VMCondition
from reconciler.model.phases import VMPhase

# Conditions dvp-api.md §2.3 removes in these phases.
HIDDEN_WHILE_NOT_RUNNING = frozenset(
    {
        VMCondition.CONFIGURATION_APPLIED,
        VMCondition.AWAITING_RESTART_TO_APPLY_CONFIGURATION,
        VMCondition.AGENT_READY,
    }
)
QUIET_PHASES = frozenset({VMPhase.PENDING, VMPhase.STARTING, VMPhase.STOPPED})


@dataclass
class VMStatus:
    phase: VMPhase = VMPhase.PENDING
    node_name: str = ""
    conditions: list[Condition] = field(default_factory=list)
    cores: int = 0
    core_fraction: str = ""
    requested_millicores: int | None = None
    sockets: int = 0
    cores_per_socket: int = 0
    memory: str = ""
    restart_awaiting_changes: list[dict[str, Any]] = field(default_factory=list)
    revision: str = ""
    ip_address: str = ""
    vmip_name: str = ""
    message: str = ""
    # The domain's creation time; reported as metadata.creationTimestamp.
    created: str = ""
    # status.guestOSInfo: what the guest agent of the running instance said (guest.py).
    guest_os_info: dict[str, str] = field(default_factory=dict)
    # status.blockDeviceRefs: the VM's devices as the host has them (block_devices.py).
    block_device_refs: list[dict[str, Any]] = field(default_factory=list)
    # The node a live migration moves the VM to, while it does (status.migrationState).
    migration_target: str = ""

    def set(self, condition: Condition) -> None:
        """Put the condition last, in place of any of its type."""
        conditions = self.conditions
        for index, existing in enumerate(conditions):
            if existing.type == condition.type:
                del conditions[index]
                break
        conditions.append(condition)

    def get(self, kind: VMCondition) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    @property
    def need_restart(self) -> bool:
        return bool(self.restart_awaiting_changes)

    def as_dict(self, now: str, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The `status:` document; condition times carried over from `previous` unless flipped."""
        earlier = {
            c.get("type"): c for c in (previous or {}).get("conditions", []) if isinstance(c, dict)
        }
        conditions = []
        for condition in sorted(self.conditions, key=lambda c: c.type):
            if self.phase in QUIET_PHASES and condition.type in HIDDEN_WHILE_NOT_RUNNING:
                continue
            before = earlier.get(condition.type)
            status_text = "True" if condition.status else "False"
            since = now
            if before and before.get("status") == status_text and before.get("lastTransitionTime"):
                since = str(before["lastTransitionTime"])
            conditions.append(condition.as_dict(since))
        cpu: dict[str, Any] = {"cores": self.cores, "coreFraction": self.core_fraction}
        if self.requested_millicores is not None:
            cpu["requestedCores"] = _millicores_text(self.requested_millicores)
        cpu["topology"] = {"sockets": self.sockets, "coresPerSocket": self.cores_per_socket}
        document: dict[str, Any] = {"phase": str(self.phase)}
        if self.node_name:
            document["nodeName"] = self.node_name
        if self.ip_address:
            document["ipAddress"] = self.ip_address
        if self.vmip_name:
            document["virtualMachineIPAddressName"] = self.vmip_name
        if self.block_device_refs:
            document["blockDeviceRefs"] = [dict(ref) for ref in self.block_device_refs]
        if self.guest_os_info:
            document["guestOSInfo"] = dict(self.guest_os_info)
        if self.migration_target:
            document["migrationState"] = {
                "source": {"node": self.node_name},
                "target": {"node": self.migration_target},
            }
        document["conditions"] = conditions
        document["resources"] = {"cpu": cpu, "memory": {"size": self.memory}}
        if self.restart_awaiting_changes:
            document["restartAwaitingChanges"] = self.restart_awaiting_changes
        if self.revision:
            document["appliedRevision"] = self.revision
        return document


def _millicores_text(millicores: int) -> str:
    # As Kubernetes prints a CPU quantity: whole cores without a suffix.
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


# Condition is re-exported while its users move to reconciler.model.conditions.
__all__ = ["HIDDEN_WHILE_NOT_RUNNING", "QUIET_PHASES", "VMStatus"]
