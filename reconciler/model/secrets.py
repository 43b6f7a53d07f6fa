"""What the host made of a revision's SOPS-encrypted Secrets before planning: the ones
it decrypted, and why it cannot use the others.

Decrypting is I/O (the `sops` binary, the age key file) and happens above the engine
(reconciler/source/secrets.py); the engine only looks the results up, through the
inventory, where provisioning needs a Secret's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from reconciler.api import ObjectId, Secret
from reconciler.model.conditions import VMReason


class SecretRefusal(NamedTuple):
    """Why a Secret cannot be used on this host: the reason a VM using it reports, and a
    message naming the Secret and what is missing (recipients, never key material)."""

    reason: VMReason
    message: str


@dataclass(frozen=True)
class OpenedSecrets:
    # The decrypted Secrets, in memory only; repr=False: their values are plaintext.
    opened: Mapping[ObjectId, Secret] = field(default_factory=dict, repr=False)
    refused: Mapping[ObjectId, SecretRefusal] = field(default_factory=dict)


NO_SECRETS = OpenedSecrets()
