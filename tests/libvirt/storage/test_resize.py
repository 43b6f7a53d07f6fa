"""Growing and refusing to shrink disks on the test driver.

The test driver grows nothing (virStorageVolResize and virDomainBlockResize are
not supported), so these tests show which way a grow goes and what is refused
before libvirt is asked; tests/e2e/test_storage.py grows disks on libvirtd.
"""

from __future__ import annotations

import libvirt
import pytest

from reconciler.libvirt.storage import (
    ForeignVolume,
    ShrinkRefused,
    StorageError,
    VolumeMissing,
    ensure_disk_volume,
    resize_disk,
)
from tests.libvirt.storage.conftest import BUSY_DOMAIN, BUSY_VOLUME, FOREIGN_VOLUME, POOL, MiB, disk


def test_shrinking_is_refused_and_the_disk_keeps_its_size(
    conn: libvirt.virConnect, pool: libvirt.virStoragePool
) -> None:
    made = ensure_disk_volume(pool, disk("data"), 2 * MiB)

    with pytest.raises(ShrinkRefused) as raised:
        resize_disk(conn, pool, made.name, MiB)

    assert f"{POOL}/{made.name}" in str(raised.value)
    assert "cannot shrink from 2Mi to 1Mi" in str(raised.value)
    assert pool.storageVolLookupByName(made.name).info()[1] == 2 * MiB


def test_a_size_within_the_last_sector_is_no_change(
    conn: libvirt.virConnect, pool: libvirt.virStoragePool
) -> None:
    # 1G-style sizes are not sector multiples; QEMU rounds them up when it creates
    # the qcow2, and asking for the same size again must neither grow nor shrink.
    made = ensure_disk_volume(pool, disk("data"), 1_000_448)

    assert resize_disk(conn, pool, made.name, 1_000_000) == 1_000_448


def test_a_stopped_disk_grows_through_the_volume(
    conn: libvirt.virConnect, pool: libvirt.virStoragePool
) -> None:
    made = ensure_disk_volume(pool, disk("data"), MiB)

    with pytest.raises(StorageError) as raised:
        resize_disk(conn, pool, made.name, 2 * MiB)

    assert "offline" in str(raised.value)
    assert "virStorageVolResize" in str(raised.value)  # unsupported by the test driver


def test_a_disk_of_a_running_domain_grows_through_that_domain(
    conn: libvirt.virConnect, pool: libvirt.virStoragePool
) -> None:
    with pytest.raises(StorageError) as raised:
        resize_disk(conn, pool, BUSY_VOLUME, 4 * MiB)  # its domain found by its use

    assert f"through running domain {BUSY_DOMAIN} (sda)" in str(raised.value)
    assert "virDomainBlockResize" in str(raised.value)  # unsupported by the test driver


def test_a_given_running_domain_is_used_with_its_target(
    conn: libvirt.virConnect, pool: libvirt.virStoragePool
) -> None:
    domain = conn.lookupByName(BUSY_DOMAIN)

    with pytest.raises(StorageError, match=f"through running domain {BUSY_DOMAIN} \\(sda\\)"):
        resize_disk(conn, pool, BUSY_VOLUME, 4 * MiB, domain)


@pytest.mark.parametrize("name", [FOREIGN_VOLUME, "img-default-ubuntu-0123abcd.qcow2"])
def test_volumes_other_than_disks_are_never_resized(
    conn: libvirt.virConnect, pool: libvirt.virStoragePool, name: str
) -> None:
    with pytest.raises(ForeignVolume, match=name):
        resize_disk(conn, pool, name, 8 * MiB)


def test_a_missing_disk_is_named(conn: libvirt.virConnect, pool: libvirt.virStoragePool) -> None:
    with pytest.raises(VolumeMissing, match=f"{POOL}/vd-default-none.qcow2"):
        resize_disk(conn, pool, "vd-default-none.qcow2", MiB)
