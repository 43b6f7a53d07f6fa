"""Derived names (reconciler/model/names.py): each parses back to what built it, the
longest names still fit a host, and today's values stay what they are, since a changed
derivation orphans running domains, reservations and volumes."""

from __future__ import annotations

import pytest

from reconciler.api import ObjectId
from reconciler.api.names import FILE_NAME_MAX, FITTED_MARK
from reconciler.model.names import (
    ImageFormat,
    disk_volume_name,
    domain_mac,
    domain_name,
    domain_owner,
    domain_uuid,
    image_kind_of,
    image_stem_of,
    image_volume_name,
    image_volume_prefix,
    image_volume_stem,
    importing_marker_name,
    is_disk_volume,
    is_project_volume,
    seed_instance_id,
    seed_volume_name,
    seed_volume_owner,
    seed_volume_prefix,
)
from tests.longest_names import CLUSTER_IMAGE, IMAGE, NAMESPACE, ROOT_DISK, VM

WEB = ObjectId("VirtualMachine", "prod", "web")
SOURCE = "/var/lib/reconciler/images/u.qcow2"


# Fixed values, copied from what the code derived before the names moved here.


def test_a_domain_is_named_name_dot_namespace() -> None:
    assert domain_name(WEB) == "web.prod"


def test_a_domain_uuid_is_derived_from_the_vm_identity() -> None:
    assert domain_uuid(WEB) == "12bb9484-ee30-5073-9355-ccc145c1c79a"


def test_a_domain_mac_is_derived_from_the_vm_identity() -> None:
    assert domain_mac(WEB) == "52:54:00:d7:3e:92"


def test_a_disk_volume_is_named_vd_namespace_name() -> None:
    assert disk_volume_name(ObjectId("VirtualDisk", "prod", "web-root")) == "vd-prod-web-root.qcow2"


def test_an_image_volume_is_named_by_identity_source_and_format() -> None:
    image = ObjectId("VirtualImage", "prod", "ubuntu")
    assert image_volume_name(image, SOURCE, ImageFormat.QCOW2) == "img-prod-ubuntu-e8513d73.qcow2"


def test_a_cluster_image_volume_has_no_namespace() -> None:
    image = ObjectId("ClusterVirtualImage", "", "ubuntu")
    source = "/var/lib/reconciler/images/u.iso"
    assert image_volume_name(image, source, ImageFormat.ISO) == "cvi-ubuntu-7b71b97e.iso"


def test_a_seed_volume_is_named_by_its_vm_and_content() -> None:
    assert seed_volume_name("prod", "web", b"one image") == "cidata-prod.web-7ae68a389899.iso"


def test_a_seed_instance_id_is_the_domain_name_and_a_content_hash() -> None:
    assert seed_instance_id(WEB, "0123456789abcdef0123") == "web.prod-0123456789abcdef"


def test_the_longest_disk_name_gets_a_fitted_volume_name() -> None:
    volume = disk_volume_name(ObjectId("VirtualDisk", NAMESPACE, ROOT_DISK))
    assert volume.startswith(f"vd-{NAMESPACE}-root.xxx")
    assert volume.endswith("_48ac2a1ecb8c2a44e4c0575cd7c41fd6.qcow2")
    assert len(volume) == FILE_NAME_MAX


def test_the_longest_image_name_gets_a_fitted_stem() -> None:
    stem = image_volume_stem(ObjectId("VirtualImage", NAMESPACE, IMAGE), "/x")
    assert stem.endswith("_ecb5723d47afdd8564006016b6c3fe74-13eea483")
    assert stem.startswith(f"img-{NAMESPACE}-image.xxx")


# Round trips: every name parses back to what built it.


@pytest.mark.parametrize(
    "vm",
    [
        WEB,
        ObjectId("VirtualMachine", "prod", "web.frontend"),
        ObjectId("VirtualMachine", NAMESPACE, VM),
    ],
)
def test_a_domain_name_parses_back_to_its_vm(vm: ObjectId) -> None:
    assert domain_owner(domain_name(vm)) == vm


