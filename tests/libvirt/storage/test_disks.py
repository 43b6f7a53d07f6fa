"""Making disk volumes on the test driver: blank, from an image, never twice, in parallel.

The test driver copies a volume (createXMLFrom) at the capacity asked for but
not its content, and grows nothing; tests/e2e/test_storage.py checks the content
and the grow after the copy on libvirtd.
"""

from __future__ import annotations

import threading

import libvirt
import pytest

from reconciler.libvirt.storage import (
    DiskSmallerThanImage,
    ImageVolume,
    PoolUnavailable,
    ensure_disk_volume,
    make_disk_volume,
)
from reconciler.libvirt.storage.pools import create_volume, volume_format
from reconciler.model.names import ImageFormat, image_volume_name
from tests.libvirt.storage.conftest import POOL, MiB, disk, image, volume_names


@pytest.fixture
def ubuntu(pool: libvirt.virStoragePool) -> ImageVolume:
    """An image imported earlier: 3 MiB as a guest sees it."""
    name = image_volume_name(image("ubuntu"), "/srv/ubuntu.qcow2", ImageFormat.QCOW2)
    volume = create_volume(pool, name, 3 * MiB, "qcow2")
    return ImageVolume(POOL, name, volume.path(), ImageFormat.QCOW2, 3 * MiB)


def test_a_blank_disk_gets_the_size_of_its_manifest(pool: libvirt.virStoragePool) -> None:
    made = ensure_disk_volume(pool, disk("data"), 5 * MiB)

    volume = pool.storageVolLookupByName("vd-default-data.qcow2")
    assert made.created and made.name == "vd-default-data.qcow2"
    assert volume.info()[1] == made.capacity_bytes == 5 * MiB
    assert volume_format(volume) == "qcow2"
    assert made.path == volume.path()


def test_making_a_disk_says_it_made_a_blank_volume_of_the_manifests_size(
    pool: libvirt.virStoragePool,
) -> None:
    made = make_disk_volume(pool, disk("data"), 5 * MiB)

    volume = pool.storageVolLookupByName("vd-default-data.qcow2")
    assert made
    assert volume.info()[1] == 5 * MiB
    assert volume_format(volume) == "qcow2"


def test_making_a_disk_that_exists_leaves_it_and_says_so(
    pool: libvirt.virStoragePool, ubuntu: ImageVolume
) -> None:
    first = ensure_disk_volume(pool, disk("data"), 5 * MiB)
    key = pool.storageVolLookupByName(first.name).key()

    made = make_disk_volume(pool, disk("data"), 9 * MiB, ubuntu)

    assert not made
    volume = pool.storageVolLookupByName(first.name)
    assert volume.key() == key and volume.info()[1] == 5 * MiB


def test_an_existing_disk_is_never_made_again(
    pool: libvirt.virStoragePool, ubuntu: ImageVolume
) -> None:
    first = ensure_disk_volume(pool, disk("data"), 5 * MiB)
    key = pool.storageVolLookupByName(first.name).key()

    again = ensure_disk_volume(pool, disk("data"), 9 * MiB, ubuntu)

    assert not again.created
    assert again.capacity_bytes == 5 * MiB  # neither regrown nor replaced by the image
    assert pool.storageVolLookupByName(first.name).key() == key


def test_a_disk_from_an_image_without_a_size_has_the_images_size(
    pool: libvirt.virStoragePool, ubuntu: ImageVolume
) -> None:
    made = ensure_disk_volume(pool, disk("root"), None, ubuntu)

    assert made.created and made.capacity_bytes == 3 * MiB
    assert volume_format(pool.storageVolLookupByName(made.name)) == "qcow2"


def test_a_disk_larger_than_its_image_gets_its_own_size(
    pool: libvirt.virStoragePool, ubuntu: ImageVolume
) -> None:
    made = ensure_disk_volume(pool, disk("root"), 10 * MiB, ubuntu)

    assert pool.storageVolLookupByName(made.name).info()[1] == 10 * MiB


def test_a_disk_smaller_than_its_image_is_refused(
    pool: libvirt.virStoragePool, ubuntu: ImageVolume
) -> None:
    before = volume_names(pool)

    with pytest.raises(DiskSmallerThanImage) as raised:
        ensure_disk_volume(pool, disk("root"), 2 * MiB, ubuntu)

    assert "2Mi" in str(raised.value) and "3Mi" in str(raised.value)
    assert ubuntu.name in str(raised.value) and "vd-default-root.qcow2" in str(raised.value)
    assert volume_names(pool) == before


def test_many_disks_from_one_image_leave_one_image(
    pool: libvirt.virStoragePool, ubuntu: ImageVolume
) -> None:
    for name in ("a", "b", "c"):
        ensure_disk_volume(pool, disk(name), 4 * MiB, ubuntu)

    images = {name for name in volume_names(pool) if name.startswith("img-")}
    assert images == {ubuntu.name}
    assert {"vd-default-a.qcow2", "vd-default-b.qcow2", "vd-default-c.qcow2"} <= volume_names(pool)


def test_disks_made_by_many_threads_at_once_all_appear(
    pool: libvirt.virStoragePool, ubuntu: ImageVolume
) -> None:
    failures: list[BaseException] = []
    start = threading.Barrier(16)

    def make(index: int) -> None:
        start.wait()
        try:
            image_or_none = ubuntu if index % 2 else None
            ensure_disk_volume(pool, disk(f"d{index}"), 4 * MiB, image_or_none)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=make, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert {f"vd-default-d{index}.qcow2" for index in range(16)} <= volume_names(pool)


def test_a_stopped_pool_is_named_and_nothing_is_made(pool: libvirt.virStoragePool) -> None:
    pool.destroy()

    with pytest.raises(PoolUnavailable, match=f"{POOL}.*pool-start"):
        ensure_disk_volume(pool, disk("data"), MiB)
