"""Deleting disk volumes: only the project's, never a protected or a used one."""

from __future__ import annotations

import libvirt
import pytest

from reconciler.api.storage import PROTECT_ANNOTATION
from reconciler.libvirt.storage import (
    ForeignVolume,
    VolumeInUse,
    VolumeProtected,
    delete_disk_volume,
    delete_volume,
    ensure_disk_volume,
)
from tests.libvirt.storage.conftest import BUSY_DOMAIN, FOREIGN_VOLUME, MiB, disk, volume_names


def test_a_deleted_disks_volume_goes(pool: libvirt.virStoragePool) -> None:
    made = ensure_disk_volume(pool, disk("data"), MiB)

    assert delete_disk_volume(pool, disk("data"), protected=False)
    assert made.name not in volume_names(pool)
    assert not delete_disk_volume(pool, disk("data"), protected=False)  # already gone


def test_a_protected_disk_is_kept(pool: libvirt.virStoragePool) -> None:
    made = ensure_disk_volume(pool, disk("data"), MiB)

    with pytest.raises(VolumeProtected, match=PROTECT_ANNOTATION):
        delete_disk_volume(pool, disk("data"), protected=True)

    assert made.name in volume_names(pool)


def test_a_volume_the_project_did_not_make_is_never_deleted(pool: libvirt.virStoragePool) -> None:
    with pytest.raises(ForeignVolume, match=FOREIGN_VOLUME):
        delete_volume(pool, FOREIGN_VOLUME, protected=False)

    assert FOREIGN_VOLUME in volume_names(pool)


def test_a_disk_of_a_running_domain_is_kept(pool: libvirt.virStoragePool) -> None:
    with pytest.raises(VolumeInUse, match=BUSY_DOMAIN):
        delete_disk_volume(pool, disk("busy"), protected=False)

    assert "vd-default-busy.qcow2" in volume_names(pool)


def test_a_disk_of_a_stopped_vm_is_kept(
    conn: libvirt.virConnect, pool: libvirt.virStoragePool
) -> None:
    made = ensure_disk_volume(pool, disk("parked"), MiB)
    conn.defineXML(
        "<domain type='test'><name>parked.default</name><memory>524288</memory>"
        "<os><type>hvm</type></os><devices><disk type='file' device='disk'>"
        f"<source file='{made.path}'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
    )

    with pytest.raises(VolumeInUse, match=r"parked\.default"):
        delete_disk_volume(pool, disk("parked"), protected=False)

    assert made.name in volume_names(pool)