@pytest.mark.parametrize("domain", ["web", "web.", ".prod", ""])
def test_a_domain_name_without_name_or_namespace_has_no_owner(domain: str) -> None:
    assert domain_owner(domain) is None


@pytest.mark.parametrize(
    ("namespace", "vm"), [("prod", "web"), ("a-b", "c"), ("a", "b-c"), (NAMESPACE, VM)]
)
def test_a_seed_volume_parses_back_to_its_vm_prefix(namespace: str, vm: str) -> None:
    volume = seed_volume_name(namespace, vm, b"image")
    assert seed_volume_owner(volume) == seed_volume_prefix(namespace, vm)


@pytest.mark.parametrize(
    "volume", ["vd-prod-web-root.qcow2", "img-prod-ubuntu-e8513d73.qcow2", "cidata-", "other.iso"]
)
def test_a_volume_that_is_not_a_seed_has_no_seed_owner(volume: str) -> None:
    assert seed_volume_owner(volume) is None


@pytest.mark.parametrize(
    "image",
    [
        ObjectId("VirtualImage", "prod", "ubuntu"),
        ObjectId("ClusterVirtualImage", "", "ubuntu"),
        ObjectId("VirtualImage", NAMESPACE, IMAGE),
        ObjectId("ClusterVirtualImage", "", CLUSTER_IMAGE),
    ],
)
def test_an_image_volume_and_its_marker_parse_back_to_stem_and_kind(image: ObjectId) -> None:
    stem = image_volume_stem(image, SOURCE)
    for volume in (image_volume_name(image, SOURCE, ImageFormat.RAW), importing_marker_name(stem)):
        assert image_stem_of(volume) == stem
        assert image_kind_of(stem) == image.kind
        assert volume.startswith(image_volume_prefix(image))
        assert is_project_volume(volume)


@pytest.mark.parametrize(
    "disk",
    [ObjectId("VirtualDisk", "prod", "web-root"), ObjectId("VirtualDisk", NAMESPACE, ROOT_DISK)],
)
def test_a_disk_volume_is_known_as_a_project_disk_volume(disk: ObjectId) -> None:
    volume = disk_volume_name(disk)
    assert is_disk_volume(volume)
    assert is_project_volume(volume)
    assert image_stem_of(volume) is None


@pytest.mark.parametrize(
    "volume", ["cidata-prod.web-7ae68a389899.iso", "vd-prod-web.raw", "data.qcow2"]
)
def test_other_volumes_are_not_the_projects_to_change(volume: str) -> None:
    assert not is_project_volume(volume)


def test_only_a_disk_has_a_disk_volume() -> None:
    with pytest.raises(ValueError, match="not a VirtualDisk"):
        disk_volume_name(ObjectId("VirtualImage", "prod", "ubuntu"))


# The longest names the platform allows still fit a host.


def test_every_volume_of_the_longest_names_fits_a_file_name() -> None:
    image = ObjectId("VirtualImage", NAMESPACE, IMAGE)
    cluster_image = ObjectId("ClusterVirtualImage", "", CLUSTER_IMAGE)
    volumes = [
        disk_volume_name(ObjectId("VirtualDisk", NAMESPACE, ROOT_DISK)),
        image_volume_name(image, SOURCE, ImageFormat.QCOW2),
        importing_marker_name(image_volume_stem(image, SOURCE)),
        importing_marker_name(image_volume_stem(cluster_image, SOURCE)),
        seed_volume_name(NAMESPACE, VM, b"image"),
    ]
    for volume in volumes:
        assert len(volume.encode()) <= FILE_NAME_MAX, volume


def test_names_that_fit_are_kept_as_written() -> None:
    assert FITTED_MARK not in disk_volume_name(ObjectId("VirtualDisk", NAMESPACE, "root"))
    assert FITTED_MARK not in seed_volume_name(NAMESPACE, VM, b"image")
