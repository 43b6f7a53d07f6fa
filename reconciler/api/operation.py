"""VirtualMachineOperation (`vmop`): dvp-api.md §7."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field, model_validator

from reconciler.api.meta import FieldError, Manifest, Strict


class OperationType(StrEnum):
    START = "Start"
    STOP = "Stop"
    RESTART = "Restart"
    MIGRATE = "Migrate"
    EVICT = "Evict"


class MigrateOptions(Strict):
    node_selector: dict[str, str] = Field(default_factory=dict)


class VirtualMachineOperationSpec(Strict):
    type: OperationType
    virtual_machine_name: str = Field(min_length=1)
    force: bool | None = None
    migrate: MigrateOptions | None = None

    @model_validator(mode="after")
    def _force_and_migrate_fit_type(self) -> VirtualMachineOperationSpec:
        if self.force and self.type is OperationType.START:
            raise FieldError(("force",), "force is not allowed with type Start")
        if self.migrate is not None and self.type is not OperationType.MIGRATE:
            raise FieldError(("migrate",), "migrate options go only with type Migrate")
        return self


class VirtualMachineOperation(Manifest):
    KIND: ClassVar[str] = "VirtualMachineOperation"
    PLURAL: ClassVar[str] = "virtualmachineoperations"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("vmop", "vmops")

    spec: VirtualMachineOperationSpec
