"""VirtualMachineIPAddress (`vmip`): dvp-api.md §6.1."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from reconciler.api.meta import FieldError, Manifest, Strict

# This project's form of the reference's "retaining the IP address" procedure:
# a vmip carrying it outlives the VM that created it.
RETAIN_ANNOTATION = "virtualization.deckhouse.io/retain"


class IPAddressType(StrEnum):
    AUTO = "Auto"
    STATIC = "Static"


class VirtualMachineIPAddressSpec(Strict):
    type: IPAddressType
    static_ip: str | None = Field(default=None, alias="staticIP")

    @field_validator("static_ip")
    @classmethod
    def _is_ipv4(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IPv4 address") from None
        return value

    @model_validator(mode="after")
    def _static_needs_address(self) -> VirtualMachineIPAddressSpec:
        if self.type is IPAddressType.STATIC and self.static_ip is None:
            raise FieldError(("type",), "type Static needs staticIP")
        if self.type is IPAddressType.AUTO and self.static_ip is not None:
            raise FieldError(("staticIP",), "type Auto takes no staticIP")
        return self


class VirtualMachineIPAddress(Manifest):
    KIND: ClassVar[str] = "VirtualMachineIPAddress"
    PLURAL: ClassVar[str] = "virtualmachineipaddresses"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("vmip", "vmips")

    spec: VirtualMachineIPAddressSpec

    @property
    def retained(self) -> bool:
        return self.metadata.annotations.get(RETAIN_ANNOTATION) == "true"
