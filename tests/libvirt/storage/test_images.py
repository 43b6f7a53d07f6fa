"""Importing images on the test driver.

The test driver cannot upload into a volume (virStorageVolUpload is not
supported), so here an import can only fail, and "imported earlier" is a volume
the test creates under the image's name. tests/e2e/test_storage.py imports for
real on libvirtd and proves a second import uploads nothing.
"""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest

from reconciler.libvirt.storage import (
    ImageImportFailed,
    ImageSourceInvalid,
    ImageSourceMissing,
    PoolUnavailable,
    ensure_image_volume,
    find_image_volume,
)
from reconciler.libvirt.storage.pools import create_volume
from reconciler.model.names import ImageFormat, image_volume_name, image_volume_stem
from tests.libvirt.storage.conftest import POOL, MiB, image, make_qcow2, make_raw, volume_names


def _imported_earlier(pool: libvirt.virStoragePool, name: str, capacity: int) -> str:
    """What an earlier successful import leaves: the image's volume, no marker."""
    return str(create_volume(pool, name, capacity, name.rpartition(".")[2]).key())


def test_an_imported_image_is_neither_read_nor_uploaded_again(
    pool: libvirt.virStoragePool, tmp_path: Path
) -> None:
    source = make_qcow2(tmp_path / "ubuntu.qcow2")
    name = image_volume_name(image("ubuntu"), str(source), ImageFormat.QCOW2)
    key = _imported_earlier(pool, name, 3 * MiB)
    source.unlink()  # the image outlives its file
    before = volume_names(pool)
    uploads: list[tuple[int, int]] = []

    found = ensure_image_volume(
        pool,
        image("ubuntu"),
        f"file://{source}",
        directories=[str(tmp_path)],
        progress=lambda *p: uploads.append(p),
    )

    assert (found.name, found.format, found.capacity_bytes) == (name, ImageFormat.QCOW2, 3 * MiB)
    assert pool.storageVolLookupByName(name).key() == key
    assert uploads == []
    assert volume_names(pool) == before
    assert not found.cdrom


def test_an_imported_iso_is_a_cdrom(pool: libvirt.virStoragePool) -> None:
    name = image_volume_name(image("installer"), "/srv/installer.iso", ImageFormat.ISO)
    _imported_earlier(pool, name, MiB)

    found = find_image_volume(pool, image("installer"), "/srv/installer.iso")

    assert found is not None and found.cdrom


def test_a_failed_import_names_pool_volume_and_file_and_leaves_nothing(
    pool: libvirt.virStoragePool, tmp_path: Path
) -> None:
    source = make_raw(tmp_path / "disk.raw")
    before = volume_names(pool)
    name = image_volume_name(image("disk"), str(source), ImageFormat.RAW)

    with pytest.raises(ImageImportFailed) as raised:
        ensure_image_volume(pool, image("disk"), source, directories=[str(tmp_path)])

    message = str(raised.value)
    assert POOL in message and name in message and str(source) in message
    assert "virStorageVolUpload" in message  # what the test driver lacks
    assert volume_names(pool) == before  # neither the volume nor its marker stays
    assert find_image_volume(pool, image("disk"), source) is None


def test_an_import_cut_off_by_a_crash_is_not_taken_for_an_image(
    pool: libvirt.virStoragePool, tmp_path: Path
) -> None:
    source = make_raw(tmp_path / "disk.raw")
    stem = image_volume_stem(image("disk"), str(source))
    before = volume_names(pool)
    # What a daemon killed mid-upload leaves: the marker and a partial volume.
    create_volume(pool, f"{stem}.importing", 0, "raw")
    create_volume(pool, f"{stem}.raw", MiB, "raw")

    assert find_image_volume(pool, image("disk"), source) is None
    with pytest.raises(ImageImportFailed):  # the test driver cannot upload the redo
        ensure_image_volume(pool, image("disk"), source, directories=[str(tmp_path)])
    assert volume_names(pool) == before  # the partial volume went first


def test_a_missing_source_file_names_the_pool_and_the_file(
    pool: libvirt.virStoragePool, tmp_path: Path
) -> None:
    missing = tmp_path / "gone.qcow2"

    with pytest.raises(ImageSourceMissing) as raised:
        ensure_image_volume(pool, image("gone"), f"file://{missing}", directories=[str(tmp_path)])

    assert str(missing) in str(raised.value)
    assert raised.value.pool == POOL
    assert str(raised.value.volume).startswith("img-default-gone-")


def test_an_image_by_http_is_refused_with_its_url(pool: libvirt.virStoragePool) -> None:
    with pytest.raises(ImageSourceInvalid, match=r"https://example.org/u\.qcow2"):
        ensure_image_volume(pool, image("u"), "https://example.org/u.qcow2", directories=[])


def test_a_stopped_pool_is_named(pool: libvirt.virStoragePool, tmp_path: Path) -> None:
    pool.destroy()

    with pytest.raises(PoolUnavailable, match=f"{POOL}.*not active"):
        ensure_image_volume(
            pool, image("u"), make_raw(tmp_path / "u.raw"), directories=[str(tmp_path)]
        )
