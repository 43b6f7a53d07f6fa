"""Disks on a real libvirtd with QEMU under TCG, seen from inside the guest.

One VM for the whole walk (each start costs seconds under TCG): its data disk is
a copy of an image file, a VirtualMachineBlockDeviceAttachment hot-plugs a blank
disk that the guest then sees and loses again, and a new boot order waits for a
restart and is the domain's after it.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import libvirt
import pytest
from ruamel.yaml import YAML

from reconciler.libvirt.facts import parse_definition
from tests.hosts import Host, vm_yaml

from .lab import TestGuest, agent_command, wait_for_agent, wait_until

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
IMAGE_MARK = b"vm-reconciler test image\n"

DISKS = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: ClusterVirtualImage
metadata:
  name: {image}
spec:
  dataSource:
    type: HTTP
    http:
      url: file://{path}
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: data
  namespace: {namespace}
spec:
  persistentVolumeClaim:
    size: 64Mi
  dataSource:
    type: ObjectRef
    objectRef:
      kind: ClusterVirtualImage
      name: {image}
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: blank
  namespace: {namespace}
spec:
  persistentVolumeClaim:
    size: 32Mi
"""

ATTACHMENT = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineBlockDeviceAttachment
metadata:
  name: attach-blank
  namespace: {namespace}
spec:
  virtualMachineName: linux-vm
  blockDeviceRef:
    kind: VirtualDisk
    name: blank
"""


class Guest:
    """The VM under test: its manifests, its domain and what its guest sees."""

    def __init__(self, host: Host, namespace: str, guest: TestGuest) -> None:
        self.host = host
        self.namespace = namespace
        self.guest = guest
        self.name = f"linux-vm.{namespace}"

    def write_vm(self, order: tuple[str, str], approval: str = "Manual") -> None:
        vm, root = vm_yaml(
            namespace=self.namespace,
            kernel_boot=self.guest.kernel_boot(),
            grace=30,
            approval=approval,
            run_policy="AlwaysOn",
        ).split("---")
        refs = "".join(f"    - kind: VirtualDisk\n      name: {name}\n" for name in order)
        vm = vm.split("  blockDeviceRefs:")[0] + "  blockDeviceRefs:\n" + refs
        self.host.write("vm.yaml", vm + "---" + root)

    @property
    def domain(self) -> libvirt.virDomain:
        return self.host.connection.lookupByName(self.name)

    def apply(self) -> int:
        result, mutations = self.host.reconcile()
        assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]
        self.host.write_statuses(result)
        self.last = result
        return mutations

    def report(self, plural: str, name: str) -> dict[str, Any]:
        path = self.host.repo / "status" / plural / self.namespace / f"{name}.yaml"
        return YAML(typ="safe").load(path.read_text(encoding="utf-8"))["status"]  # type: ignore[no-any-return]

    def block_devices(self) -> dict[str, int]:
        """The guest's whole disks and their sizes in KiB, as /proc/partitions lists them."""
        devices = {}
        for line in self.read("/proc/partitions").decode().splitlines()[2:]:
            _major, _minor, blocks, name = line.split()
            if not name[-1].isdigit():
                devices[name] = int(blocks)
        return devices

    def read(self, path: str, count: int = 65536) -> bytes:
        handle = agent_command(self.domain, "guest-file-open", path=path, mode="r")
        try:
            chunks = []
            while True:
                part = agent_command(self.domain, "guest-file-read", handle=handle, count=count)
                chunks.append(base64.b64decode(part["buf-b64"]))
                if part.get("eof") or len(b"".join(chunks)) >= count:
                    return b"".join(chunks)
        finally:
            agent_command(self.domain, "guest-file-close", handle=handle)

    def boot_order(self, flags: int = 0) -> list[str]:
        """Volumes of the definition's disks by their boot order."""
        root = ElementTree.fromstring(self.domain.XMLDesc(flags))
        ordered = []
        for disk in root.iterfind("devices/disk"):
            boot = disk.find("boot")
            source = disk.find("source")
            if boot is not None and source is not None:
                ordered.append((int(boot.get("order", "0")), source.get("volume", "")))
        return [volume for _, volume in sorted(ordered)]

    def attached_aliases(self, flags: int = 0) -> list[str]:
        attached = parse_definition(self.domain.XMLDesc(flags)).facts.attached
        return [alias for alias, _target, _source in attached]

    def wait_for_disks(self, count: int) -> dict[str, int]:
        def seen() -> dict[str, int] | None:
            devices = self.block_devices()
            return devices if len(devices) == count else None

        return wait_until(f"{count} disks in the guest", seen, timeout=30)


