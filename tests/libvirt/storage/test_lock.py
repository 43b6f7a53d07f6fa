"""Every storage call waits for the pool's lock, whichever lookup of the pool holds it."""

from __future__ import annotations

import threading

import libvirt

from reconciler.libvirt.storage import ensure_disk_volume, pool_lock
from tests.libvirt.storage.conftest import POOL, MiB, disk, volume_names


def test_a_disk_is_not_made_while_another_job_holds_the_pool(
    conn: libvirt.virConnect, pool: libvirt.virStoragePool
) -> None:
    other_lookup = conn.storagePoolLookupByName(POOL)
    maker = threading.Thread(target=ensure_disk_volume, args=(pool, disk("late"), MiB))

    with pool_lock(other_lookup):
        maker.start()
        maker.join(timeout=0.5)
        waited = maker.is_alive()
        made_meanwhile = "vd-default-late.qcow2" in volume_names(pool)
    maker.join(timeout=5)

    assert waited and not made_meanwhile
    assert "vd-default-late.qcow2" in volume_names(pool)


def test_the_lock_can_be_taken_again_by_its_holder(pool: libvirt.virStoragePool) -> None:
    with pool_lock(pool):
        made = ensure_disk_volume(pool, disk("nested"), MiB)

    assert made.created
