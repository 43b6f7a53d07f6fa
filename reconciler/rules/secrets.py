"""Secrets whose data is in the clear, where the repository must keep them encrypted
(`--require-encrypted-secrets`, requireEncryptedSecrets)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from reconciler.api import Secret
from reconciler.api.sops import ENCRYPT_COMMAND
from reconciler.findings import Finding, Rule
from reconciler.loader import LoadedObject
from reconciler.rules.inventory import Inventory


def clear_secret_findings(inventory: Inventory) -> Iterator[Finding]:
    yield from secrets_in_the_clear(inventory.of_kind(Secret))


def secrets_in_the_clear(secrets: Iterable[tuple[LoadedObject, Secret]]) -> Iterator[Finding]:
    """The findings of these Secrets, each on its own."""
    for loaded, secret in secrets:
        if not secret.clear_values():
            continue
        # At the first value in the clear: where the reader's eye should go.
        field = "data" if any(secret.data.values()) else "stringData"
        values = secret.data if field == "data" else secret.string_data
        key = next(key for key, value in values.items() if value)
        yield loaded.finding(
            (field, key),
            f"{field} is in the clear; the repository keeps Secrets encrypted: encrypt"
            f" it with {ENCRYPT_COMMAND}",
            Rule.SECRET_ENCRYPTION,
        )
