"""The error kinds tell a caller what to do: every storage failure says whether the
next pass may succeed as it is, and what blocks one VM carries the condition it reports."""

from __future__ import annotations

from reconciler.libvirt.storage import errors as storage_errors
from reconciler.model.conditions import VMCondition, VMReason
from reconciler.model.errors import (
    DeviceNotReady,
    NotReady,
    PermanentError,
    ReconcileError,
    RetryableError,
)


def storage_error_kinds() -> list[type[storage_errors.StorageError]]:
    return [
        kind
        for kind in vars(storage_errors).values()
        if isinstance(kind, type)
        and issubclass(kind, storage_errors.StorageError)
        and kind is not storage_errors.StorageError
    ]


def test_every_storage_error_is_either_retried_or_permanent() -> None:
    undecided = [
        kind.__name__
        for kind in storage_error_kinds()
        if issubclass(kind, RetryableError) == issubclass(kind, PermanentError)
    ]

    assert storage_error_kinds()
    assert not undecided


def test_a_storage_error_keeps_its_message_and_place_as_a_reconcile_error() -> None:
    error = storage_errors.ShrinkRefused("a disk may only grow", pool="p", volume="vd.qcow2")

    assert isinstance(error, ReconcileError)
    assert str(error) == "p/vd.qcow2: a disk may only grow"


def test_a_device_not_ready_blocks_its_vm_on_block_devices_ready() -> None:
    error = DeviceNotReady("image file /srv/ubuntu.raw is missing")

    assert isinstance(error, NotReady)
    assert error.condition is VMCondition.BLOCK_DEVICES_READY
    assert error.reason is VMReason.BLOCK_DEVICES_NOT_READY
    assert str(error) == "image file /srv/ubuntu.raw is missing"
