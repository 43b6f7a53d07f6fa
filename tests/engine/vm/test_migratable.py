"""The VM's Migratable condition (issue 14): True for a VM whose disks a live migration
copies, False naming what cannot follow it to another host."""

from __future__ import annotations

from dataclasses import replace

from reconciler.api import ObjectId, VirtualMachine
from reconciler.engine.plan import Observation, PlanContext, plan
from reconciler.engine.vm.migratable import why_not_migratable
from reconciler.model.conditions import Condition, VMCondition
from reconciler.model.migration import StorageMode
from tests.engine.conftest import context_for, revision, vm_yaml
from tests.engine.devices.test_block_devices import ATTACHMENT, image, vm_with

LINUX_VM = ObjectId("VirtualMachine", "default", "linux-vm")
ISO = "/srv/images/installer.iso"
NODE = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
"""
FLEET = (NODE.format(name="hv1"), NODE.format(name="hv2"))
MODEL_CLASS = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: modelled
spec:
  cpu:
    type: Model
    model: Haswell-noTSX
"""
USER_DATA = """  provisioning:
    type: UserData
    userData: |
      #cloud-config
      hostname: linux-vm
"""


def migratable(ctx: PlanContext) -> Condition:
    """linux-vm's Migratable condition in the plan's report of it."""
    condition = plan(ctx, Observation({}, {})).statuses[LINUX_VM].get(VMCondition.MIGRATABLE)
    assert condition is not None, "the report has no Migratable condition"
    return condition


def vm(ctx: PlanContext) -> VirtualMachine:
    loaded = ctx.inventory.get(LINUX_VM)
    assert loaded is not None and isinstance(loaded.model, VirtualMachine)
    return loaded.model


def with_cdrom() -> PlanContext:
    """linux-vm with its root disk and an installer ISO from the host's image folder."""
    return context_for(
        revision(
            vm_with(("VirtualDisk", "linux-vm-root"), ("ClusterVirtualImage", "installer")),
            vm_yaml().split("---")[1],  # its root VirtualDisk
            image("installer", ISO),
        )
    )


def shared(ctx: PlanContext, storage: StorageMode = StorageMode.SHARED) -> PlanContext:
    return replace(ctx, host=replace(ctx.host, migration_storage=storage))


def test_a_vm_with_only_virtual_disks_is_migratable() -> None:
    # given linux-vm with its one VirtualDisk
    ctx = context_for(revision(vm_yaml()))
    # when it is planned
    condition = migratable(ctx)
    # then its report says it can migrate
    assert (condition.status, condition.reason) == (True, "VirtualMachineMigratable")


def test_a_cdrom_from_a_host_file_makes_the_vm_non_migratable_naming_it() -> None:
    # given linux-vm with an ISO imported from a host file
    ctx = with_cdrom()
    # when it is planned
    condition = migratable(ctx)
    # then its report says it cannot migrate, naming the image and its file
    assert (condition.status, condition.reason) == (False, "VirtualMachineNonMigratable")
    assert f"ClusterVirtualImage installer (the host file {ISO})" in condition.message
    assert "read-only volume of this host's pool pool" in condition.message


def test_a_cdrom_on_a_pool_the_hosts_share_does_not_keep_the_vm_here() -> None:
    # given the same VM on a host whose configuration marks its pool shared
    for storage in (StorageMode.SHARED, StorageMode.SHARED_DIRECTORY):
        ctx = shared(with_cdrom(), storage)
        # then nothing keeps it from migrating
        assert why_not_migratable(ctx, vm(ctx)) == ""


def test_a_hot_plugged_image_makes_the_vm_non_migratable_naming_its_attachment() -> None:
    # given linux-vm with an image hot-plugged by an attachment
    attachment = ATTACHMENT.format(
        name="attach-iso", vm="linux-vm", kind="ClusterVirtualImage", device="installer"
    )
    ctx = context_for(revision(vm_yaml(), image("installer", ISO), attachment))
    # when it is planned
    condition = migratable(ctx)
    # then its report names the image, its file and the attachment
    assert not condition.status
    assert (
        f"ClusterVirtualImage installer (the host file {ISO}), hot-plugged by"
        " VirtualMachineBlockDeviceAttachment attach-iso"
    ) in condition.message


