"""The Secrets a revision's VMs are provisioned from, made usable before planning: the
SOPS-encrypted ones decrypted in memory with the host's age identity (source/sops.py),
and for the others why this host cannot use them (model/secrets.py).

Only the Secrets some VM's provisioning names are decrypted, once per revision: the
results are kept by the encrypted text and the key file's identity, so the next pass of
the same revision runs no `sops`, and hands the engine the very same objects (its memo
of desired domains then holds, engine/vm/desired.py). Only the last revision's are kept:
a Secret's plaintext leaves memory with the revision that used it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

# source.sops (and subprocess with it) is imported only when a Secret is decrypted,
# through the package's names (PEP 562): a repository without one pays nothing for it
# at start-up (issue 16).
from reconciler import source
from reconciler.api import ObjectId, Secret, VirtualMachine
from reconciler.api.sops import ENCRYPT_COMMAND
from reconciler.loader import LoadedObject, LoadResult, load_config_text
from reconciler.model.conditions import VMReason
from reconciler.model.secrets import NO_SECRETS, OpenedSecrets, SecretRefusal
from reconciler.policies import load_limits
from reconciler.rules.inventory import Inventory

if TYPE_CHECKING:
    from reconciler.source.sops import Failure

_KeyStamp = tuple[str, int, int, int, int] | None
_CacheKey = tuple[ObjectId, str, _KeyStamp]


class SecretOpener:
    """Decrypts the encrypted Secrets of each revision it is given, with the age identity
    in `key_file` (None: the host has none). `require_encrypted`: a Secret in the clear
    is refused too (requireEncryptedSecrets)."""

    def __init__(self, key_file: Path | None, *, require_encrypted: bool = False) -> None:
        self.key_file = key_file
        self.require_encrypted = require_encrypted
        self._cache: dict[_CacheKey, Secret | SecretRefusal] = {}

    def open(self, result: LoadResult) -> OpenedSecrets:
        inventory = Inventory.of(result)  # the pass's one index of the revision
        if next(inventory.of_kind(Secret), None) is None:
            # Nothing to open, without walking thousands of VMs to find that out.
            self._cache = {}
            return NO_SECRETS
        opened: dict[ObjectId, Secret] = {}
        refused: dict[ObjectId, SecretRefusal] = {}
        kept: dict[_CacheKey, Secret | SecretRefusal] = {}
        stamp = _stamp(self.key_file)
        for loaded, secret in _named_secrets(inventory):
            if secret.sops is None:
                if self.require_encrypted and secret.clear_values():
                    refused[secret.id] = _in_the_clear(secret)
                continue
            document = document_text(loaded)
            key = (secret.id, document, stamp)
            outcome = self._cache.get(key)
            if outcome is None:
                outcome = self._decrypt(secret, document)
            kept[key] = outcome
            if isinstance(outcome, Secret):
                opened[secret.id] = outcome
            else:
                refused[secret.id] = outcome
        self._cache = kept
        if not opened and not refused:
            return NO_SECRETS
        return OpenedSecrets(opened, refused)

    def _decrypt(self, secret: Secret, document: str) -> Secret | SecretRefusal:
        assert secret.sops is not None  # only an encrypted Secret is decrypted
        services = secret.sops.network_key_services
        if services:
            # sops would try them when age does not open the data key: requests (and the
            # cloud's metadata service for credentials) to wherever the file points.
            return _not_decrypted(
                secret,
                f"it names key services besides age ({', '.join(services)}) that this"
                " host does not contact",
                "encrypt it for age recipients only (.sops.yaml's creation rule)",
            )
        if self.key_file is None:
            return _not_decrypted(secret, "this host has no age key file (ageKeyFile)")
        limit = load_limits().max_file_bytes
        try:
            plaintext = source.decrypt(document, self.key_file, limit)
        except source.SopsError as error:
            return _not_decrypted(secret, str(error), _hint(error.failure, self.key_file))
        try:
            return decrypted_secret(secret, plaintext)
        except ValueError as error:
            return _not_decrypted(secret, str(error))


def _named_secrets(inventory: Inventory) -> Iterator[tuple[LoadedObject, Secret]]:
    """Each Secret some VM's provisioning names, once."""
    seen: set[ObjectId] = set()
    for _loaded, vm in inventory.of_kind(VirtualMachine):
        provisioning = vm.spec.provisioning
        if provisioning is None:
            continue
        ref = provisioning.user_data_ref or provisioning.sysprep_ref
        if ref is None:
            continue
        secret_id = ObjectId("Secret", vm.namespace, ref.name)
        loaded = inventory.get(secret_id)
        if secret_id in seen or loaded is None or not isinstance(loaded.model, Secret):
            continue
        seen.add(secret_id)
        yield loaded, loaded.model


