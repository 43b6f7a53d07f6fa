"""Conditions as the platform reports them: a type, a status, a reason, a message.

Condition types and reasons are the platform's fixed vocabularies (dvp-api.md §2.3
for a VirtualMachine, §6 for addresses, §7.2 operations, §8 block devices), grouped by
the kind of object that carries them, as the platform's `vmcondition`,
`vmopcondition`... packages do. A condition is made by one call per meaning,
`mark_true(VMCondition.RUNNING, VMReason.RUNNING)` or `mark_false(type, reason,
message)`: the message is the only free text (as Flux's `conditions.MarkFalse`).

StrEnum: a member is written exactly as the platform's string, and equals that string
when read back from a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.api.operation import OperationType


class VMCondition(StrEnum):
    """The condition types of a VirtualMachine (§2.3) this host reports or reads."""

    VIRTUAL_MACHINE_CLASS_READY = "VirtualMachineClassReady"
    SIZING_POLICY_MATCHED = "SizingPolicyMatched"
    VIRTUAL_MACHINE_IP_ADDRESS_READY = "VirtualMachineIPAddressReady"
    BLOCK_DEVICES_READY = "BlockDevicesReady"
    PROVISIONING_READY = "ProvisioningReady"
    RUNNING = "Running"
    AGENT_READY = "AgentReady"
    CONFIGURATION_APPLIED = "ConfigurationApplied"
    AWAITING_RESTART_TO_APPLY_CONFIGURATION = "AwaitingRestartToApplyConfiguration"
    MIGRATABLE = "Migratable"


class VMReason(StrEnum):
    """The reasons of a VirtualMachine's conditions (§2.3), by condition type."""

    # VirtualMachineClassReady
    VIRTUAL_MACHINE_CLASS_READY = "VirtualMachineClassReady"
    VIRTUAL_MACHINE_CLASS_NOT_READY = "VirtualMachineClassNotReady"
    # SizingPolicyMatched
    SIZING_POLICY_NOT_MATCHED = "SizingPolicyNotMatched"
    # VirtualMachineIPAddressReady (NotReady also says why Running waits for an address)
    VIRTUAL_MACHINE_IP_ADDRESS_READY = "VirtualMachineIPAddressReady"
    VIRTUAL_MACHINE_IP_ADDRESS_NOT_READY = "VirtualMachineIPAddressNotReady"
    VIRTUAL_MACHINE_IP_ADDRESS_NOT_ASSIGNED = "VirtualMachineIPAddressNotAssigned"
    # BlockDevicesReady
    BLOCK_DEVICES_READY = "BlockDevicesReady"
    BLOCK_DEVICES_NOT_READY = "BlockDevicesNotReady"
    # ProvisioningReady
    PROVISIONING_READY = "ProvisioningReady"
    PROVISIONING_NOT_READY = "ProvisioningNotReady"
    # ...for a SOPS-encrypted Secret this host cannot decrypt (no age key file, or its
    # identity is none of the Secret's recipients), and for a Secret in the clear that
    # requireEncryptedSecrets refuses: this project's words, the platform has no SOPS.
    SECRET_NOT_DECRYPTED = "SecretNotDecrypted"
    SECRET_NOT_ENCRYPTED = "SecretNotEncrypted"
    # Running; Unschedulable and InsufficientResources as KubeVirt's reasons passed through
    RUNNING = "Running"
    NOT_RUNNING = "NotRunning"
    INTERNAL_VIRTUAL_MACHINE_ERROR = "InternalVirtualMachineError"
    UNSCHEDULABLE = "Unschedulable"
    INSUFFICIENT_RESOURCES = "InsufficientResources"
    # AgentReady
    AGENT_READY = "AgentReady"
    AGENT_NOT_READY = "AgentNotReady"
    # ConfigurationApplied
    CONFIGURATION_NOT_APPLIED = "ConfigurationNotApplied"
    # AwaitingRestartToApplyConfiguration
    CHANGES_PENDING_RESTART = "ChangesPendingRestart"
    # Migratable
    VIRTUAL_MACHINE_MIGRATABLE = "VirtualMachineMigratable"
    VIRTUAL_MACHINE_NON_MIGRATABLE = "VirtualMachineNonMigratable"


class AddressCondition(StrEnum):
    """The condition types of a VirtualMachineIPAddress and its lease (§6.1, §6.2)."""

    BOUND = "Bound"
    ATTACHED = "Attached"


class AddressReason(StrEnum):
    # Bound
    BOUND = "Bound"
    RELEASED = "Released"
    OUT_OF_THE_VALID_RANGE = "VirtualMachineIPAddressIsOutOfTheValidRange"
    LEASE_ALREADY_EXISTS = "VirtualMachineIPAddressLeaseAlreadyExists"
    LEASE_NOT_READY = "VirtualMachineIPAddressLeaseNotReady"
    # Attached
    ATTACHED = "Attached"
    VIRTUAL_MACHINE_NOT_FOUND = "VirtualMachineNotFound"


