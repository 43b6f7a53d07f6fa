"""The largest sizes `validate` allows go through a pass on libvirt's test driver: the
bounds (api/quantity.py) are below what libvirt accepts, so an allowed size never
fails inside libvirt (issue 12, row 15)."""

from __future__ import annotations

from reconciler.api import ObjectId
from reconciler.api.quantity import MAX_DISK_BYTES, MAX_MEMORY_BYTES
from reconciler.model.names import disk_volume_name
from tests.hosts import Host, vm_yaml

OPEN_CLASS = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: generic
spec:
  cpu:
    type: Host
"""


def test_a_vm_with_4_pib_of_memory_and_a_1_pib_disk_is_defined(host: Host) -> None:
    host.write("class.yaml", OPEN_CLASS)
    host.write("vm.yaml", vm_yaml(memory="4Pi").replace("size: 1Gi", "size: 1Pi"))

    result, _ = host.reconcile()

    assert result.findings == [] and result.errors == []
    assert host.domain().maxMemory() * 1024 == MAX_MEMORY_BYTES
    pool = host.connection.storagePoolLookupByName(host.storage_pool)
    volume = pool.storageVolLookupByName(
        disk_volume_name(ObjectId("VirtualDisk", "default", "linux-vm-root"))
    )
    assert volume.info()[1] == MAX_DISK_BYTES
