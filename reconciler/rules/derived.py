"""Values a rule reads off one loaded object, kept with the object.

A daemon's pass sees the very objects of the pass before except those in changed files
(source/cache.py), so what depends on an object alone is worked out once per object.
A value that also depends on another object (a VM's sizing on its class) or a policy
is kept with that dependency and used only while it is the identical one.
"""

from __future__ import annotations

from typing import Generic, TypeVar, cast

from reconciler.loader import LoadedObject

V = TypeVar("V")


class Derived(Generic[V]):
    """One kind of value, under its own key in each object's `derived`."""

    def get(self, loaded: LoadedObject) -> V | None:
        return cast("V | None", loaded.derived.get(self))

    def put(self, loaded: LoadedObject, value: V) -> V:
        loaded.derived[self] = value
        return value
