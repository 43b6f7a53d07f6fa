"""Provisioning: a VM's cloud-init or sysprep payload and the seed image that carries it.

Pure library code: `resolve_provisioning` decides (manifests in, payload or
NotReady out), `build_seed_iso` renders bytes; uploading the image into a storage
pool and attaching it as a CD-ROM is the engine's part.
"""

from __future__ import annotations

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
    build_seed_iso,
    seed_instance_id,
)

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
