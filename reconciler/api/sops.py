"""The `sops:` block of a Secret encrypted with SOPS and age, as the `sops` tool writes it.

Only its structure is checked here (who may decrypt, the MAC, the shape of the encrypted
values): decrypting is the real `sops` binary's job, on the host (reconciler/source/
sops.py). Nothing here needs a key, so `reconciler validate` checks an encrypted Secret
anywhere.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reconciler.api.meta import empty_list

# sops's encrypted scalar: AES-256-GCM data, IV and tag in base64, and the value's type
# (stores.go: str, int, float, bool, bytes; comment for encrypted comments).
_ENCRYPTED = re.compile(
    r"ENC\[AES256_GCM,data:[A-Za-z0-9+/]*={0,2},iv:[A-Za-z0-9+/]+={0,2},"
    r"tag:[A-Za-z0-9+/]+={0,2},type:(?:str|int|float|bool|bytes|comment)\]"
)
_AGE_ARMOR = "-----BEGIN AGE ENCRYPTED FILE-----"
# Master keys sops would fetch a data key from over the network (cloud KMS, Vault),
# by the names the sops block gives them.
NETWORK_KEY_SERVICES = ("kms", "gcp_kms", "azure_kv", "hc_vault", "hckms")
# How many recipients a message names, and how much of each: the list is anyone's who
# can push, and a condition's message goes into every report.
_NAMED_RECIPIENTS = 5
_RECIPIENT_CHARS = 120
# The command the docs give: data and stringData encrypted, the rest readable.
ENCRYPT_COMMAND = "sops --encrypt --age RECIPIENTS --encrypted-regex '^(data|stringData)$'"


def is_encrypted_value(value: str) -> bool:
    """Whether a value is one sops encrypted. An empty string is one too: sops leaves it
    as it is, and it tells nothing."""
    return value == "" or _ENCRYPTED.fullmatch(value) is not None


class _SopsModel(BaseModel):
    # sops's own field names (snake_case), and whatever else a newer sops adds is kept:
    # the block is the tool's, only the parts decrypting needs are checked. Validators
    # built when first used: a repository without encrypted Secrets never needs them, and
    # every pass imports this module (issue 16, start-up).
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


class AgeStanza(_SopsModel):
    """One age recipient and the data key encrypted to it."""

    recipient: str = Field(min_length=1)
    enc: str = Field(repr=False)

    @field_validator("recipient")
    @classmethod
    def _one_word(cls, value: str) -> str:
        # An age recipient (age1...) or an SSH public key: printable, on one line.
        if not value.isprintable():
            raise ValueError("an age recipient is printable text on one line")
        return value

    @field_validator("enc")
    @classmethod
    def _armored(cls, value: str) -> str:
        if _AGE_ARMOR not in value:
            raise ValueError("enc is not an age-encrypted data key (no age armor)")
        return value


class KeyGroup(_SopsModel):
    age: list[AgeStanza] = Field(default_factory=empty_list)


def _network_services(block: BaseModel) -> set[str]:
    extra = block.model_extra or {}
    return {name for name in NETWORK_KEY_SERVICES if extra.get(name)}


class SopsMetadata(_SopsModel):
    """The `sops:` block: who may decrypt (age recipients), and the MAC over the values."""

    age: list[AgeStanza] = Field(default_factory=empty_list)
    key_groups: list[KeyGroup] = Field(default_factory=empty_list)
    lastmodified: str
    mac: str = Field(repr=False)
    version: str

    @field_validator("mac")
    @classmethod
    def _encrypted_mac(cls, value: str) -> str:
        if _ENCRYPTED.fullmatch(value) is None:
            raise ValueError("mac is not a value sops encrypted (ENC[AES256_GCM,...])")
        return value

    @model_validator(mode="after")
    def _someone_may_decrypt(self) -> SopsMetadata:
        if not self.recipients:
            raise ValueError(
                "the sops block names no age recipient: a host decrypts with its age"
                f" identity only; encrypt with {ENCRYPT_COMMAND}"
            )
        return self

    @property
    def network_key_services(self) -> tuple[str, ...]:
        """The key services besides age this block names that sops would reach over the
        network (AWS/GCP KMS, Azure Key Vault, Vault): a host never lets it."""
        found = _network_services(self)
        for group in self.key_groups:
            found |= _network_services(group)
        return tuple(sorted(found))

    def named_recipients(self) -> str:
        """The recipients, for a message: the first few, each cut to a sensible length."""
        recipients = self.recipients
        named = [
            r if len(r) <= _RECIPIENT_CHARS else r[: _RECIPIENT_CHARS - 1] + "…"
            for r in recipients[:_NAMED_RECIPIENTS]
        ]
        more = len(recipients) - len(named)
        return ", ".join(named) + (f" and {more} more" if more else "")

    @property
    def recipients(self) -> tuple[str, ...]:
        """Every age recipient, in the order sops wrote them: whose identity decrypts."""
        stanzas = [*self.age, *(stanza for group in self.key_groups for stanza in group.age)]
        return tuple(dict.fromkeys(stanza.recipient for stanza in stanzas))
