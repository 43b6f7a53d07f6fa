"""The storage library on a real libvirtd: what the test driver cannot do.

Uploads into volumes, copies that carry an image's content, growing a volume
offline and under a running QEMU (tests/libvirt/storage has the rest on the test driver).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from reconciler.libvirt.storage import (
    ShrinkRefused,
    VolumeInUse,
    delete_disk_volume,
    ensure_disk_volume,
    ensure_image_volume,
    find_image_volume,
    resize_disk,
)
from reconciler.libvirt.storage import images as images_module
from reconciler.libvirt.storage.pools import create_volume
from reconciler.model.names import ImageFormat, image_volume_stem
from tests.libvirt.storage.conftest import MiB, disk, image, make_iso, make_qcow2, make_raw

from .lab import LabPool, remove_domains

pytestmark = pytest.mark.e2e


@pytest.fixture
def pool(system_conn: libvirt.virConnect, e2e_pool: LabPool) -> libvirt.virStoragePool:
    return system_conn.storagePoolLookupByName(e2e_pool.name)


def _names(pool: libvirt.virStoragePool) -> set[str]:
    pool.refresh(0)
    return {volume.name() for volume in pool.listAllVolumes(0)}


def _same_content(first: str | Path, second: str | Path) -> bool:
    """What a guest reads is the same in both (qemu-img compare; a longer one reads zeros)."""
    return subprocess.run(["qemu-img", "compare", str(first), str(second)]).returncode == 0


def _virtual_size(path: str) -> int:
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", path],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(json.loads(info.stdout)["virtual-size"])


def test_a_qcow2_image_is_uploaded_once_and_every_disk_holds_its_content(
    pool: libvirt.virStoragePool, tmp_path: Path
) -> None:
    source = make_qcow2(tmp_path / "ubuntu.qcow2", virtual_size=3 * MiB)
    uploads: list[tuple[int, int]] = []

    first = ensure_image_volume(
        pool,
        image("ubuntu"),
        source,
        directories=[str(tmp_path)],
        progress=lambda *p: uploads.append(p),
    )
    uploaded = list(uploads)
    key = pool.storageVolLookupByName(first.name).key()
    again = ensure_image_volume(
        pool,
        image("ubuntu"),
        source,
        directories=[str(tmp_path)],
        progress=lambda *p: uploads.append(p),
    )
    bigger = ensure_disk_volume(pool, disk("big"), 8 * MiB, again)
    same = ensure_disk_volume(pool, disk("same"), None, again)

    size = source.stat().st_size
    assert uploaded and uploaded[-1] == (size, size)
    assert uploads == uploaded  # the second call uploaded nothing
    assert again == first and pool.storageVolLookupByName(again.name).key() == key
    assert (first.format, first.capacity_bytes) == (ImageFormat.QCOW2, 3 * MiB)
    assert (bigger.capacity_bytes, same.capacity_bytes) == (8 * MiB, 3 * MiB)
    assert _virtual_size(bigger.path) == 8 * MiB
    assert _same_content(source, bigger.path) and _same_content(source, same.path)
    assert f"{image_volume_stem(image('ubuntu'), str(source))}.importing" not in _names(pool)


def test_raw_and_iso_images_are_kept_byte_for_byte(
    pool: libvirt.virStoragePool, tmp_path: Path
) -> None:
    raw = make_raw(tmp_path / "firmware.bin", 2 * MiB)
    iso = make_iso(tmp_path / "installer.img")

    raw_image = ensure_image_volume(
        pool, image("firmware"), f"file://{raw}", directories=[str(tmp_path)]
    )
    iso_image = ensure_image_volume(pool, image("installer"), iso, directories=[str(tmp_path)])
    from_iso = ensure_disk_volume(pool, disk("from-iso"), None, iso_image)

    assert (raw_image.format, raw_image.cdrom) == (ImageFormat.RAW, False)
    assert (iso_image.format, iso_image.cdrom) == (ImageFormat.ISO, True)
    assert iso_image.name.endswith(".iso")
    assert Path(raw_image.path).read_bytes() == raw.read_bytes()
    assert Path(iso_image.path).read_bytes() == iso.read_bytes()
    assert _same_content(iso, from_iso.path)  # a disk made from an ISO holds its bytes


class _Cancelled(Exception):
    pass


def test_a_cancelled_import_leaves_nothing_and_the_next_one_completes(
    pool: libvirt.virStoragePool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images_module, "UPLOAD_CHUNK_BYTES", 64 * 1024)
    source = make_raw(tmp_path / "data.raw", MiB)
    before = _names(pool)

    def cancel(done: int, total: int) -> None:
        raise _Cancelled(f"stopped at {done} of {total}")

    with pytest.raises(_Cancelled):
        ensure_image_volume(
            pool, image("cancelled"), source, directories=[str(tmp_path)], progress=cancel
        )
    left = _names(pool) - before
    imported = ensure_image_volume(pool, image("cancelled"), source, directories=[str(tmp_path)])

    assert left == set()
    assert Path(imported.path).read_bytes() == source.read_bytes()


def test_an_image_being_imported_is_not_reported_and_asking_does_not_wait(
    pool: libvirt.virStoragePool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images_module, "UPLOAD_CHUNK_BYTES", 64 * 1024)
    source = make_raw(tmp_path / "data.raw", MiB)
    answers: list[object] = []

    def ask_from_another_thread(done: int, _total: int) -> None:
        if done != 64 * 1024:
            return
        asker = threading.Thread(
            target=lambda: answers.append(find_image_volume(pool, image("busy"), source))
        )
        asker.start()
        asker.join(timeout=5)
        answers.append("waited" if asker.is_alive() else "answered")

    imported = ensure_image_volume(
        pool, image("busy"), source, directories=[str(tmp_path)], progress=ask_from_another_thread
    )

    assert answers == [None, "answered"]
    assert find_image_volume(pool, image("busy"), source) == imported


def test_an_import_cut_off_by_a_crash_is_done_again(
    pool: libvirt.virStoragePool, tmp_path: Path
) -> None:
    source = make_raw(tmp_path / "data.raw", MiB)
    stem = image_volume_stem(image("crashed"), str(source))
    # What a daemon killed mid-upload leaves: the marker and a volume of zeros.
    create_volume(pool, f"{stem}.importing", 0, "raw")
    create_volume(pool, f"{stem}.raw", MiB, "raw")

    imported = ensure_image_volume(pool, image("crashed"), source, directories=[str(tmp_path)])

    assert Path(imported.path).read_bytes() == source.read_bytes()
    assert f"{stem}.importing" not in _names(pool)


def test_a_stopped_disk_grows_and_never_shrinks(
    system_conn: libvirt.virConnect, pool: libvirt.virStoragePool
) -> None:
    made = ensure_disk_volume(pool, disk("grows"), 1_000_000)  # QEMU rounds up to sectors

    same = resize_disk(system_conn, pool, made.name, 1_000_000)
    grown = resize_disk(system_conn, pool, made.name, 4 * MiB)
    with pytest.raises(ShrinkRefused, match="cannot shrink from 4Mi to 2Mi"):
        resize_disk(system_conn, pool, made.name, 2 * MiB)

    assert (made.capacity_bytes, same, grown) == (1_000_448, 1_000_448, 4 * MiB)
    assert _virtual_size(made.path) == 4 * MiB


@pytest.fixture
def running_with_disk(
    system_conn: libvirt.virConnect, pool: libvirt.virStoragePool, e2e_namespace: str
) -> Iterator[tuple[libvirt.virDomain, str]]:
    """A running domain (it idles in the BIOS) with a 2 MiB disk volume on vda."""
    made = ensure_disk_volume(pool, disk("live"), 2 * MiB)
    name = f"grow.{e2e_namespace}"
    domain = system_conn.defineXML(
        f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>
      <source pool='{pool.name()}' volume='{made.name}'/><target dev='vda' bus='virtio'/></disk>
    <memballoon model='none'/>
  </devices></domain>"""
    )
    domain.create()
    yield domain, made.name
    remove_domains(system_conn, lambda candidate: candidate == name)


