"""Node: a hypervisor host of the fleet (this project's own kind)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from reconciler.api.meta import INT32_MAX, Manifest, Strict
from reconciler.api.quantity import MemorySize

NODE_API_VERSION = "reconciler.vm-gitops.io/v1alpha1"


class NodeCapacity(Strict):
    cpu: int | None = Field(default=None, ge=1, le=INT32_MAX)
    memory: MemorySize | None = None


class NodeSpec(Strict):
    capacity: NodeCapacity = Field(default_factory=NodeCapacity)
    unschedulable: bool = False


class Node(Manifest):
    KIND: ClassVar[str] = "Node"
    API_VERSIONS: ClassVar[tuple[str, ...]] = (NODE_API_VERSION,)
    NAMESPACED: ClassVar[bool] = False
    PLURAL: ClassVar[str] = "nodes"

    spec: NodeSpec = Field(default_factory=NodeSpec)
