"""The objects of one revision, indexed by identity, as the cross-object rules see them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from reconciler.api import Manifest, ObjectId, Secret
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
        # The objects of each model class, in order: a rule asks for one kind of 10,000
        # objects several times a pass.
        self._by_class: dict[type[Manifest], list[LoadedObject]] = {}
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
