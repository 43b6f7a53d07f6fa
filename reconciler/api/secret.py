"""Secret (`v1`), as far as provisioning uses it (dvp-api.md §1.2)."""

from __future__ import annotations

import base64
import binascii
from typing import ClassVar

from pydantic import Field, field_validator

from reconciler.api.meta import FieldError, Manifest

CLOUD_INIT_SECRET = "provisioning.virtualization.deckhouse.io/cloud-init"
SYSPREP_SECRET = "provisioning.virtualization.deckhouse.io/sysprep"


class Secret(Manifest):
    KIND: ClassVar[str] = "Secret"
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    PLURAL: ClassVar[str] = "secrets"

    type: str = "Opaque"
    # repr=False: secret content must never reach a log line through a repr.
    data: dict[str, str] = Field(default_factory=dict, repr=False)
    string_data: dict[str, str] = Field(default_factory=dict, repr=False)

    @field_validator("data")
    @classmethod
    def _base64(cls, value: dict[str, str]) -> dict[str, str]:
        for key, encoded in value.items():
            try:
                base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                # The message names the key only: secret content never reaches output.
                # FieldError points the finding at the key's own line, not at `data:`.
                raise FieldError((key,), "not valid base64") from None
        return value

    def value(self, key: str) -> bytes | None:
        """The decoded value of a key, from data or stringData."""
        if key in self.string_data:
            return self.string_data[key].encode()
        if key in self.data:
            return base64.b64decode(self.data[key])
        return None

    def data_keys(self) -> set[str]:
        return set(self.data) | set(self.string_data)
