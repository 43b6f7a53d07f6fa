"""A private test-driver host with a storage pool, and real image files to import.

libvirt's test driver keeps `test:///default` alive for the whole process (a
second connection sees the first one's volumes), so each test opens its own
host file instead, which gives every connection a fresh host: the pool
`storage-pool` with one disk of a running domain (`busy.default`, referring to
its volume by pool and name, as the engine renders disks) and one volume that is
not the project's.

The image helpers are plain functions, so the end-to-end tests can make the same
files for a real libvirtd.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pycdlib
import pytest

from reconciler.api import ObjectId
from reconciler.libvirt.connection import open_connection

POOL = "storage-pool"
BUSY_DOMAIN = "busy.default"
BUSY_VOLUME = "vd-default-busy.qcow2"
FOREIGN_VOLUME = "operator-notes.raw"
MiB = 1024 * 1024

HOST_XML = f"""<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>
    <active>2</active><mhz>2400</mhz><model>i686</model></cpu>
  <memory>8388608</memory>
  <domain type="test">
    <name>{BUSY_DOMAIN}</name>
    <memory>524288</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <devices>
      <disk type="volume" device="disk">
        <source pool="{POOL}" volume="{BUSY_VOLUME}"/>
        <target dev="sda" bus="scsi"/>
      </disk>
    </devices>
  </domain>
  <pool type="dir">
    <name>{POOL}</name>
    <target><path>/{POOL}</path></target>
    <volume>
      <name>{BUSY_VOLUME}</name>
      <capacity unit="bytes">{2 * MiB}</capacity>
      <target><format type="qcow2"/></target>
    </volume>
    <volume><name>{FOREIGN_VOLUME}</name><capacity unit="bytes">{MiB}</capacity></volume>
  </pool>
</node>
"""


def disk(name: str, namespace: str = "default") -> ObjectId:
    return ObjectId("VirtualDisk", namespace, name)


def image(name: str, namespace: str = "default") -> ObjectId:
    return ObjectId("VirtualImage", namespace, name)


def cluster_image(name: str) -> ObjectId:
    return ObjectId("ClusterVirtualImage", "", name)


def pattern(size: int) -> bytes:
    """Bytes that differ from sector to sector, so a misplaced copy shows."""
    block = bytes(range(256)) * 2
    return b"".join(
        index.to_bytes(8, "big") + block[8:] for index in range(size // len(block))
    ) + bytes(size % len(block))


def make_raw(path: Path, size: int = MiB) -> Path:
    path.write_bytes(pattern(size))
    return path


def make_qcow2(path: Path, virtual_size: int = 3 * MiB, data: int = 256 * 1024) -> Path:
    """A qcow2 of `virtual_size` whose first `data` bytes hold the pattern (qemu-img)."""
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        pytest.skip("qemu-img is not installed (apt-get install qemu-utils)")
    raw = path.with_suffix(".raw-source")
    raw.write_bytes(pattern(data) + bytes(virtual_size - data))
    subprocess.run(
        [qemu_img, "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)],
        check=True,
        capture_output=True,
    )
    raw.unlink()
    return path


def make_iso(path: Path) -> Path:
    iso = pycdlib.PyCdlib()
    iso.new(joliet=3, vol_ident="VMRTEST")
    content = b"hello from the image\n"
    iso.add_fp(io.BytesIO(content), len(content), "/HELLO.TXT;1", joliet_path="/hello.txt")
    iso.write(str(path))
    iso.close()
    return path


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[libvirt.virConnect]:
    host = tmp_path / "host.xml"
    host.write_text(HOST_XML, encoding="utf-8")
    connection = open_connection(f"test://{host}")
    yield connection
    connection.close()


@pytest.fixture
def pool(conn: libvirt.virConnect) -> libvirt.virStoragePool:
    return conn.storagePoolLookupByName(POOL)


def volume_names(pool: libvirt.virStoragePool) -> set[str]:
    return {volume.name() for volume in pool.listAllVolumes(0)}
