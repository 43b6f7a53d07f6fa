"""Values derived from objects, found again by those very objects.

Between two revisions most manifests, desired specs and definitions read back are
the same (frozen) objects, so what a pass derives from them need not be derived
again. An entry is served only for the identical objects it was made from; it holds
them, so no id is reused while it is kept. The memo empties itself when it outgrows
its limit.
"""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    def __init__(self, limit: int = 50_000) -> None:
        self._limit = limit
        self._entries: dict[tuple[int, ...], tuple[tuple[object, ...], V]] = {}

    def get(self, *objects: object) -> V | None:
        entry = self._entries.get(tuple(map(id, objects)))
        if entry is None:
            return None
        held, value = entry
        if any(a is not b for a, b in zip(held, objects, strict=True)):
            return None
        return value

    def put(self, objects: tuple[object, ...], value: V) -> V:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[tuple(map(id, objects))] = (objects, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)