def test_a_disk_of_a_running_domain_grows_live_and_is_not_deleted(
    system_conn: libvirt.virConnect,
    pool: libvirt.virStoragePool,
    running_with_disk: tuple[libvirt.virDomain, str],
) -> None:
    domain, volume = running_with_disk

    grown = resize_disk(system_conn, pool, volume, 6 * MiB)  # the domain is found by its use

    assert grown == 6 * MiB
    assert domain.blockInfo("vda")[0] == 6 * MiB  # QEMU itself sees the new size
    with pytest.raises(VolumeInUse, match=domain.name()):
        delete_disk_volume(pool, disk("live"), protected=False)


def test_threads_wanting_one_image_share_one_upload(
    pool: libvirt.virStoragePool, tmp_path: Path
) -> None:
    source = make_qcow2(tmp_path / "shared.qcow2")
    finished_uploads: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(6)

    def progress(done: int, total: int) -> None:
        if done == total:
            finished_uploads.append(total)

    def boot_disk(index: int) -> None:
        start.wait()
        try:
            made = ensure_image_volume(
                pool, image("shared"), source, directories=[str(tmp_path)], progress=progress
            )
            ensure_disk_volume(pool, disk(f"shared-{index}"), 4 * MiB, made)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=boot_disk, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(finished_uploads) == 1
    paths = [pool.storageVolLookupByName(f"vd-default-shared-{i}.qcow2").path() for i in range(6)]
    assert all(_same_content(source, path) for path in paths)