def test_disks_of_a_running_guest(
    host: Host,
    e2e_namespace: str,
    guest: TestGuest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="reconciler.libvirt.apply")
    vm = Guest(host, e2e_namespace, guest)
    root, data = f"vd-{e2e_namespace}-linux-vm-root.qcow2", f"vd-{e2e_namespace}-data.qcow2"
    image_file = tmp_path / "image.raw"
    image_file.write_bytes(IMAGE_MARK + bytes(MiB - len(IMAGE_MARK)))
    image_name = f"{e2e_namespace}-base"
    host.write(
        "disks.yaml", DISKS.format(image=image_name, path=image_file, namespace=e2e_namespace)
    )

    # The VM with its blank root disk and a data disk copied from an image file, in that order.
    vm.write_vm(("linux-vm-root", "data"))
    vm.apply()
    wait_for_agent(vm.domain)
    disks = vm.block_devices()
    assert sorted(disks.values()) == [64 * 1024, 1024 * 1024], "root 1Gi, data 64Mi"
    by_size = {size: name for name, size in disks.items()}
    assert vm.read(f"/dev/{by_size[64 * 1024]}", len(IMAGE_MARK)) == IMAGE_MARK
    imported = [r.getMessage() for r in caplog.records if r.getMessage().startswith("importing")]
    assert imported[-1] == f"importing ClusterVirtualImage {image_name}: 100% (1 of 1 MiB)"
    assert vm.boot_order() == [root, data]

    # An attachment hot-plugs the blank disk: the running guest sees a new block device.
    host.write("attachment.yaml", ATTACHMENT.format(namespace=e2e_namespace))
    vm.apply()
    grown = vm.wait_for_disks(3)
    assert sorted(grown.values()) == [32 * 1024, 64 * 1024, 1024 * 1024]
    assert vm.report("virtualmachineblockdeviceattachments", "attach-blank")["phase"] == "Attached"
    blank = vm.report("virtualdisks", "blank")
    assert blank["attachedToVirtualMachines"] == [{"name": "linux-vm", "mounted": True}]
    assert vm.attached_aliases() == ["ua-vmbda-attach-blank"]
    assert vm.attached_aliases(libvirt.VIR_DOMAIN_XML_INACTIVE) == ["ua-vmbda-attach-blank"]
    # The hot-plugged disk is expected, not put back: the next pass does nothing.
    assert vm.apply() == 0

    # Deleting the attachment unplugs the disk live; the disk itself stays.
    host.remove("attachment.yaml")
    vm.apply()
    shrunk = vm.wait_for_disks(2)
    assert sorted(shrunk.values()) == [64 * 1024, 1024 * 1024]
    assert vm.attached_aliases() == []
    assert vm.attached_aliases(libvirt.VIR_DOMAIN_XML_INACTIVE) == []
    pool = host.connection.storagePoolLookupByName(host.storage_pool)
    pool.refresh(0)
    assert f"vd-{e2e_namespace}-blank.qcow2" in pool.listVolumes()
    assert vm.apply() == 0

    # A new boot order waits for a restart: listed, written for the next boot only.
    started = vm.domain.ID()
    vm.write_vm(("data", "linux-vm-root"))
    vm.apply()
    pending = vm.report("virtualmachines", "linux-vm")["restartAwaitingChanges"]
    assert [(c["path"], c["operation"]) for c in pending] == [
        ("blockDeviceRefs.0", "replace"),
        ("blockDeviceRefs.1", "replace"),
    ]
    assert vm.domain.ID() == started
    assert vm.boot_order() == [root, data]
    assert vm.boot_order(libvirt.VIR_DOMAIN_XML_INACTIVE) == [data, root]

    # Approved: the engine restarts the VM, which then boots in the new order.
    vm.write_vm(("data", "linux-vm-root"), approval="Automatic")
    vm.apply()
    assert vm.domain.ID() != started
    assert vm.boot_order() == [data, root]
    assert vm.report("virtualmachines", "linux-vm").get("restartAwaitingChanges", []) == []
