"""Which volumes are the project's, and what an image file is, read from the file itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.libvirt.storage import ImageSourceInvalid, ImageSourceMissing, inspect_source
from reconciler.model.names import (
    ImageFormat,
    disk_volume_name,
    image_volume_name,
    image_volume_stem,
    is_project_volume,
)
from tests.libvirt.storage.conftest import (
    MiB,
    cluster_image,
    disk,
    image,
    make_iso,
    make_qcow2,
    make_raw,
)


def test_a_disk_volume_has_the_name_the_engine_renders_into_the_domain() -> None:
    name = disk_volume_name(disk("data", "prod"))

    assert name == "vd-prod-data.qcow2"
    assert is_project_volume(name)


def test_image_volume_names_tell_kind_namespace_name_and_format() -> None:
    namespaced = image_volume_name(image("ubuntu", "prod"), "/srv/u.qcow2", ImageFormat.QCOW2)
    cluster = image_volume_name(cluster_image("installer"), "/srv/i.iso", ImageFormat.ISO)

    assert namespaced.startswith("img-prod-ubuntu-") and namespaced.endswith(".qcow2")
    assert cluster.startswith("cvi-installer-") and cluster.endswith(".iso")
    assert is_project_volume(namespaced) and is_project_volume(cluster)


def test_pointing_an_image_at_another_file_gives_a_new_volume() -> None:
    before = image_volume_stem(image("ubuntu"), "/srv/ubuntu-22.04.qcow2")
    after = image_volume_stem(image("ubuntu"), "/srv/ubuntu-24.04.qcow2")

    assert before != after


def test_the_same_image_in_two_namespaces_gets_two_volumes() -> None:
    assert image_volume_stem(image("u", "a"), "/srv/u.qcow2") != image_volume_stem(
        image("u", "b"), "/srv/u.qcow2"
    )


@pytest.mark.parametrize(
    "name",
    [
        "operator-notes.raw",
        "ubuntu.qcow2",
        "vd-default-data.raw",  # disks are always qcow2
        "img-default-ubuntu.qcow2",  # no digest: made by hand
        "cvi-installer-1234abcd.vmdk",
        "VD-default-data.qcow2",
    ],
)
def test_volumes_the_project_did_not_name_are_not_its_own(name: str) -> None:
    assert not is_project_volume(name)


def test_a_disk_id_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="not a VirtualDisk"):
        disk_volume_name(image("ubuntu"))


def test_format_comes_from_the_content_not_the_file_name(tmp_path: Path) -> None:
    qcow2 = make_qcow2(tmp_path / "disk.img")
    iso = make_iso(tmp_path / "installer.bin")
    raw = make_raw(tmp_path / "looks-like.qcow2")

    assert inspect_source(str(qcow2), [str(tmp_path)]).format is ImageFormat.QCOW2
    assert inspect_source(str(iso), [str(tmp_path)]).format is ImageFormat.ISO
    assert inspect_source(str(raw), [str(tmp_path)]).format is ImageFormat.RAW


def test_a_qcow2_reports_the_size_a_guest_sees(tmp_path: Path) -> None:
    source = inspect_source(
        str(make_qcow2(tmp_path / "u.qcow2", virtual_size=3 * MiB)), [str(tmp_path)]
    )

    assert source.virtual_bytes == 3 * MiB
    assert source.file_bytes < 3 * MiB


def test_a_qcow2_with_a_backing_file_is_refused(tmp_path: Path) -> None:
    base = make_qcow2(tmp_path / "base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    qemu_img = shutil.which("qemu-img")
    assert qemu_img is not None  # make_qcow2 skipped otherwise
    subprocess.run(
        [qemu_img, "create", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
        check=True,
        capture_output=True,
    )

    with pytest.raises(ImageSourceInvalid, match="backing file") as raised:
        inspect_source(str(overlay), [str(tmp_path)])
    assert str(overlay) in str(raised.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.qcow2"

    with pytest.raises(ImageSourceMissing) as raised:
        inspect_source(str(missing), [str(tmp_path)])

    assert str(missing) in str(raised.value)
    assert raised.value.path == str(missing)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.raw"
    empty.touch()

    with pytest.raises(ImageSourceInvalid, match="empty"):
        inspect_source(str(empty), [str(tmp_path)])


def test_the_volume_of_a_disk_with_the_longest_name_fits_a_file_name() -> None:
    name = disk_volume_name(disk("d" * 253, "n" * 63))

    assert len(name.encode()) <= 255 and name.endswith(".qcow2")
    assert name.startswith("vd-" + "n" * 63 + "-ddd")
    assert is_project_volume(name)


def test_an_image_with_the_longest_name_fits_a_file_name_while_importing() -> None:
    stem = image_volume_stem(image("i" * 253, "n" * 63), "/srv/u.qcow2")

    assert len((stem + ".importing").encode()) <= 255
    assert is_project_volume(stem + ".importing") and is_project_volume(stem + ".qcow2")


def test_the_volumes_of_two_long_names_alike_but_for_the_end_differ() -> None:
    assert disk_volume_name(disk("d" * 252 + "a", "n")) != disk_volume_name(
        disk("d" * 252 + "b", "n")
    )
