"""Secret (`v1`), as far as provisioning uses it (dvp-api.md §1.2), in the clear or
encrypted with SOPS and age (api/sops.py)."""

from __future__ import annotations

import base64
import binascii
from typing import ClassVar

from pydantic import Field, model_validator

from reconciler.api.meta import FieldError, Manifest
from reconciler.api.sops import ENCRYPT_COMMAND, SopsMetadata, is_encrypted_value

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
    # Present when data and stringData are encrypted with SOPS: their values are then
    # ENC[...] until the host decrypts them (source/secrets.py).
    sops: SopsMetadata | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _values(self) -> Secret:
        if self.sops is not None:
            for field, values in (("data", self.data), ("stringData", self.string_data)):
                for key, value in values.items():
                    if not is_encrypted_value(value):
                        raise FieldError(
                            (field, key),
                            "in the clear in a SOPS-encrypted Secret; encrypt the whole"
                            f" Secret with {ENCRYPT_COMMAND}",
                        )
            return self
        for key, encoded in self.data.items():
            try:
                base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                # The message names the key only: secret content never reaches output.
                # FieldError points the finding at the key's own line, not at `data:`.
                raise FieldError(("data", key), "not valid base64") from None
        return self

    def clear_values(self) -> bool:
        """Whether any value is readable as it is written: data not encrypted."""
        return self.sops is None and any(
            value for value in (*self.data.values(), *self.string_data.values())
        )

    def value(self, key: str) -> bytes | None:
        """The decoded value of a key, from data or stringData; never of an encrypted
        Secret, whose values only the host's decryption gives."""
        if self.sops is not None:
            return None
        if key in self.string_data:
            return self.string_data[key].encode()
        if key in self.data:
            return base64.b64decode(self.data[key])
        return None

    def data_keys(self) -> set[str]:
        return set(self.data) | set(self.string_data)
