"""VirtualMachineOperations a host creates itself, as the platform does for system events
(dvp-virtual-machines.txt, "Migration Types"): an `evacuation-…` Evict for each VM of a
drained Node, a `nodeplacement-update-…` Evict for a VM whose placement rules no longer
hold where it runs (the `hotplug` profile).

Git has no place for an object a host makes but its status tree, so such an operation
is written there whole: the report of an operation the host created carries its
`spec` and two labels (which host made it, and why) beside its `status`. Every host
reads it back from the reports (reports/reported_operations.py) and treats it as a
manifest of the revision (reconcile.plan_context): the host the VM arrives on completes
it as it completes an Evict from Git. The host that made it removes its report when it
is final and no longer wanted (`retired`): the drained Node is back in service, or the
VM left.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.api import ObjectId, VirtualMachine, VirtualMachineOperation
from reconciler.api.names import is_dns_label, is_dns_subdomain
from reconciler.api.operation import OperationType, VirtualMachineOperationSpec
from reconciler.loader import LoadedObject, SourceDocument
from reconciler.model.domain import DomainMetadata
from reconciler.rules.inventory import Inventory

ORIGIN_LABEL = "reconciler.vm-gitops.io/origin-node"
CAUSE_LABEL = "reconciler.vm-gitops.io/cause"
# The source a made operation's object names in place of a manifest's file.
MADE_BY_HOST = "(made by host "


class Cause(StrEnum):
    """Why a host made an operation; the value is the prefix of its name, as the
    platform names them."""

    EVACUATION = "evacuation"
    NODE_PLACEMENT = "nodeplacement-update"


# The names of the operations hosts make begin so.
GENERATED_PREFIXES = tuple(f"{cause}-" for cause in Cause)


@dataclass(frozen=True)
class GeneratedOperation:
    """An Evict a host made: its identity, the VM it moves, the host that made it and why."""

    id: ObjectId
    vm_name: str
    origin: str
    cause: Cause

    @property
    def vm_id(self) -> ObjectId:
        return ObjectId(VirtualMachine.KIND, self.id.namespace, self.vm_name)

    @property
    def spec(self) -> VirtualMachineOperationSpec:
        return VirtualMachineOperationSpec(
            type=OperationType.EVICT, virtual_machine_name=self.vm_name
        )

    def manifest(self) -> VirtualMachineOperation:
        """The operation as a manifest of the revision would give it."""
        return VirtualMachineOperation.model_validate(
            {
                "apiVersion": VirtualMachineOperation.API_VERSIONS[0],
                "kind": VirtualMachineOperation.KIND,
                **self.document_fields(),
            }
        )

    def document_fields(self) -> dict[str, Any]:
        """`metadata` and `spec` of its report: what makes the report the operation."""
        return {
            "metadata": {
                "name": self.id.name,
                "namespace": self.id.namespace,
                "labels": {ORIGIN_LABEL: self.origin, CAUSE_LABEL: self.cause.value},
            },
            "spec": {"type": OperationType.EVICT.value, "virtualMachineName": self.vm_name},
        }


def as_loaded(operation: GeneratedOperation) -> LoadedObject:
    """The operation as the loader would give it from a manifest."""
    document = {
        "apiVersion": VirtualMachineOperation.API_VERSIONS[0],
        "kind": VirtualMachineOperation.KIND,
        **operation.document_fields(),
    }
    where = f"{MADE_BY_HOST}{operation.origin}) {operation.id.name}"
    return LoadedObject(operation.manifest(), SourceDocument(where, json.dumps(document)))


def generated_name(cause: Cause, origin: str, vm_id: ObjectId, attempt: int) -> str:
    """`<cause>-xxxxx`, as Kubernetes' generateName would give it, but derived: the same
    host, VM and attempt always give the same name, so the two plans of a pass (and a
    pass run again after a crash) create one operation, not two."""
    seed = f"{cause}\0{origin}\0{vm_id.namespace}\0{vm_id.name}\0{attempt}".encode()
    digest = hashlib.sha256(seed).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet
    suffix = "".join(alphabet[byte % len(alphabet)] for byte in digest[:5])
    return f"{cause}-{suffix}"


def next_attempt(cause: Cause, meta: DomainMetadata | None) -> int:
    """One more than the operations of this cause the domain's record lists: the record
    travels with the domain, so a VM evacuated, brought back and evacuated again gets a
    new operation rather than the completed one."""
    entries = meta.completed_operations if meta is not None else ()
    prefix = f"{cause}-"
    return 1 + sum(1 for e in entries if e.partition("/")[2].startswith(prefix))


def read_generated(document: Mapping[str, Any], operation: ObjectId) -> GeneratedOperation | None:
    """The operation a report carries, when a host made it; None for the report of an
    operation from Git, and for anything that does not read as one (a report is input
    like any other: a forged or garbled one makes no operation)."""
    metadata = document.get("metadata")
    spec = document.get("spec")
    if not isinstance(metadata, Mapping) or not isinstance(spec, Mapping):
        return None
    labels = metadata.get("labels")
    if not isinstance(labels, Mapping):
        return None
    origin, cause, vm_name = (
        labels.get(ORIGIN_LABEL),
        labels.get(CAUSE_LABEL),
        spec.get("virtualMachineName"),
    )
    if not (isinstance(origin, str) and is_dns_subdomain(origin)):
        return None
    if not (isinstance(vm_name, str) and is_dns_label(vm_name)):
        return None
    if cause not in _CAUSES or spec.get("type") != OperationType.EVICT:
        return None
    if not operation.name.startswith(f"{cause}-") or set(spec) - {"type", "virtualMachineName"}:
        return None
    return GeneratedOperation(operation, vm_name, origin, Cause(cause))


def generated_operations(inventory: Inventory) -> dict[ObjectId, GeneratedOperation]:
    """The operations of the inventory that hosts made, whose reports carry them whole."""
    found: dict[ObjectId, GeneratedOperation] = {}
    for loaded, operation in inventory.of_kind(VirtualMachineOperation):
        labels = operation.metadata.labels
        origin, cause = labels.get(ORIGIN_LABEL), labels.get(CAUSE_LABEL)
        if origin and cause in _CAUSES and loaded.source.path.startswith(MADE_BY_HOST):
            found[loaded.id] = GeneratedOperation(
                loaded.id, operation.spec.virtual_machine_name, origin, Cause(cause)
            )
    return found


_CAUSES = frozenset(cause.value for cause in Cause)
