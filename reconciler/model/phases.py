"""The phases each kind of object reports in `status.phase` (dvp-api.md).

StrEnum: a member is written exactly as the platform's string, and equals that
string when read back from a report.
"""

from __future__ import annotations

from enum import StrEnum


class VMPhase(StrEnum):
    """A VirtualMachine's phase (§2.2). Degraded and Pause are in the CRD's enum;
    operations name them when they say where they apply (§7.3)."""

    PENDING = "Pending"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    TERMINATING = "Terminating"
    MIGRATING = "Migrating"
    DEGRADED = "Degraded"
    PAUSE = "Pause"


class OperationPhase(StrEnum):
    """A VirtualMachineOperation's phase (§7.2)."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    SUPERSEDED = "Superseded"


class AttachmentPhase(StrEnum):
    """A VirtualMachineBlockDeviceAttachment's phase (§8.1)."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    ATTACHED = "Attached"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class DiskPhase(StrEnum):
    """A VirtualDisk's phase (§8.2), those this host reports."""

    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
    READY = "Ready"
    RESIZING = "Resizing"
    TERMINATING = "Terminating"
    FAILED = "Failed"


class VMIPPhase(StrEnum):
    """A VirtualMachineIPAddress's phase (§6.1)."""

    PENDING = "Pending"
    BOUND = "Bound"
    ATTACHED = "Attached"


class LeasePhase(StrEnum):
    """A VirtualMachineIPAddressLease's phase (§6.2)."""

    BOUND = "Bound"
    RELEASED = "Released"


# The enums whose members no module outside this layer writes as a string (the guard test).
VOCABULARIES: tuple[type[StrEnum], ...] = (
    VMPhase,
    OperationPhase,
    AttachmentPhase,
    DiskPhase,
    VMIPPhase,
    LeasePhase,
)