class OperationCondition(StrEnum):
    """The condition types of a VirtualMachineOperation (§7.2)."""

    COMPLETED = "Completed"
    SIGNAL_SENT = "SignalSent"


class OperationReason(StrEnum):
    # Completed; while acting, the reason is the type's own `<Type>InProgress` (in_progress)
    NOT_READY_TO_BE_EXECUTED = "NotReadyToBeExecuted"
    VIRTUAL_MACHINE_NOT_FOUND = "VirtualMachineNotFound"
    NOT_APPLICABLE_FOR_RUN_POLICY = "NotApplicableForVirtualMachineRunPolicy"
    NOT_APPLICABLE_FOR_PHASE = "NotApplicableForVirtualMachinePhase"
    NOT_APPLICABLE_FOR_LIVE_MIGRATION_POLICY = "NotApplicableForLiveMigrationPolicy"
    TARGET_UNSCHEDULABLE = "TargetUnschedulable"
    OPERATION_COMPLETED = "OperationCompleted"
    OPERATION_FAILED = "OperationFailed"
    START_IN_PROGRESS = "StartInProgress"
    STOP_IN_PROGRESS = "StopInProgress"
    RESTART_IN_PROGRESS = "RestartInProgress"
    EVICT_IN_PROGRESS = "EvictInProgress"
    MIGRATE_IN_PROGRESS = "MigrateInProgress"
    # SignalSent
    SIGNAL_SENT_SUCCESS = "SignalSentSuccess"

    @classmethod
    def in_progress(cls, operation_type: OperationType) -> OperationReason:
        """`StartInProgress`, `StopInProgress`...: the reason of an operation that acts."""
        return cls(f"{operation_type}InProgress")


class AttachmentCondition(StrEnum):
    """The condition types of a VirtualMachineBlockDeviceAttachment (§8.1)."""

    BLOCK_DEVICE_READY = "BlockDeviceReady"
    VIRTUAL_MACHINE_READY = "VirtualMachineReady"
    ATTACHED = "Attached"


class AttachmentReason(StrEnum):
    # BlockDeviceReady
    BLOCK_DEVICE_READY = "BlockDeviceReady"
    BLOCK_DEVICE_NOT_READY = "BlockDeviceNotReady"
    # VirtualMachineReady
    VIRTUAL_MACHINE_READY = "VirtualMachineReady"
    VIRTUAL_MACHINE_NOT_READY = "VirtualMachineNotReady"
    # Attached
    ATTACHED = "Attached"
    NOT_ATTACHED = "NotAttached"
    ATTACHMENT_REQUEST_SENT = "AttachmentRequestSent"
    CONFLICT = "Conflict"


class DiskCondition(StrEnum):
    """The condition types of a VirtualDisk (§8.2)."""

    READY = "Ready"
    DATASOURCE_READY = "DatasourceReady"
    IN_USE = "InUse"
    RESIZING = "Resizing"


class DiskReason(StrEnum):
    # Ready
    READY = "Ready"
    PROVISIONING = "Provisioning"
    WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
    TERMINATING = "Terminating"
    # DatasourceReady
    DATASOURCE_READY = "DatasourceReady"
    IMAGE_NOT_READY = "ImageNotReady"
    # InUse
    ATTACHED_TO_VIRTUAL_MACHINE = "AttachedToVirtualMachine"
    NOT_IN_USE = "NotInUse"
    # Resizing
    IN_PROGRESS = "InProgress"
    SHRINK_REFUSED = "ShrinkRefused"


ConditionType = (
    VMCondition | AddressCondition | OperationCondition | AttachmentCondition | DiskCondition
)
Reason = VMReason | AddressReason | OperationReason | AttachmentReason | DiskReason

# The enums whose members no module outside this layer writes as a string (the guard test).
VOCABULARIES: tuple[type[StrEnum], ...] = (
    VMCondition,
    VMReason,
    AddressCondition,
    AddressReason,
    OperationCondition,
    OperationReason,
    AttachmentCondition,
    AttachmentReason,
    DiskCondition,
    DiskReason,
)


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: bool
    reason: Reason
    message: str = ""

    def as_entry(self) -> dict[str, str]:
        """The entry of `status.conditions` without its time: type, status, reason, message."""
        # str(): a report's YAML writer takes plain strings, not enum members.
        entry = {
            "type": str(self.type),
            "status": "True" if self.status else "False",
            "reason": str(self.reason),
        }
        if self.message:
            entry["message"] = self.message
        return entry

    def as_dict(self, since: str) -> dict[str, Any]:
        return {**self.as_entry(), "lastTransitionTime": since}


def mark_true(kind: ConditionType, reason: Reason, message: str = "") -> Condition:
    """A condition that holds: `kind` with status True, for `reason`."""
    return Condition(kind, True, reason, message)


def mark_false(kind: ConditionType, reason: Reason, message: str = "") -> Condition:
    """A condition that does not hold: `kind` False for `reason`; `message` says why."""
    return Condition(kind, False, reason, message)
