"""The objects of one revision, indexed by identity, as the cross-object rules see them."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import TypeVar

from reconciler.api import Manifest, ObjectId, Secret
from reconciler.findings import Finding
from reconciler.loader import LoadedObject, LoadResult
from reconciler.model.secrets import NO_SECRETS, OpenedSecrets, SecretRefusal

M = TypeVar("M", bound=Manifest)


class Inventory:
    """First definition of each identity wins; later ones are reported as duplicates."""

    def __init__(self, result: LoadResult, secrets: OpenedSecrets = NO_SECRETS) -> None:
        """`secrets`: what the host decrypted of the encrypted Secrets (model/secrets.py);
        the objects themselves stay as written, encrypted."""
        self.secrets = secrets
        self.objects: list[LoadedObject] = []
        self.duplicates: list[tuple[LoadedObject, LoadedObject]] = []
        self._by_id: dict[ObjectId, LoadedObject] = {}
        self._broken = set(result.broken)
        self._broken_findings = result.broken
        # replaced_since's last answer (several values of a pass ask it about one
        # inventory), by a weak reference: an inventory never keeps the one before alive.
        self._replaced: (
            tuple[weakref.ref[Inventory], tuple[tuple[LoadedObject, LoadedObject], ...] | None]
            | None
        ) = None
        # The objects of each model class, in order: a rule asks for one kind of 10,000
        # objects several times a pass.
        self._by_class: dict[type[Manifest], list[LoadedObject]] = {}
        # ids()'s answers, made once: shared with every inventory of the same identities.
        self._ids: dict[str | None, frozenset[ObjectId]] = {}
        # Per model class, where each object is in its _by_class list (_places): shared
        # with every inventory whose objects are in the same places (_edited).
        self._class_places: dict[type[Manifest], dict[ObjectId, int]] = {}
        by_id, by_class, objects = (
            self._by_id,
            self._by_class,
            self.objects,
        )  # once, not 20,000 times
        for loaded in result.objects:
            object_id = loaded.id
            first = by_id.get(object_id)
            if first is not None:
                self.duplicates.append((first, loaded))
                continue
            by_id[object_id] = loaded
            objects.append(loaded)
            model_class = type(loaded.model)
            same = by_class.get(model_class)
            if same is None:
                by_class[model_class] = [loaded]
            else:
                same.append(loaded)

    @classmethod
    def of(cls, result: LoadResult) -> Inventory:
        """The inventory of `result`, made once: the rules and the plan context of a pass
        both index the same 10,000 objects. Kept for the last result asked about only,
        and only while it holds the very objects (and broken ones) it was made from.
        A result that replaced some of the last one's objects in place (a push that
        edited manifests) is indexed from the last inventory (_edited)."""
        last = _LAST_MADE[0] if _LAST_MADE else None
        if last is not None:
            made_from, objects, broken, count, inventory = last
            if (
                made_from() is result
                and result.objects is objects
                and len(objects) == count
                and result.broken is broken
                and len(broken) == len(inventory._broken)
            ):
                return inventory
        made = _edited(inventory, result, objects) if last is not None else None
        inventory = made or cls(result)
        _LAST_MADE[:] = [
            (weakref.ref(result), result.objects, result.broken, len(result.objects), inventory)
        ]
        return inventory

    def with_secrets(self, secrets: OpenedSecrets) -> Inventory:
        """This inventory with what the host decrypted of its Secrets; its indexes are
        shared (no inventory changes after it is made)."""
        if secrets is self.secrets:
            return self
        other = object.__new__(Inventory)
        other.__dict__.update(self.__dict__)
        other.secrets = secrets
        other._replaced = None
        return other

    def replaced_since(
        self, before: Inventory
    ) -> tuple[tuple[LoadedObject, LoadedObject], ...] | None:
        """The objects this inventory holds in place of `before`'s, as (before's, this
        one's) pairs in inventory order: the same number of objects, each one either the
        very object of `before` or one of the same identity (kind, namespace, name) at
        the same place, with the same duplicates, broken objects and Secrets' content.
        None when they differ in any other way (an object added, removed, renamed or
        moved): a caller that keeps a value made from `before` makes it anew then.

        A daemon's pass after an edited manifest finds exactly that: the manifest cache
        keeps every unchanged file's objects (source/cache.py)."""
        last = self._replaced
        if last is not None and last[0]() is before:
            return last[1]
        replaced = self._replaced_since(before)
        self._replaced = (weakref.ref(before), replaced)
        return replaced

    def _replaced_since(
        self, before: Inventory
    ) -> tuple[tuple[LoadedObject, LoadedObject], ...] | None:
        mine, theirs = self.objects, before.objects
        if (
            len(mine) != len(theirs)
            or self._broken != before._broken
            or len(self.duplicates) != len(before.duplicates)
            or any(
                a is not b or c is not d
                for (a, c), (b, d) in zip(self.duplicates, before.duplicates, strict=True)
            )
            or not (self.secrets is before.secrets or self.secrets == before.secrets)
        ):
            return None
        replaced = tuple(
            (old, new) for new, old in zip(mine, theirs, strict=True) if new is not old
        )
        if any(old.id != new.id for old, new in replaced):
            return None
        return replaced

    def with_objects(self, extra: Iterable[LoadedObject]) -> Inventory:
        """This inventory and objects from elsewhere (operations hosts made: engine/
        operations/generated.py); an identity already present keeps its object."""
        added = [loaded for loaded in extra if loaded.id not in self]
        if not added:
            return self
        return Inventory(
            LoadResult(objects=[*self.objects, *added], broken=self._broken_findings),
            self.secrets,
        )

    def ids(self, kind: str | None = None) -> frozenset[ObjectId]:
        """The identities of its objects (of `kind` only, when given; broken objects are
        not among them). A pass's report writers ask for every identity of the revision:
        10,000 of them, the same as at the last pass unless an object came or went."""
        found = self._ids.get(kind)
        if found is None:
            every = self._by_id.keys()
            found = frozenset(every if kind is None else (i for i in every if i.kind == kind))
            self._ids[kind] = found
        return found

    def _places(self, model_class: type[Manifest]) -> dict[ObjectId, int]:
        """Where each object of the class is in its _by_class list."""
        places = self._class_places.get(model_class)
        if places is None:
            same = self._by_class[model_class]
            places = {loaded.id: at for at, loaded in enumerate(same)}
            self._class_places[model_class] = places
        return places

    def __contains__(self, object_id: ObjectId) -> bool:
        """Present, even if broken: a broken object is reported once, in its own file."""
        return object_id in self._by_id or object_id in self._broken

    def get(self, object_id: ObjectId) -> LoadedObject | None:
        return self._by_id.get(object_id)

    def secret_content(self, object_id: ObjectId) -> Secret | SecretRefusal | None:
        """The Secret whose values provisioning may read: the decrypted one of an encrypted
        Secret, the Secret itself when it is in the clear; why not when the host cannot
        use it; None when there is no such (valid) Secret."""
        refusal = self.secrets.refused.get(object_id)
        if refusal is not None:
            return refusal
        loaded = self._by_id.get(object_id)
        if loaded is None or not isinstance(loaded.model, Secret):
            return None
        if loaded.model.sops is None:
            return loaded.model
        return self.secrets.opened.get(object_id, loaded.model)

    def of_kind(self, kind: type[M]) -> Iterator[tuple[LoadedObject, M]]:
        classes = [model for model in self._by_class if issubclass(model, kind)]
        if not classes:
            return
        # One class: its own list. Several (kind is a base class): in inventory order.
        candidates = self._by_class[classes[0]] if len(classes) == 1 else self.objects
        for loaded in candidates:
            if isinstance(loaded.model, kind):
                yield loaded, loaded.model