def document_text(loaded: LoadedObject) -> str:
    """The text of the object's own YAML document, as sops wrote it: its file may hold
    other documents, and sops's MAC covers this one's values only."""
    source = loaded.source
    node = source.node
    lines = source.text.split("\n")
    start, end = node.start_mark, node.end_mark
    last = end.line + (1 if end.column > 0 else 0)
    part = lines[start.line : last]
    if part:
        # A document opened on its `---` line: the mapping keeps its column.
        part[0] = " " * start.column + part[0][start.column :]
    return "\n".join(part) + "\n"


def decrypted_secret(encrypted: Secret, plaintext: bytes) -> Secret:
    """The Secret with its values decrypted; everything else as the encrypted one says.
    A ValueError's message names keys and problems, never a value."""
    try:
        raw = load_config_text(plaintext.decode("utf-8"), "the decrypted Secret")
    except (UnicodeDecodeError, ValueError):
        raise ValueError("sops's output is not a YAML mapping") from None
    if not isinstance(raw, dict):
        raise ValueError("sops's output is not a YAML mapping")
    try:
        return Secret.model_validate(
            {
                "apiVersion": encrypted.api_version,
                "kind": encrypted.kind,
                "metadata": encrypted.metadata,
                "type": encrypted.type,
                "data": raw.get("data") or {},
                "stringData": raw.get("stringData") or {},
            }
        )
    except ValidationError as error:
        # Locations and pydantic's messages only: its `input` is the plaintext.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in detail['loc'])}: {detail['msg']}"
            for detail in error.errors(include_url=False, include_input=False)
        )
        raise ValueError(f"its decrypted values are not a valid Secret: {problems}") from None


def _stamp(key_file: Path | None) -> _KeyStamp:
    """Which key file is there now: a new or replaced key decrypts again."""
    if key_file is None:
        return None
    try:
        info = os.stat(key_file)
    except OSError:
        return None
    return (str(key_file), info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def _hint(failure: Failure, key_file: Path) -> str:
    if failure is source.Failure.KEY_FILE_MISSING:
        return f"create this host's age key (age-keygen -o {key_file}, docs/install.md)"
    if failure is source.Failure.NOT_A_RECIPIENT:
        return (
            f"add this host's recipient (age-keygen -y {key_file}) to .sops.yaml and run"
            " `sops updatekeys` on the Secret's file"
        )
    return ""


def _not_decrypted(secret: Secret, why: str, hint: str = "") -> SecretRefusal:
    assert secret.sops is not None  # only an encrypted Secret is decrypted
    message = (
        f"Secret {secret.name} in namespace {secret.namespace} cannot be decrypted on this"
        f" host: {why}; it is encrypted for the age recipient(s)"
        f" {secret.sops.named_recipients()}"
    )
    return SecretRefusal(VMReason.SECRET_NOT_DECRYPTED, f"{message}; {hint}" if hint else message)


def _in_the_clear(secret: Secret) -> SecretRefusal:
    return SecretRefusal(
        VMReason.SECRET_NOT_ENCRYPTED,
        f"Secret {secret.name} in namespace {secret.namespace} has its data in the clear,"
        " and this host uses only encrypted Secrets (requireEncryptedSecrets): encrypt it"
        f" with {ENCRYPT_COMMAND}",
    )