def test_a_hot_plugged_disk_leaves_the_vm_migratable() -> None:
    # given linux-vm with a VirtualDisk hot-plugged (writable: the migration copies it)
    attachment = ATTACHMENT.format(name="attach", vm="linux-vm", kind="VirtualDisk", device="data")
    data = vm_yaml(name="data").split("---")[1].replace("data-root", "data")
    ctx = context_for(revision(vm_yaml(), data, attachment))
    # then it can migrate (the class is there and valid: its CPU is what was judged)
    status = plan(ctx, Observation({}, {})).statuses[LINUX_VM]
    class_ready = status.get(VMCondition.VIRTUAL_MACHINE_CLASS_READY)
    assert class_ready is not None and class_ready.status
    assert migratable(ctx).status


def test_a_provisioning_seed_does_not_keep_the_vm_from_migrating() -> None:
    # given linux-vm with cloud-init user data (its seed is a read-only CD-ROM of the pool)
    text = vm_yaml().replace("  blockDeviceRefs:", USER_DATA + "  blockDeviceRefs:", 1)
    ctx = context_for(revision(text))
    # then it can migrate: the seed is ejected before, and made again on the destination
    assert why_not_migratable(ctx, vm(ctx)) == ""
    assert why_not_migratable(shared(ctx), vm(ctx)) == ""


def in_fleet(
    documents: tuple[str, ...], domain_type: str = "kvm", vm_text: str = ""
) -> PlanContext:
    """hv1 (KVM unless told) with linux-vm reported there, in the fleet `documents` name."""
    ctx = context_for(revision(vm_text or vm_yaml(), *documents))
    host = replace(ctx.host, domain_type=domain_type)
    return replace(ctx, host=host, reported_nodes={LINUX_VM: "hv1"})


def test_the_hosts_own_cpu_makes_the_vm_non_migratable_in_a_fleet() -> None:
    # given a fleet of two KVM hosts and linux-vm of class generic (cpu.type Host)
    ctx = in_fleet(FLEET)
    # when it is planned on hv1
    condition = migratable(ctx)
    # then its report says the CPU is this host's own
    assert not condition.status
    assert condition.message == (
        "VirtualMachineClass generic gives it this host's own CPU (cpu.type Host),"
        " and the fleet's hosts may have different ones"
    )


def test_the_hosts_own_cpu_does_not_matter_alone_or_under_emulation() -> None:
    # a fleet of one has no other host; software emulation gives a generic CPU model
    alone = in_fleet(())
    emulated = in_fleet(FLEET, domain_type="qemu")
    assert why_not_migratable(alone, vm(alone)) == ""
    assert why_not_migratable(emulated, vm(emulated)) == ""


def test_a_cpu_model_of_the_class_is_migratable_in_a_fleet() -> None:
    # given linux-vm of a class that names a CPU model, which every host can give
    text = vm_yaml().replace(
        "virtualMachineClassName: generic", "virtualMachineClassName: modelled"
    )
    ctx = in_fleet((MODEL_CLASS, *FLEET), vm_text=text)
    # then it can migrate (the class is there and valid: its CPU is what was judged)
    status = plan(ctx, Observation({}, {})).statuses[LINUX_VM]
    class_ready = status.get(VMCondition.VIRTUAL_MACHINE_CLASS_READY)
    assert class_ready is not None and class_ready.status
    assert migratable(ctx).status


def test_a_vm_no_node_can_take_still_reports_whether_it_could_migrate() -> None:
    # given a fleet whose every Node is cordoned: linux-vm is placed nowhere
    cordoned = tuple(node + "spec:\n  unschedulable: true\n" for node in FLEET)
    ctx = context_for(revision(vm_yaml(), *cordoned))
    # when hv1, the fleet's first node, reports it Pending
    status = plan(ctx, Observation({}, {})).statuses[LINUX_VM]
    # then the report carries Migratable too
    running = status.get(VMCondition.RUNNING)
    assert running is not None and running.reason == "Unschedulable"
    condition = status.get(VMCondition.MIGRATABLE)
    assert condition is not None and condition.status


def test_a_vm_whose_manifest_is_invalid_is_reported_non_migratable() -> None:
    # given linux-vm's manifest breaks the schema
    ctx = context_for(revision(vm_yaml(run_policy="Sometimes")))
    # when it is reported
    status = plan(ctx, Observation({}, {})).statuses[LINUX_VM]
    # then Migratable is False: what it would migrate is unknown
    condition = status.get(VMCondition.MIGRATABLE)
    assert condition is not None and not condition.status
    assert "manifest is invalid" in condition.message
