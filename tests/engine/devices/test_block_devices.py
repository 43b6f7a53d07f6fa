"""Disks, images and attachments in the planner: pure plans over observed pools and domains."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.api import ObjectId
from reconciler.engine.devices.disks import DiskRecord
from reconciler.engine.devices.storage import ImageSourceFacts
from reconciler.engine.plan import Observation, Outcome, Plan, PlanContext, plan
from reconciler.loader import LoadResult, load_text
from reconciler.model.actions import (
    AttachDevice,
    DefineDomain,
    DeleteDiskVolume,
    DeleteImageVolume,
    DetachDevice,
    EnsureDiskVolume,
    EnsureImageVolume,
    ResizeDisk,
    StartDomain,
    UndefineDomain,
)
from reconciler.model.domain import DomainSpec, PowerState, VolumeFacts
from reconciler.model.names import ImageFormat, image_volume_name
from tests.engine.conftest import context_for, empty, observed_as_defined, revision, vm_yaml

POOL = "pool"
LINUX_VM = ObjectId("VirtualMachine", "default", "linux-vm")
UBUNTU = ObjectId("ClusterVirtualImage", "", "ubuntu")
UBUNTU_FILE = "/srv/images/ubuntu.qcow2"
GiB = 2**30

IMAGE = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: ClusterVirtualImage
metadata:
  name: {name}
spec:
  dataSource:
    type: HTTP
    http:
      url: file://{path}
"""

DISK = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: {name}
  annotations: {annotations}
spec:
  persistentVolumeClaim:
    size: {size}
"""

FROM_IMAGE = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: {name}
spec:
  persistentVolumeClaim:
    size: 10Gi
  dataSource:
    type: ObjectRef
    objectRef:
      kind: ClusterVirtualImage
      name: {image}
"""

ATTACHMENT = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineBlockDeviceAttachment
metadata:
  name: {name}
spec:
  virtualMachineName: {vm}
  blockDeviceRef:
    kind: {kind}
    name: {device}
