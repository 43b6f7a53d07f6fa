"""A VM's provisioning, resolved to the files its guest will read (dvp-api.md §1.2).

Secret content travels only inside `SeedFile.content`, which no repr, str or error
message shows; what logs, status and plans may show is the payload's digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.api import CLOUD_INIT_SECRET, SYSPREP_SECRET, ObjectId, Secret, VirtualMachine
from reconciler.api.vm import USERDATA_LIMIT, ProvisioningType, SecretRef
from reconciler.model.conditions import VMCondition, VMReason
from reconciler.model.errors import NotReady
from reconciler.model.secrets import SecretRefusal
from reconciler.rules.inventory import Inventory
from reconciler.rules.references import CLOUD_INIT_KEYS, SYSPREP_KEYS

DIGEST_LENGTH = 16


class ProvisioningKind(StrEnum):
    CLOUD_INIT = "cloud-init"
    SYSPREP = "sysprep"


@dataclass(frozen=True)
class SeedFile:
    """One file of the seed medium, under the name the guest looks for."""

    name: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class ProvisioningPayload:
    """What a VM's guest is provisioned with; `source` and `digest` are safe to show."""

    kind: ProvisioningKind
    # Where the content came from, for messages: "inline userData" or "Secret NAME".
    source: str
    files: tuple[SeedFile, ...] = field(repr=False)
    digest: str

    @classmethod
    def of(
        cls, kind: ProvisioningKind, source: str, files: tuple[SeedFile, ...]
    ) -> ProvisioningPayload:
        return cls(kind, source, files, payload_digest(kind, files))

    def content(self, name: str) -> bytes | None:
        for seed_file in self.files:
            if seed_file.name == name:
                return seed_file.content
        return None


def payload_digest(kind: ProvisioningKind, files: tuple[SeedFile, ...]) -> str:
    """sha256 over kind, names and contents, length-prefixed so no two inputs collide."""
    sha = hashlib.sha256(kind.value.encode())
    for seed_file in files:
        for part in (seed_file.name.encode(), seed_file.content):
            sha.update(len(part).to_bytes(8, "big"))
            sha.update(part)
    return sha.hexdigest()[:DIGEST_LENGTH]


def _not_ready(message: str) -> NotReady:
    return NotReady(VMCondition.PROVISIONING_READY, VMReason.PROVISIONING_NOT_READY, message)


def resolve_provisioning(vm: VirtualMachine, inventory: Inventory) -> ProvisioningPayload | None:
    """The VM's provisioning payload, or None without provisioning.

    Raises NotReady (ProvisioningReady / ProvisioningNotReady) when the payload is
    too large or its Secret is missing, broken, of the wrong type or without its key;
    the message names the Secret and the problem, never the content.
    """
    provisioning = vm.spec.provisioning
    if provisioning is None:
        return None
    if provisioning.type is ProvisioningType.USER_DATA:
        assert provisioning.user_data is not None  # the model guarantees the payload of its type
        return _inline_user_data(provisioning.user_data)
    if provisioning.type is ProvisioningType.USER_DATA_REF:
        assert provisioning.user_data_ref is not None
        secret = _secret(
            vm, inventory, provisioning.user_data_ref, "userDataRef", CLOUD_INIT_SECRET
        )
        return _cloud_init_secret(secret)
    assert provisioning.sysprep_ref is not None
    secret = _secret(vm, inventory, provisioning.sysprep_ref, "sysprepRef", SYSPREP_SECRET)
    return _sysprep_secret(secret)


def _inline_user_data(user_data: str) -> ProvisioningPayload:
    content = user_data.encode()
    # The CRD's CEL rule counts characters while its message says bytes (dvp-api.md
    # §10b); bytes are what the rules of this project check too (rules/vm_rules.py).
    if len(content) > USERDATA_LIMIT:
        raise _not_ready(
            f"inline userData is {len(content)} bytes, above the {USERDATA_LIMIT}-byte limit;"
            " put it in a Secret and use userDataRef"
        )
    return ProvisioningPayload.of(
        ProvisioningKind.CLOUD_INIT, "inline userData", (SeedFile("user-data", content),)
    )


def _secret(
    vm: VirtualMachine, inventory: Inventory, ref: SecretRef, field_name: str, secret_type: str
) -> Secret:
    # dvp-api.md §1.2: the Secret lives in the VM's namespace and must carry the type
    # of its use ("unexpected secret type" otherwise).
    secret_id = ObjectId("Secret", vm.namespace, ref.name)
    where = f"Secret {ref.name} in namespace {vm.namespace}"
    content = inventory.secret_content(secret_id)
    if isinstance(content, SecretRefusal):
        raise NotReady(VMCondition.PROVISIONING_READY, content.reason, content.message)
    if content is None:
        problem = "is invalid (see its own error)" if secret_id in inventory else "does not exist"
        raise _not_ready(f"{where}, named by {field_name}, {problem}")
    if content.sops is not None:
        # Nobody tried to decrypt it (a caller without an age key file): say whose key
        # it waits for.
        raise NotReady(
            VMCondition.PROVISIONING_READY,
            VMReason.SECRET_NOT_DECRYPTED,
            f"{where}, named by {field_name}, is encrypted with SOPS for the age"
            f" recipient(s) {content.sops.named_recipients()}, and this host has no"
            " age key file (ageKeyFile) to decrypt it",
        )
    if content.type != secret_type:
        raise _not_ready(
            f"{where} has unexpected type {content.type!r}; {field_name} needs type {secret_type!r}"
        )
    return content


def _cloud_init_secret(secret: Secret) -> ProvisioningPayload:
    # dvp-api.md §1.2: the key is userData or userdata; userData wins when both are set.
    for key in CLOUD_INIT_KEYS:
        content = secret.value(key)
        if content is not None:
            files = (SeedFile("user-data", content),)
            return ProvisioningPayload.of(
                ProvisioningKind.CLOUD_INIT, f"Secret {secret.name}", files
            )
    raise _not_ready(_missing_keys(secret, CLOUD_INIT_KEYS))


def _sysprep_secret(secret: Secret) -> ProvisioningPayload:
    # Both files go on the medium as they are: Windows Setup reads autounattend.xml,
    # a generalized image reads unattend.xml. The platform only warns when both are
    # missing, but KubeVirt's launcher then refuses to build the sysprep disk
    # (pkg/config/sysprep.go), so the VM could never start: say so up front.
    files = tuple(
        SeedFile(key, content)
        for key in sorted(SYSPREP_KEYS)
        if (content := secret.value(key)) is not None
    )
    if not files:
        raise _not_ready(_missing_keys(secret, SYSPREP_KEYS))
    return ProvisioningPayload.of(ProvisioningKind.SYSPREP, f"Secret {secret.name}", files)


def _missing_keys(secret: Secret, wanted: tuple[str, ...]) -> str:
    # Key names are not content: listing them tells a user about a typo at once.
    present = ", ".join(sorted(secret.data_keys())) or "none"
    return (
        f"Secret {secret.name} in namespace {secret.namespace} has no"
        f" {' or '.join(wanted)} key (its keys: {present})"
    )
