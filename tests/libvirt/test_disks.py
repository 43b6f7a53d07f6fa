"""Disks and images through whole passes on libvirt's test driver.

The test driver keeps no volume data and cannot upload: an image's volume there
stands for its file, as the seeds do (libvirt/disk_steps.py). tests/e2e/test_disks.py
runs the same on a real libvirtd, where the data is real.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.engine.reconcile import reconcile_once
from reconciler.libvirt.apply import Applier
from reconciler.libvirt.facts import parse_definition
from reconciler.libvirt.observe import Observer
from reconciler.loader import load_directory
from reconciler.model.actions import Action, DeleteDiskVolume, EnsureImageVolume
from reconciler.reports.documents import read_document
from reconciler.reports.pass_inputs import read_plan_context
from tests.hosts import Host, vm_yaml

IMAGE = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: ClusterVirtualImage
metadata:
  name: ubuntu
spec:
  dataSource:
    type: HTTP
    http:
      url: file://{path}
"""

FROM_IMAGE = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: {name}-root
spec:
  persistentVolumeClaim:
    size: 1Gi
  dataSource:
    type: ObjectRef
    objectRef:
      kind: ClusterVirtualImage
      name: ubuntu
"""

PROTECT = """
metadata:
  annotations:
    virtualization.deckhouse.io/protect-volume: "true"
  name: linux-vm-root"""


def volumes(host: Host) -> set[str]:
    pool = host.connection.storagePoolLookupByName(host.storage_pool)
    pool.refresh(0)
    return {volume.name() for volume in pool.listAllVolumes(0)}


def vm_from_image(name: str) -> str:
    """A VM whose root disk is a copy of the image `ubuntu`."""
    return vm_yaml(name=name).split("---")[0] + "---" + FROM_IMAGE.format(name=name)


def test_an_image_is_imported_once_for_the_disks_of_many_vms(host: Host, tmp_path: Path) -> None:
    source = tmp_path / "ubuntu.raw"
    source.write_bytes(b"\1" * 4096)
    host.write("image.yaml", IMAGE.format(path=source))
    host.write("a.yaml", vm_from_image("a"))
    host.write("b.yaml", vm_from_image("b"))

    first, made = host.reconcile()
    again, mutations = host.reconcile()

    assert first.errors == []
    assert made == 1 + 2 + 2 + 2, "one image, two disks, two definitions, two starts"
    images = {name for name in volumes(host) if name.startswith("cvi-ubuntu-")}
    assert len(images) == 1 and next(iter(images)).endswith(".raw")
    assert {"vd-default-a-root.qcow2", "vd-default-b-root.qcow2"} <= volumes(host)
    assert [a.shared for a in first.plan.actions if isinstance(a, EnsureImageVolume)] == [
        False,
        True,
    ]
    assert (again.plan.actions, mutations) == ([], 0)


def test_an_unusable_image_file_leaves_the_vm_pending_with_a_message(
    host: Host, tmp_path: Path
) -> None:
    source = tmp_path / "ubuntu.qcow2"
    source.write_bytes(b"")
    host.write("image.yaml", IMAGE.format(path=source))
    host.write("a.yaml", vm_from_image("a"))

    result, mutations = host.reconcile()

    status = result.statuses_plan.statuses[next(iter(result.statuses_plan.statuses))]
    condition = status.get("BlockDevicesReady")
    assert status.phase == "Pending"
    assert condition is not None and not condition.status
    assert condition.message == (
        f"VirtualDisk a-root is made from ClusterVirtualImage ubuntu: {source}:"
        " the image file is empty"
    )
    assert mutations == 0
    assert host.connection.listAllDomains(0)[0].name() == "test", "nothing was defined"


class ApplierEmptyingTheImageFile(Applier):
    """The applier, with the image's file emptied just before the image is imported: a
    file changed between planning and applying."""

    def __init__(self, host: Host, image_file: Path) -> None:
        super().__init__(host.connection, poll_seconds=0.05)
        self.image_file = image_file

    def run(self, action: Action) -> None:
        if isinstance(action, EnsureImageVolume):
            self.image_file.write_bytes(b"")
        super().run(action)


def test_an_image_file_emptied_before_its_import_leaves_the_vm_waiting_with_a_message(
    host: Host, tmp_path: Path
) -> None:
    source = tmp_path / "ubuntu.raw"
    source.write_bytes(b"\0" * 512)
    host.write("image.yaml", IMAGE.format(path=source))
    host.write("a.yaml", vm_from_image("a"))
    context = read_plan_context(
        load_directory(host.repo), host.context, "rev1", disk_reports_root=host.repo / "status"
    )

    result = reconcile_once(
        context, Observer(host.connection), ApplierEmptyingTheImageFile(host, source)
    )

    failed, *skipped = result.errors
    assert isinstance(failed.action, EnsureImageVolume)
    assert [str(o.error) for o in skipped] == ["skipped after an earlier failure"] * 3
    status = next(iter(result.statuses_plan.statuses.values()))
    condition = status.get("BlockDevicesReady")
    assert condition is not None and not condition.status
    assert condition.reason == "BlockDevicesNotReady"
    assert condition.message == str(failed.error)
    assert condition.message.endswith(f"({source}): the image file is empty")
    assert host.connection.listAllDomains(0)[0].name() == "test", "nothing was defined"


def _running_vm_with_its_disk(host: Host, vm: str | None = None) -> None:
    host.write("vm.yaml", vm or vm_yaml())
    result, _ = host.reconcile()
    assert result.errors == []
    host.write_statuses(result)
    assert "vd-default-linux-vm-root.qcow2" in volumes(host)


def test_the_vm_report_lists_the_disk_the_running_domain_has(host: Host) -> None:
    _running_vm_with_its_disk(host)
    report = read_document(host.repo / "status/virtualmachines/default/linux-vm.yaml")
    [root] = report["status"]["blockDeviceRefs"]
    assert root["kind"] == "VirtualDisk" and root["name"] == "linux-vm-root"
    assert (root["size"], root["attached"], root["bootOrder"]) == ("1Gi", True, 1)
    assert root["target"] in {d[0] for d in host_disks(host)}


def host_disks(host: Host) -> tuple[tuple[str, str, str], ...]:
    return parse_definition(host.domain().XMLDesc(0)).facts.disks


def test_deleting_a_vm_keeps_its_disk(host: Host) -> None:
    _running_vm_with_its_disk(host)
    disk_only = vm_yaml().split("---")[1]

    host.write("vm.yaml", disk_only)
    result, _ = host.reconcile()

    assert result.errors == []
    assert "linux-vm.default" not in {d.name() for d in host.connection.listAllDomains(0)}
    assert "vd-default-linux-vm-root.qcow2" in volumes(host)


def test_deleting_a_disk_manifest_deletes_its_volume(host: Host) -> None:
    _running_vm_with_its_disk(host)

    host.remove("vm.yaml")  # the VM and its disk
    result, _ = host.reconcile()

    assert result.errors == []
    assert any(isinstance(a, DeleteDiskVolume) for a in result.plan.actions)
    assert "vd-default-linux-vm-root.qcow2" not in volumes(host)
    host.write_statuses(result)
    assert not (host.repo / "status" / "virtualdisks" / "default" / "linux-vm-root.yaml").exists()


def test_a_protected_disk_outlives_its_manifest(host: Host) -> None:
    protected = vm_yaml().replace("\nmetadata:\n  name: linux-vm-root", PROTECT)
    _running_vm_with_its_disk(host, protected)

    host.remove("vm.yaml")
    result, _ = host.reconcile()

    assert result.errors == []
    assert "vd-default-linux-vm-root.qcow2" in volumes(host)
    assert any("it was protected" in note for note in result.plan.notes)


def test_a_revision_with_an_unreadable_file_deletes_no_disk(host: Host) -> None:
    _running_vm_with_its_disk(host)
    host.write("vm.yaml", vm_yaml().split("---")[1])  # the VM goes first, its disk stays
    result, _ = host.reconcile()
    host.write_statuses(result)

    host.remove("vm.yaml")
    host.write("broken.yaml", "kind: [unclosed\n")
    result, mutations = host.reconcile()

    assert mutations == 0
    assert "vd-default-linux-vm-root.qcow2" in volumes(host)
    assert any("none is deleted" in note for note in result.plan.notes)
    # ... and counted, for the warning the daemon and `apply` give (issue 12, row 6)
    assert result.plan.held_back == [
        "delete volume default-pool/vd-default-linux-vm-root.qcow2"
        " (its VirtualDisk manifest was deleted)"
    ]


FOREIGN = """<domain type='test'>
  <name>someone-elses</name>
  <memory unit='MiB'>64</memory>
  <os><type>hvm</type></os>
  <devices>
    <disk type='volume' device='disk'>
      <source pool='{pool}' volume='{volume}'/>
      <target dev='vda'/>
    </disk>
  </devices>
</domain>"""


def test_an_image_volume_goes_with_its_image_unless_a_domain_still_has_it(
    host: Host, tmp_path: Path
) -> None:
    source = tmp_path / "ubuntu.raw"
    source.write_bytes(b"\1" * 4096)
    host.write("image.yaml", IMAGE.format(path=source))
    host.write("a.yaml", vm_from_image("a"))
    assert host.reconcile()[0].errors == []
    [image] = [name for name in volumes(host) if name.startswith("cvi-ubuntu-")]
    # Someone else's domain reads the image volume; the disk made from it is a copy.
    foreign = host.connection.defineXML(FOREIGN.format(pool=host.storage_pool, volume=image))

    host.remove("image.yaml")
    # The disk no longer names the image (its dataSource mattered only until it was made).
    host.write("a.yaml", vm_yaml(name="a"))
    kept, _ = host.reconcile()

    assert kept.errors == []  # kept for that domain: nothing failed
    assert image in volumes(host)
    assert "vd-default-a-root.qcow2" in volumes(host)

    foreign.undefine()
    gone, _ = host.reconcile()

    assert gone.errors == []
    assert image not in volumes(host)
    assert "vd-default-a-root.qcow2" in volumes(host)
