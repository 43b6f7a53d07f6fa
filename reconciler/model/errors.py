"""What can fail in a pass, as types that tell the caller what to do with it.

Every error here is a `ReconcileError`: a failure a pass reports and outlives, its
message the text a user reads (verbatim, in a condition, a report, `/healthz` or the
log). Three kinds, as kopf's `TemporaryError`/`PermanentError` and controller-runtime's
`TerminalError` tell theirs apart:

- `RetryableError`: the host, the network or a remote failed; the next pass tries
  again as it is (a storage pool not started, a push refused, a fetch that timed out).
- `PermanentError`: fails the same way until its input changes (a manifest, a file it
  names, the configuration, a policy file). Passes stay level-triggered and try again,
  but nothing but an edit makes it pass.
- `NotReady`: blocks one object only: a dependency it needs is missing or not usable
  yet. It carries the condition and reason the object reports; the pass goes on with
  every other object.

Anything else a pass raises is a bug, caught only at the pass's boundary.
"""

from __future__ import annotations

from reconciler.model.conditions import ConditionType, Reason, VMCondition, VMReason


class ReconcileError(Exception):
    """A failure a pass reports and outlives; the message names what and why."""


class RetryableError(ReconcileError):
    """The host, the network or a remote failed just now; the next pass tries again."""


class PermanentError(ReconcileError):
    """Fails the same way until its input (manifest, file, configuration) changes."""


class NotReady(ReconcileError):
    """Blocks one object: it reports `condition` False with `reason`, and the message."""

    def __init__(self, condition: ConditionType, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.condition = condition
        self.reason = reason


class DeviceNotReady(NotReady):
    """A block device the VM cannot have yet (an image's file missing or invalid, a disk
    not made): the VM's BlockDevicesReady False, its host untouched."""

    def __init__(self, message: str) -> None:
        super().__init__(VMCondition.BLOCK_DEVICES_READY, VMReason.BLOCK_DEVICES_NOT_READY, message)
