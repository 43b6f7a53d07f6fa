"""Node: a hypervisor host of the fleet (this project's own kind)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from reconciler.api.libvirt_uri import check_libvirt_uri
from reconciler.api.meta import INT32_MAX, Manifest, Strict
from reconciler.api.quantity import MemorySize

NODE_API_VERSION = "reconciler.vm-gitops.io/v1alpha1"


class NodeCapacity(Strict):
    cpu: int | None = Field(default=None, ge=1, le=INT32_MAX)
    memory: MemorySize | None = None


class NodeSpec(Strict):
    capacity: NodeCapacity = Field(default_factory=NodeCapacity)
    unschedulable: bool = False
    # How the other hosts' libvirtd reach this host's, to migrate VMs to it.
    libvirt_uri: str | None = None

    @field_validator("libvirt_uri")
    @classmethod
    def _libvirt_uri_the_fleet_can_use(cls, value: str | None) -> str | None:
        return None if value is None else check_libvirt_uri(value)


class Node(Manifest):
    KIND: ClassVar[str] = "Node"
    API_VERSIONS: ClassVar[tuple[str, ...]] = (NODE_API_VERSION,)
    NAMESPACED: ClassVar[bool] = False
    PLURAL: ClassVar[str] = "nodes"

    spec: NodeSpec = Field(default_factory=NodeSpec)
