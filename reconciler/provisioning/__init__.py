"""Provisioning: a VM's cloud-init or sysprep payload and the seed image that carries it.

Pure library code: `resolve_provisioning` decides (manifests in, payload or
NotReady out), `build_seed_iso` renders bytes; uploading the image into a storage
pool and attaching it as a CD-ROM is the engine's part.

`build_seed_iso` is imported when first asked for (PEP 562): it brings pycdlib, which
only a pass that makes a seed needs (issue 16, one-shot start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from reconciler.provisioning.payload import (
    ProvisioningKind,
    ProvisioningPayload,
    SeedFile,
    resolve_provisioning,
)
from reconciler.provisioning.seed import (
    CIDATA_VOLUME_ID,
    SYSPREP_VOLUME_ID,
    NetworkConfig,
    seed_instance_id,
)

if TYPE_CHECKING:
    from reconciler.provisioning.iso import build_seed_iso


def __getattr__(name: str) -> Any:
    """`build_seed_iso`, from its module on first use (start-up speed)."""
    if name != "build_seed_iso":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Imported here, for start-up speed: pycdlib only when a seed is made.
    value = importlib.import_module(f"{__name__}.iso").build_seed_iso
    globals()[name] = value
    return value


__all__ = [
    "CIDATA_VOLUME_ID",
    "SYSPREP_VOLUME_ID",
    "NetworkConfig",
    "ProvisioningKind",
    "ProvisioningPayload",
    "SeedFile",
    "build_seed_iso",
    "resolve_provisioning",
    "seed_instance_id",
]