"""


def vm_with(*refs: tuple[str, str], name: str = "linux-vm", run_policy: str = "AlwaysOn") -> str:
    """A VM whose blockDeviceRefs are `refs` (kind, name), without a disk of its own."""
    text = vm_yaml(name=name, run_policy=run_policy).split("---")[0]
    head, _ = text.split("  blockDeviceRefs:")
    listed = "".join(f"    - kind: {kind}\n      name: {ref}\n" for kind, ref in refs)
    return head + "  blockDeviceRefs:\n" + listed


def disk(name: str, size: str = "1Gi", protected: bool = False) -> str:
    annotations = '{"virtualization.deckhouse.io/protect-volume": "true"}' if protected else "{}"
    return DISK.format(name=name, size=size, annotations=annotations)


def image(name: str = "ubuntu", path: str = UBUNTU_FILE) -> str:
    return IMAGE.format(name=name, path=path)


def with_sources(observation: Observation, **formats: ImageFormat | str) -> Observation:
    """The image files the host shows: a format, or a problem (a message) per file."""
    sources = {}
    for path, found in formats.items():
        if isinstance(found, ImageFormat):
            sources[path] = ImageSourceFacts(path, found, 3 * GiB)
        else:
            sources[path] = ImageSourceFacts(path, problem=found)
    return replace(observation, image_sources=sources)


def ubuntu_file(observation: Observation, found: ImageFormat | str) -> Observation:
    return replace(observation, image_sources={UBUNTU_FILE: _facts(UBUNTU_FILE, found)})


def _facts(path: str, found: ImageFormat | str) -> ImageSourceFacts:
    if isinstance(found, ImageFormat):
        return ImageSourceFacts(path, found, 3 * GiB)
    return ImageSourceFacts(path, problem=found)


def applied(
    context: PlanContext, observation: Observation, state: PowerState = PowerState.RUNNING
) -> Observation:
    """The host once the plan of `context` was carried out on `observation`."""
    result = plan(context, observation)
    domains = dict(observation.domains)
    volumes = dict(observation.volumes)
    for action in result.actions:
        if isinstance(action, DefineDomain):
            before = domains.get(action.spec.name)
            live = before.live if before is not None and before.live is not None else None
            domains[action.spec.name] = observed_as_defined(action.spec, state)
            if live is not None:
                domains[action.spec.name] = replace(domains[action.spec.name], live=live)
        elif isinstance(action, EnsureDiskVolume):
            volumes[(action.pool, action.volume)] = _volume(action.volume, action.capacity_bytes)
        elif isinstance(action, EnsureImageVolume):
            found = observation.image_sources[action.source]
            assert found.format is not None
            name = image_volume_name(action.image, action.source, found.format)
            volumes[(action.pool, name)] = _volume(name, found.virtual_bytes)
        elif isinstance(action, DeleteDiskVolume):
            volumes.pop((action.pool, action.volume))
        elif isinstance(action, UndefineDomain):
            domains.pop(action.domain)
    return replace(observation, domains=domains, volumes=volumes)


def _volume(name: str, capacity: int | None) -> VolumeFacts:
    return VolumeFacts(POOL, name, capacity or 0, f"/pool/{name}")


def _kinds(result: Plan) -> list[str]:
    return [type(action).__name__ for action in result.actions]


def _defined(result: Plan) -> DomainSpec:
    return next(a.spec for a in result.actions if isinstance(a, DefineDomain))


def _condition(result: Plan, kind: str, vm: ObjectId = LINUX_VM) -> tuple[bool, str, str]:
    condition = result.statuses[vm].get(kind)
    assert condition is not None
    return condition.status, condition.reason, condition.message


# --- images and disks made from them -------------------------------------------------


def test_a_disk_from_an_image_imports_the_image_then_copies_it() -> None:
    context = context_for(
        revision(
            vm_with(("VirtualDisk", "root")),
            FROM_IMAGE.format(name="root", image="ubuntu"),
            image(),
        )
    )

    result = plan(context, ubuntu_file(empty(), ImageFormat.QCOW2))

    assert _kinds(result) == [
        "EnsureImageVolume",
        "EnsureDiskVolume",
        "DefineDomain",
        "StartDomain",
    ]
    made = result.actions[1]
    assert isinstance(made, EnsureDiskVolume)
    assert (made.image, made.capacity_bytes) == (UBUNTU, 10 * GiB)
    # The domain refers to the disk only: the image is not attached.
    assert [d.source for d in _defined(result).disks] == [f"{POOL}/vd-default-root.qcow2"]


def test_an_image_is_imported_once_for_many_disks() -> None:
    context = context_for(
        revision(
            vm_with(("VirtualDisk", "a-root"), name="a"),
            vm_with(("VirtualDisk", "b-root"), name="b"),
            FROM_IMAGE.format(name="a-root", image="ubuntu"),
            FROM_IMAGE.format(name="b-root", image="ubuntu"),
            image(),
        )
    )
    host = ubuntu_file(empty(), ImageFormat.QCOW2)

    first = plan(context, host)
    after = plan(context, applied(context, host))

    imports = [a for a in first.actions if isinstance(a, EnsureImageVolume)]
    assert [(a.owner.name, a.shared) for a in imports] == [("a", False), ("b", True)]
    assert imports[1].describe() == "use ClusterVirtualImage ubuntu, imported above"
    assert after.actions == []


def test_a_missing_image_leaves_the_vm_pending_with_a_message() -> None:
    context = context_for(
        revision(
            vm_with(("VirtualDisk", "root")),
            FROM_IMAGE.format(name="root", image="ubuntu"),
            image(),
        )
    )
    missing = f"{UBUNTU_FILE}: the image file does not exist"

    result = plan(context, ubuntu_file(empty(), missing))

    assert result.actions == []
    assert result.vms[0].outcome is Outcome.BLOCKED
    assert result.statuses[LINUX_VM].phase == "Pending"
    ready, reason, message = _condition(result, "BlockDevicesReady")
    assert (ready, reason) == (False, "BlockDevicesNotReady")
    assert message == f"VirtualDisk root is made from ClusterVirtualImage ubuntu: {missing}"
    report = result.object_reports[ObjectId("VirtualDisk", "default", "root")]
    assert report["phase"] == "Pending"


@pytest.mark.parametrize(
    ("run_policy", "phase"), [("AlwaysOn", "Pending"), ("AlwaysOff", "Stopped")]
)
def test_a_stopped_vm_blocked_by_a_device_is_pending_when_its_policy_would_start_it(
    run_policy: str, phase: str
) -> None:
    """dvp-api.md §2.2: Stopped, except Pending when its dependencies are not ready and
    a start is wanted."""
    base = [vm_with(("VirtualDisk", "root"), run_policy=run_policy), disk("root")]
    stopped = applied(context_for(revision(*base)), empty(), PowerState.SHUTOFF)
    missing = vm_with(("VirtualDisk", "root"), ("VirtualDisk", "data"), run_policy=run_policy)

    result = plan(context_for(revision(missing, disk("root"))), stopped)

    assert result.actions == []
    assert result.vms[0].outcome is Outcome.BLOCKED
    assert result.statuses[LINUX_VM].phase == phase
    assert _condition(result, "BlockDevicesReady")[0] is False


def test_a_missing_image_blocks_only_its_own_vm() -> None:
    context = context_for(
        revision(
            vm_with(("VirtualDisk", "a-root"), name="a"),
            vm_with(("VirtualDisk", "b-root"), name="b"),
            FROM_IMAGE.format(name="a-root", image="ubuntu"),
            disk("b-root"),
            image(),
        )
    )

    result = plan(context, ubuntu_file(empty(), "gone"))

    outcomes = {vm.object_id.name: vm.outcome for vm in result.vms}
    assert outcomes == {"a": Outcome.BLOCKED, "b": Outcome.CREATED}


def test_an_existing_disk_no_longer_needs_its_image() -> None:
    context = context_for(
        revision(
            vm_with(("VirtualDisk", "root")),
            FROM_IMAGE.format(name="root", image="ubuntu"),
            image(),
        )
    )
    host = applied(context, ubuntu_file(empty(), ImageFormat.QCOW2))

    # The image's volume and its file are gone; the disk was made from them long ago.
    volumes = {key: v for key, v in host.volumes.items() if key[1].startswith("vd-")}
    result = plan(context, replace(host, volumes=volumes, image_sources={}))

    assert result.actions == []
    assert _condition(result, "BlockDevicesReady")[0] is True


def test_an_iso_image_is_a_read_only_cdrom_and_a_qcow2_image_a_read_only_disk() -> None:
    context = context_for(
        revision(
            vm_with(("ClusterVirtualImage", "installer"), ("ClusterVirtualImage", "ubuntu")),
            image("installer", "/srv/images/installer.img"),
            image(),
        )
    )
    # The content decides, not the name: installer.img holds an ISO 9660 filesystem.
    host = with_sources(
        empty(),
        **{"/srv/images/installer.img": ImageFormat.ISO, UBUNTU_FILE: ImageFormat.QCOW2},
    )

    result = plan(context, host)

    cdrom, ubuntu = _defined(result).disks
    assert (cdrom.device, cdrom.format, cdrom.readonly, cdrom.boot_order) == (
        "cdrom",
        "raw",
        True,
        1,
    )
    assert cdrom.volume is not None and cdrom.volume.endswith(".iso")
    assert (ubuntu.device, ubuntu.format, ubuntu.readonly, ubuntu.boot_order) == (
        "disk",
        "qcow2",
        True,
        2,
    )
    assert _kinds(result)[:2] == ["EnsureImageVolume", "EnsureImageVolume"]


def test_an_image_given_by_http_url_is_refused_with_its_url() -> None:
    context = context_for(
        revision(
            vm_with(("ClusterVirtualImage", "ubuntu")),
            image(path="").replace("file://", "https://cloud-images.example/ubuntu.img"),
        )
    )

    result = plan(context, empty())

    ready, _, message = _condition(result, "BlockDevicesReady")
    assert not ready
    assert "https://cloud-images.example/ubuntu.img" in message
    assert "only files on the host" in message


# --- sizes ---------------------------------------------------------------------------


def test_a_bigger_size_grows_the_disk_of_a_running_vm() -> None:
    small = context_for(revision(vm_with(("VirtualDisk", "root")), disk("root", "1Gi")))
    host = applied(small, empty())
    bigger = context_for(revision(vm_with(("VirtualDisk", "root")), disk("root", "2Gi")))

    result = plan(bigger, host)

    assert _kinds(result) == ["ResizeDisk"]
    assert isinstance(result.actions[0], ResizeDisk) and result.actions[0].capacity_bytes == 2 * GiB
    assert result.vms[0].outcome is Outcome.CHANGED_LIVE
    assert result.statuses[LINUX_VM].restart_awaiting_changes == []


def test_shrinking_a_disk_is_refused_and_the_disk_keeps_its_size() -> None:
    big = context_for(revision(vm_with(("VirtualDisk", "root")), disk("root", "2Gi")))
    host = applied(big, empty())
    smaller = context_for(revision(vm_with(("VirtualDisk", "root")), disk("root", "1Gi")))

    result = plan(smaller, host)

    assert result.actions == []
    report = result.object_reports[ObjectId("VirtualDisk", "default", "root")]
    assert report["capacity"] == "2Gi"
    resizing = next(c for c in report["conditions"] if c["type"] == "Resizing")
    assert (resizing["status"], resizing["reason"]) == ("False", "ShrinkRefused")
    assert "shrinking it to 1Gi is refused" in resizing["message"]
    assert any("refused" in line for line in result.vms[0].details)


# --- boot order ----------------------------------------------------------------------


def test_block_devices_boot_in_list_order_and_a_new_order_waits_for_a_restart() -> None:
    first = context_for(
        revision(vm_with(("VirtualDisk", "a"), ("VirtualDisk", "b")), disk("a"), disk("b"))
    )
    host = applied(first, empty())
    swapped = context_for(
        revision(vm_with(("VirtualDisk", "b"), ("VirtualDisk", "a")), disk("a"), disk("b"))
    )

    before = _defined(plan(first, empty()))
    result = plan(swapped, host)

    assert [(d.volume, d.boot_order) for d in before.disks] == [
        ("vd-default-a.qcow2", 1),
        ("vd-default-b.qcow2", 2),
    ]
    assert [(d.volume, d.boot_order) for d in _defined(result).disks] == [
        ("vd-default-b.qcow2", 1),
        ("vd-default-a.qcow2", 2),
    ]
    assert _kinds(result) == ["DefineDomain"], "the running instance keeps its order"
    assert [c["path"] for c in result.statuses[LINUX_VM].restart_awaiting_changes] == [
        "blockDeviceRefs.0",
        "blockDeviceRefs.1",
    ]
    assert result.vms[0].outcome is Outcome.AWAITING_RESTART


def test_adding_a_disk_to_the_list_waits_for_a_restart() -> None:
    first = context_for(revision(vm_with(("VirtualDisk", "a")), disk("a"), disk("b")))
    host = applied(first, empty())
    more = context_for(
        revision(vm_with(("VirtualDisk", "a"), ("VirtualDisk", "b")), disk("a"), disk("b"))
    )

    result = plan(more, host)

    assert _kinds(result) == ["EnsureDiskVolume", "DefineDomain"]
    assert result.statuses[LINUX_VM].restart_awaiting_changes == [
        {
            "operation": "add",
            "path": "blockDeviceRefs.1",
            "desiredValue": {"kind": "VirtualDisk", "name": "b"},
        }
    ]


# --- disks of two VMs -----------------------------------------------------------------


def test_a_disk_shared_read_write_by_two_vms_is_refused_for_the_second() -> None:
    context = context_for(
        revision(
            vm_with(("VirtualDisk", "shared"), name="a"),
            vm_with(("VirtualDisk", "shared"), name="b"),
            disk("shared"),
        )
    )

    result = plan(context, empty())

    outcomes = {vm.object_id.name: vm.outcome for vm in result.vms}
    assert outcomes == {"a": Outcome.CREATED, "b": Outcome.BLOCKED}
    ready, _, message = _condition(result, "BlockDevicesReady", LINUX_VM._replace(name="b"))
    assert not ready
    assert message == (
        "VirtualDisk shared is already used by VirtualMachine/default/a;"
        " a disk is attached read-write to one VM only"
    )


def test_two_disks_whose_volumes_would_share_a_name_are_refused() -> None:
    result = LoadResult()
    for index, text in enumerate(
        (
            disk("b-c").replace("name: b-c", "name: b-c\n  namespace: a"),
            disk("c").replace("name: c", "name: c\n  namespace: a-b"),
        )
    ):
        result.extend(load_text(text, f"disk{index}.yaml"))
    context = context_for(result)

    assert [f.message for f in context.findings] == [
        "VirtualDisk c would share the volume vd-a-b-c.qcow2 with VirtualDisk/a/b-c;"
        " rename one of them"
    ]


# --- deleting disks ------------------------------------------------------------------

ROOT = ObjectId("VirtualDisk", "default", "root")
ROOT_VOLUME = "vd-default-root.qcow2"


def _running_with_root() -> tuple[PlanContext, Observation]:
    context = context_for(revision(vm_with(("VirtualDisk", "root")), disk("root")))
    return context, applied(context, empty())


def _records(protected: bool = False) -> dict[str, DiskRecord]:
    return {ROOT_VOLUME: DiskRecord(ROOT, ROOT_VOLUME, protected)}


def test_deleting_a_vm_keeps_its_disks() -> None:
    _, host = _running_with_root()
    without_vm = replace(context_for(revision(disk("root"))), disk_records=_records())

    result = plan(without_vm, host)

    assert _kinds(result) == ["UndefineDomain"]
    report = result.object_reports[ROOT]
    assert report["phase"] == "Ready"
    assert next(c for c in report["conditions"] if c["type"] == "InUse")["status"] == "False"


def test_deleting_a_disk_manifest_with_its_vm_deletes_the_volume_after_the_vm() -> None:
    _, host = _running_with_root()
    # Some other object keeps the revision from being empty.
    rest = context_for(revision(disk("other")))

    result = plan(replace(rest, disk_records=_records()), host)

    assert _kinds(result) == ["UndefineDomain", "DeleteDiskVolume"]
    deletion = result.actions[1]
    assert isinstance(deletion, DeleteDiskVolume) and deletion.volume == ROOT_VOLUME
    assert result.vms[-1].outcome is Outcome.DELETED
    assert ROOT not in result.object_reports


def test_a_protected_disk_is_kept_when_its_manifest_is_deleted() -> None:
    _, host = _running_with_root()
    rest = context_for(revision(disk("other")))

    result = plan(replace(rest, disk_records=_records(protected=True)), host)

    assert _kinds(result) == ["UndefineDomain"]
    assert any("is kept: it was protected" in note for note in result.notes)


def test_no_disk_is_deleted_from_a_revision_with_an_unreadable_file() -> None:
    _, host = _running_with_root()
    broken = revision(disk("other"))
    broken.extend(load_text("kind: [unclosed", "broken.yaml"))

    result = plan(replace(context_for(broken), disk_records=_records()), host)

    assert not any(isinstance(a, DeleteDiskVolume | UndefineDomain) for a in result.actions)
    assert any("none is deleted" in note for note in result.notes)


def test_a_volume_without_a_report_of_its_disk_is_kept() -> None:
    _, host = _running_with_root()
    rest = context_for(revision(disk("other")))

    result = plan(rest, host)  # no disk records: the status tree is gone

    assert _kinds(result) == ["UndefineDomain"]
    assert any("no report of one: kept" in note for note in result.notes)


def test_a_deleted_disk_that_a_vm_still_names_is_kept_and_reported_terminating() -> None:
    _, host = _running_with_root()
    vm_only = context_for(revision(vm_with(("VirtualDisk", "root"))))

    result = plan(replace(vm_only, disk_records=_records()), host)

    assert not any(isinstance(a, DeleteDiskVolume) for a in result.actions)
    report = result.object_reports[ROOT]
    assert report["phase"] == "Terminating"
    assert "VirtualMachine linux-vm still refers to it" in report["conditions"][0]["message"]


def test_a_deleted_disk_of_a_namespace_with_an_invalid_vm_is_kept() -> None:
    _, host = _running_with_root()
    invalid = revision(
        disk("other"),
        vm_with(("VirtualDisk", "x"), name="linux-vm").replace("cores: 1", "cores: many"),
    )

    result = plan(replace(context_for(invalid), disk_records=_records()), host)

    assert not any(isinstance(a, DeleteDiskVolume) for a in result.actions)
    assert "has invalid manifests" in result.object_reports[ROOT]["conditions"][0]["message"]


def test_a_deleted_disk_a_stopped_domain_still_uses_is_kept() -> None:
    context, host = _running_with_root()
    spec = _defined(plan(context, empty()))
    # A domain of another VM (still in Git) that has the volume in its definition.
    other = replace(spec, name="other.default", metadata=replace(spec.metadata, name="other"))
    domains = {"other.default": observed_as_defined(other, PowerState.SHUTOFF)}
    revision_without_root = revision(vm_with(("VirtualDisk", "x"), name="other"), disk("x"))

    result = plan(
        replace(context_for(revision_without_root), disk_records=_records()),
        replace(host, domains=domains),
    )

    assert not any(isinstance(a, DeleteDiskVolume) for a in result.actions)
    assert "domain other.default still uses it" in str(result.object_reports[ROOT])


# --- attachments ---------------------------------------------------------------------

BLANK = ObjectId("VirtualMachineBlockDeviceAttachment", "default", "attach-blank")


def _attachment(vm: str = "linux-vm", device: str = "blank", kind: str = "VirtualDisk") -> str:
    return ATTACHMENT.format(name="attach-blank", vm=vm, kind=kind, device=device)


def test_an_attachment_hot_plugs_its_disk_into_the_running_vm() -> None:
    base = [vm_with(("VirtualDisk", "root")), disk("root"), disk("blank", "64Mi")]
    host = applied(context_for(revision(*base)), empty())
    context = context_for(revision(*base, _attachment()))

    result = plan(context, host)

    assert _kinds(result) == ["EnsureDiskVolume", "DefineDomain", "AttachDevice"]
    attach = result.actions[2]
    assert isinstance(attach, AttachDevice)
    assert (attach.disk.bus, attach.disk.alias, attach.disk.source) == (
        "scsi",
        "ua-vmbda-attach-blank",
        f"{POOL}/vd-default-blank.qcow2",
    )
    assert attach.disk.boot_order is None
    assert result.vms[0].outcome is Outcome.CHANGED_LIVE
    assert result.object_reports[BLANK]["phase"] == "InProgress"
    assert result.statuses[LINUX_VM].restart_awaiting_changes == []


def test_the_vm_status_lists_its_block_devices_as_the_running_instance_has_them() -> None:
    """status.blockDeviceRefs (dvp-api.md §1.3): size, target, boot order, and whether the
    running instance has the device; a hot-plugged one names its attachment."""
    base = [vm_with(("VirtualDisk", "root")), disk("root"), disk("blank", "64Mi")]
    context = context_for(revision(*base, _attachment()))
    host = applied(context_for(revision(*base)), empty())
    before = plan(context, host).statuses[LINUX_VM].block_device_refs
    assert before == [
        {
            "kind": "VirtualDisk",
            "name": "root",
            "size": "1Gi",
            "target": "sda",
            "attached": True,
            "bootOrder": 1,
        },
        {
            "kind": "VirtualDisk",
            "name": "blank",
            "target": "sdb",
            "attached": False,  # not made yet, not plugged in yet
            "hotplugged": True,
            "virtualMachineBlockDeviceAttachmentName": "attach-blank",
        },
    ]
    attached = applied(context, host)
    running = replace(
        attached.domains["linux-vm.default"], live=attached.domains["linux-vm.default"].config
    )
    after = plan(context, replace(attached, domains={"linux-vm.default": running}))
    blank = after.statuses[LINUX_VM].block_device_refs[1]
    assert (blank["size"], blank["attached"]) == ("64Mi", True)
    stopped = applied(context_for(revision(*base)), empty(), PowerState.SHUTOFF)
    refs = plan(context_for(revision(*base)), stopped).statuses[LINUX_VM].block_device_refs
    assert [(r["name"], r["attached"]) for r in refs] == [("root", False)]


def test_a_hot_plugged_disk_is_expected_not_put_back() -> None:
    base = [vm_with(("VirtualDisk", "root")), disk("root"), disk("blank", "64Mi")]
    context = context_for(revision(*base, _attachment()))
    host = applied(context_for(revision(*base)), empty())
    attached = applied(context, host)
    spec = attached.domains["linux-vm.default"].config
    # The running instance got the disk by the hot-plug (live and next-boot alike).
    running = replace(attached.domains["linux-vm.default"], live=spec)

    result = plan(context, replace(attached, domains={"linux-vm.default": running}))

    assert result.actions == []
    assert result.object_reports[BLANK]["phase"] == "Attached"
    blank = result.object_reports[ObjectId("VirtualDisk", "default", "blank")]
    assert blank["attachedToVirtualMachines"] == [{"name": "linux-vm", "mounted": True}]


def test_deleting_an_attachment_unplugs_its_disk_and_keeps_the_disk() -> None:
    base = [vm_with(("VirtualDisk", "root")), disk("root"), disk("blank", "64Mi")]
    context = context_for(revision(*base, _attachment()))
    attached = applied(context, applied(context_for(revision(*base)), empty()))
    running = attached.domains["linux-vm.default"]
    attached = replace(
        attached, domains={"linux-vm.default": replace(running, live=running.config)}
    )

    result = plan(context_for(revision(*base)), attached)

    assert _kinds(result) == ["DefineDomain", "DetachDevice"]
    detach = result.actions[1]
    assert isinstance(detach, DetachDevice)
    assert (detach.alias, detach.source) == (
        "ua-vmbda-attach-blank",
        f"{POOL}/vd-default-blank.qcow2",
    )
    assert all(d.alias is None for d in _defined(result).disks)
    assert BLANK not in result.object_reports


def test_an_attachment_of_a_stopped_vm_waits_and_comes_with_the_next_start() -> None:
    stopped = [vm_with(("VirtualDisk", "root"), run_policy="Manual"), disk("root"), disk("blank")]
    host = applied(context_for(revision(*stopped)), empty(), PowerState.SHUTOFF)
    context = context_for(revision(*stopped, _attachment()))

    result = plan(context, host)

    assert not any(isinstance(a, AttachDevice | StartDomain) for a in result.actions)
    assert [d.alias for d in _defined(result).disks] == [None, "ua-vmbda-attach-blank"]
    report = result.object_reports[BLANK]
    assert report["phase"] == "Pending"
    vm_ready = next(c for c in report["conditions"] if c["type"] == "VirtualMachineReady")
    assert vm_ready["status"] == "False"
    assert "not running; the disk is attached when it starts" in vm_ready["message"]


def test_an_attachment_of_a_disk_another_vm_uses_is_refused() -> None:
    context = context_for(
        revision(
            vm_with(("VirtualDisk", "root")),
            vm_with(("VirtualDisk", "blank"), name="other"),
            disk("root"),
            disk("blank"),
            _attachment(),
        )
    )

    result = plan(context, empty())

    report = result.object_reports[BLANK]
    assert report["phase"] == "Failed"
    attached = next(c for c in report["conditions"] if c["type"] == "Attached")
    assert (attached["status"], attached["reason"]) == ("False", "Conflict")
    assert "already used by VirtualMachine/default/other" in attached["message"]
    assert all(d.alias is None for d in _defined(result).disks)


def test_an_attachment_of_a_missing_disk_waits_without_holding_up_its_vm() -> None:
    context = context_for(revision(vm_with(("VirtualDisk", "root")), disk("root"), _attachment()))

    result = plan(context, empty())

    assert result.vms[0].outcome is Outcome.CREATED
    report = result.object_reports[BLANK]
    assert report["phase"] == "Pending"
    ready = next(c for c in report["conditions"] if c["type"] == "BlockDeviceReady")
    assert ready["status"] == "False"
    assert ready["message"] == "VirtualDisk blank is missing or invalid"


def test_an_image_attachment_of_an_iso_is_a_cdrom_on_scsi() -> None:
    base = [vm_with(("VirtualDisk", "root")), disk("root"), image("installer", "/srv/i.iso")]
    host = applied(context_for(revision(*base)), empty())
    context = context_for(
        revision(*base, _attachment(device="installer", kind="ClusterVirtualImage"))
    )

    result = plan(context, with_sources(host, **{"/srv/i.iso": ImageFormat.ISO}))

    assert _kinds(result) == ["EnsureImageVolume", "DefineDomain", "AttachDevice"]
    attach = result.actions[2]
    assert isinstance(attach, AttachDevice)
    assert (attach.disk.device, attach.disk.bus, attach.disk.readonly) == ("cdrom", "scsi", True)


def test_an_attachment_of_a_vm_that_cannot_be_changed_waits_and_says_why() -> None:
    context = context_for(
        revision(
            vm_with(("VirtualDisk", "root"), ("ClusterVirtualImage", "ubuntu")),
            disk("root"),
            disk("blank"),
            image(),
            _attachment(),
        )
    )

    result = plan(context, ubuntu_file(empty(), "gone"))

    report = result.object_reports[BLANK]
    assert report["phase"] == "Pending"
    vm_ready = next(c for c in report["conditions"] if c["type"] == "VirtualMachineReady")
    assert vm_ready["status"] == "False"
    assert vm_ready["message"].startswith("VirtualMachine linux-vm is not changed: not applied:")
    assert "ClusterVirtualImage ubuntu: gone" in vm_ready["message"]


# --- image volumes no image names any more ---------------------------------------------

NEW_FILE = "/srv/images/ubuntu-24.04.qcow2"


def _image_host(context: PlanContext, state: PowerState = PowerState.RUNNING) -> Observation:
    """The host once a VM booting the ubuntu image (as a disk of its own) was set up."""
    sources = with_sources(empty(), **{UBUNTU_FILE: ImageFormat.QCOW2, NEW_FILE: ImageFormat.QCOW2})
    return applied(context, applied(context, sources, state), state)


def _host_with_a_disk_made_from_the_image() -> Observation:
    made = context_for(
        revision(
            vm_with(("VirtualDisk", "root")),
            FROM_IMAGE.format(name="root", image="ubuntu"),
            image(),
        )
    )
    return _image_host(made)


def _image_volumes(observation: Observation) -> set[str]:
    return {name for _pool, name in observation.volumes if name.startswith("cvi-")}


def _deleted_images(result: Plan) -> list[str]:
    return [a.volume for a in result.actions if isinstance(a, DeleteImageVolume)]


def test_the_volume_of_an_image_whose_file_changed_goes_once_no_domain_has_it() -> None:
    booting = vm_with(("ClusterVirtualImage", "ubuntu"), ("VirtualDisk", "root"))
    before = context_for(revision(booting, disk("root"), image()))
    host = _image_host(before)
    [old] = _image_volumes(host)
    changed = context_for(revision(booting, disk("root"), image(path=NEW_FILE)))

    # The running instance still reads the old volume (and so does its next boot,
    # until the redefinition): kept.
    first = plan(changed, host)
    assert _deleted_images(first) == []
    assert any(isinstance(a, EnsureImageVolume) for a in first.actions)

    stopped = _image_host(before, PowerState.SHUTOFF)
    redefined = applied(changed, stopped, PowerState.SHUTOFF)
    assert _image_volumes(redefined) == {
        old,
        image_volume_name(UBUNTU, NEW_FILE, ImageFormat.QCOW2),
    }
    result = plan(changed, redefined)
    assert _deleted_images(result) == [old]
    [deletion] = [a for a in result.actions if isinstance(a, DeleteImageVolume)]
    assert deletion.describe() == (
        f"delete image volume {POOL}/{old} (no image of the revision uses it)"
    )


def test_the_volume_of_a_deleted_image_goes_and_nothing_else() -> None:
    host = _host_with_a_disk_made_from_the_image()
    [old] = _image_volumes(host)
    foreign = replace(
        host, volumes={**host.volumes, (POOL, "ubuntu.qcow2"): _volume("ubuntu.qcow2", GiB)}
    )
    # The disk is a copy of the image: the image may go with its manifest.
    without = context_for(revision(vm_with(("VirtualDisk", "root")), disk("root", "10Gi")))

    assert _deleted_images(plan(without, foreign)) == [old]


def test_no_image_volume_goes_while_the_revision_is_not_whole() -> None:
    host = _host_with_a_disk_made_from_the_image()
    base = revision(vm_with(("VirtualDisk", "root")), disk("root", "10Gi"))
    unreadable = LoadResult()
    unreadable.extend(base)
    unreadable.extend(load_text("kind: [", "broken.yaml"))
    broken_image = LoadResult()
    broken_image.extend(base)
    broken_image.extend(load_text(image().replace("url: file://", "url: 17 #"), "image.yaml"))
    unknown_file = revision(
        vm_with(("VirtualDisk", "root")),
        disk("root", "10Gi"),
        image().replace(f"file://{UBUNTU_FILE}", "https://example.com/ubuntu.qcow2"),
    )

    for result in (unreadable, broken_image, unknown_file):
        assert _deleted_images(plan(context_for(result), host)) == []
