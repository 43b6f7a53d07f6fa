"""Values a pass derives from the whole revision, made from the last pass's when it can.

A host of a fleet plans its own hundred VMs, yet reads a revision of ten thousand: the
VMs in order, their domain names, the devices they refer to. After a push that edited
one manifest, the manifest cache hands the pass the very objects of the last one for
every other file (source/cache.py), so such a value is the last one with the edited
objects' part made again (Inventory.replaced_since says which), not the walk of every
object again that made it first. Any other difference (an object added, removed,
renamed, another extra input) makes it anew, whole.

Equal to making it whole: tests/engine/test_from_last.py edits random revisions and
compares every value with one made from scratch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from reconciler.api import ObjectId, VirtualMachine
from reconciler.loader import LoadedObject
from reconciler.model.names import domain_name
from reconciler.rules.inventory import Inventory

V = TypeVar("V")
# Every FromLast of the engine: the tests compare each with a full computation.
KEPT: list[FromLast[Any]] = []
Replaced = tuple[tuple[LoadedObject, LoadedObject], ...]


class FromLast(Generic[V]):
    """One value of an inventory (and of `extra` inputs, compared by equality), kept for
    the last inventory it was made for. `update(last value, replaced)` gives the value
    for an inventory that replaced objects of the last one in place, or None when it
    cannot (then `whole` makes it)."""

    def __init__(
        self,
        whole: Callable[[Inventory, Any], V],
        update: Callable[[V, Replaced], V | None],
    ) -> None:
        self._whole = whole
        self._update = update
        self._last: tuple[Inventory, object, V] | None = None
        # How many values were made from the last one: the tests' proof it is used.
        self.updated = 0
        KEPT.append(self)

    def __call__(self, inventory: Inventory, extra: object = None) -> V:
        last = self._last
        if last is not None:
            before, before_extra, value = last
            if before is inventory and before_extra is extra:
                return value
            if before_extra is extra or before_extra == extra:
                replaced = inventory.replaced_since(before)
                made = self._update(value, replaced) if replaced is not None else None
                if made is not None:
                    self.updated += 1
                    self._last = (inventory, extra, made)
                    return made
        value = self._whole(inventory, extra)
        self._last = (inventory, extra, value)
        return value

    def clear(self) -> None:
        self._last = None


def vm_pairs(replaced: Replaced) -> list[tuple[VirtualMachine, VirtualMachine]] | None:
    """The VMs replaced, each (before, after); None when an object was a VM on one side
    only."""
    pairs: list[tuple[VirtualMachine, VirtualMachine]] = []
    for old, new in replaced:
        before, after = old.model, new.model
        if isinstance(before, VirtualMachine) and isinstance(after, VirtualMachine):
            pairs.append((before, after))
        elif isinstance(before, VirtualMachine) or isinstance(after, VirtualMachine):
            return None
    return pairs


def others_equal(replaced: Replaced) -> bool:
    """Whether every object replaced that is not a VM is an equal one: a file read again
    gives new objects for all its documents (a VM's file, its disk too)."""
    return all(
        old.model == new.model for old, new in replaced if not isinstance(old.model, VirtualMachine)
    )


class _VMs:
    """The revision's VMs sorted by id, and where each one is in that order."""

    def __init__(self, vms: tuple[VirtualMachine, ...], at: Mapping[ObjectId, int]) -> None:
        self.vms = vms
        self.at = at


def _whole_vms(inventory: Inventory, _extra: object) -> _VMs:
    vms = tuple(sorted((vm for _, vm in inventory.of_kind(VirtualMachine)), key=lambda v: v.id))
    return _VMs(vms, {vm.id: index for index, vm in enumerate(vms)})


def _updated_vms(last: _VMs, replaced: Replaced) -> _VMs | None:
    pairs = vm_pairs(replaced)
    if pairs is None:
        return None
    if not pairs:
        return last
    vms = list(last.vms)
    for _old, new in pairs:
        vms[last.at[new.id]] = new  # the same id: the same place in the order
    return _VMs(tuple(vms), last.at)


_SORTED_VMS: FromLast[_VMs] = FromLast(_whole_vms, _updated_vms)


def sorted_vms(inventory: Inventory) -> tuple[VirtualMachine, ...]:
    """The inventory's VMs in the order of their ids."""
    return _SORTED_VMS(inventory).vms


def _whole_names(inventory: Inventory, broken: Any) -> frozenset[str]:
    vm_names = {domain_name(vm) for _, vm in inventory.of_kind(VirtualMachine)}
    broken_names = {domain_name(b) for b in broken if b.kind == VirtualMachine.KIND}
    return frozenset(vm_names | broken_names)


def _updated_names(last: frozenset[str], replaced: Replaced) -> frozenset[str] | None:
    # A domain's name is its VM's identity's, which a replaced object keeps.
    return last if vm_pairs(replaced) is not None else None


_DESIRED_NAMES: FromLast[frozenset[str]] = FromLast(_whole_names, _updated_names)


def desired_names(inventory: Inventory, broken: frozenset[ObjectId]) -> frozenset[str]:
    """The domain names of the revision's VMs, the broken ones included: none of them
    is deleted (fleet/deletions.py)."""
    return _DESIRED_NAMES(inventory, broken)
