"""The seed image itself: the payload's files on an ISO 9660 medium (pycdlib).

Apart from seed.py (what goes on it) so that only a pass that makes a seed imports
pycdlib: `reconciler apply` of VMs without provisioning starts without it (issue 16).
"""

from __future__ import annotations

import io

import pycdlib

from reconciler.provisioning.payload import ProvisioningKind, ProvisioningPayload, SeedFile
from reconciler.provisioning.seed import (
    CIDATA_VOLUME_ID,
    SYSPREP_VOLUME_ID,
    NetworkConfig,
    render_meta_data,
    render_network_config,
)
from reconciler.provisioning.timestamps import with_fixed_timestamps


def build_seed_iso(
    payload: ProvisioningPayload,
    *,
    instance_id: str,
    hostname: str,
    network: NetworkConfig | None = None,
) -> bytes:
    """The seed image; the same arguments give byte-identical images on any host.

    For sysprep only the payload's files go on the medium: instance_id, hostname
    and network are cloud-init's and the answer file sets its own computer name.
    """
    if payload.kind is ProvisioningKind.SYSPREP:
        return _iso(SYSPREP_VOLUME_ID, payload.files)
    files = [
        *payload.files,
        SeedFile("meta-data", render_meta_data(instance_id, hostname).encode()),
    ]
    if network is not None:
        files.append(SeedFile("network-config", render_network_config(network).encode()))
    return _iso(CIDATA_VOLUME_ID, tuple(files))


def _iso(volume_id: str, files: tuple[SeedFile, ...]) -> bytes:
    iso = pycdlib.PyCdlib()
    # Interchange level 3 allows the 8.3-breaking names below in the plain ISO 9660
    # tree, which only readers without Rock Ridge or Joliet ever see.
    iso.new(
        interchange_level=3,
        sys_ident="LINUX",
        vol_ident=volume_id,
        joliet=3,
        rock_ridge="1.09",
    )
    try:
        for seed_file in sorted(files, key=lambda f: f.name):
            iso.add_fp(
                io.BytesIO(seed_file.content),
                len(seed_file.content),
                iso_path=f"/{_iso9660_name(seed_file.name)}",
                rr_name=seed_file.name,
                joliet_path=f"/{seed_file.name}",
            )
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return with_fixed_timestamps(out.getvalue())


def _iso9660_name(name: str) -> str:
    """`user-data` -> `USER_DATA.;1`, `unattend.xml` -> `UNATTEND.XML;1` (d-characters only)."""
    stem, dot, extension = name.upper().replace("-", "_").partition(".")
    return f"{stem}.{extension if dot else ''};1"