def models_of_kind(result: LoadResult, kind: type[M]) -> list[M]:
    """Every object of `kind` in `result`, duplicates too, in the order loaded: from
    Inventory.of's index (not a walk of 10,000 objects) when there is no duplicate."""
    inventory = Inventory.of(result)
    if not inventory.duplicates:
        return [model for _, model in inventory.of_kind(kind)]
    return [loaded.model for loaded in result.objects if isinstance(loaded.model, kind)]


def _edited(last: Inventory, result: LoadResult, made_from: list[LoadedObject]) -> Inventory | None:
    """The inventory of `result` made from `last` (an inventory without duplicates or
    Secrets' content) when `result` holds its objects but for some replaced in place by
    objects of the same identity and model class; None otherwise. It is what Inventory
    would make of `result`, and it knows what replaced what (replaced_since).
    `made_from`: the objects of the result `last` was made from."""
    objects = result.objects
    if last.duplicates or last.secrets is not NO_SECRETS or len(objects) != len(last.objects):
        return None
    edited = result.edited
    if edited is not None and edited[0] is made_from:
        # The manifest cache says where it replaced objects of the very list `last` was
        # made from: the other 10,000 are not compared one by one.
        before = last.objects
        replaced = tuple((before[i], objects[i]) for i in edited[1] if before[i] is not objects[i])
    else:
        replaced = tuple(
            (old, new) for old, new in zip(last.objects, objects, strict=True) if old is not new
        )
    if any(old.id != new.id or type(old.model) is not type(new.model) for old, new in replaced):
        return None
    inventory = object.__new__(Inventory)
    inventory.secrets = NO_SECRETS
    inventory.objects = list(objects)
    inventory.duplicates = []
    inventory._broken = set(result.broken)
    inventory._broken_findings = result.broken
    inventory._by_id = dict(last._by_id)
    inventory._by_class = dict(last._by_class)
    inventory._ids = last._ids  # the same identities
    inventory._class_places = last._class_places  # each in the same place
    for _old, new in replaced:
        inventory._by_id[new.id] = new
    for model_class in {type(new.model) for _old, new in replaced}:
        same = list(last._by_class[model_class])
        places = last._places(model_class)
        for _old, new in replaced:
            if type(new.model) is model_class:
                same[places[new.id]] = new
        inventory._by_class[model_class] = same
    same_broken = inventory._broken == last._broken
    inventory._replaced = (weakref.ref(last), replaced if same_broken else None)
    return inventory


# Inventory.of's one inventory: (the result, its objects and broken objects as they were,
# how many objects, the inventory).
_LAST_MADE: list[
    tuple[
        weakref.ref[LoadResult],
        list[LoadedObject],
        dict[ObjectId, Finding],
        int,
        Inventory,
    ]
] = []
