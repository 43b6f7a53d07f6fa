"""Rendered XML goes through libvirt and reads back as the same facts and metadata."""

from __future__ import annotations

import os
import re
from pathlib import Path

import libvirt
import pytest

from reconciler.libvirt.connection import LibvirtUnavailable, open_connection
from reconciler.libvirt.facts import parse_definition
from reconciler.libvirt.render import render_domain
from reconciler.model.domain import DiskDevice, DomainMetadata, DomainSpec, KernelBoot, Nic
from tests.libvirt.conftest import HOST_XML

GOLDEN = Path(__file__).parent.parent / "golden"

METADATA = DomainMetadata(
    kind="VirtualMachine",
    namespace="default",
    name="linux-vm",
    revision="0123abcd",
    digest="feedbeef00112233",
    spec={"cpu": {"cores": 6, "coreFraction": "50%"}, "note": "<&'\">"},
    stopped_manually=True,
    last_run_policy="AlwaysOnUnlessStoppedManually",
    completed_operations=("default/restart-1", "default/stop-2"),
)


def spec(**changes: object) -> DomainSpec:
    base = DomainSpec(
        name="linux-vm.default",
        uuid="6b1f0f3e-4a57-5a1e-9b0c-3f1f6d3f2a10",
        domain_type="qemu",
        machine="q35",
        vcpus=6,
        sockets=2,
        max_cores_per_socket=3,
        cpu_mode="custom",
        cpu_model="qemu64",
        cpu_features=("ssse3",),
        shares=3072,
        memory_kib=6 * 1024 * 1024,
        disks=(
            DiskDevice("sda", "scsi", "disk", pool="default-pool", volume="vd-root.qcow2"),
            DiskDevice(
                "sdb",
                "scsi",
                "cdrom",
                path="/var/lib/images/ubuntu.iso",
                format="raw",
                readonly=True,
                boot_order=1,
            ),
        ),
        nic=Nic("52:54:00:12:34:56", "default"),
        kernel_boot=None,
        metadata=METADATA,
        title="VirtualMachine/default/linux-vm",
    )
    return base.__class__(**{**base.__dict__, **changes})


@pytest.fixture
def connection() -> libvirt.virConnect:
    conn = open_connection(f"test://{HOST_XML}")
    yield conn
    conn.close()


def test_rendered_domain_matches_the_golden_file() -> None:
    golden = GOLDEN / "linux-vm.default.xml"
    rendered = render_domain(spec()) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered, encoding="utf-8")
    assert rendered == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"cpu_mode": "host-model", "cpu_model": None, "cpu_features": ()},
        {"cpu_mode": "host-passthrough", "cpu_model": None, "cpu_features": (), "vcpus": 4},
        {"nic": None, "disks": ()},
        {"kernel_boot": KernelBoot("/boot/vmlinuz", "/boot/initrd.img", "console=ttyS0")},
        {"vcpus": 1, "sockets": 1, "max_cores_per_socket": 1, "shares": 102},
    ],
)
def test_defined_domain_reads_back_as_the_facts_it_was_rendered_from(
    connection: libvirt.virConnect, variant: dict[str, object]
) -> None:
    wanted = spec(**variant)
    domain = connection.defineXML(render_domain(wanted))
    view = parse_definition(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert view.facts == wanted.facts()
    assert view.metadata == METADATA


def test_started_domain_live_view_has_the_metadata(connection: libvirt.virConnect) -> None:
    domain = connection.defineXML(render_domain(spec()))
    domain.create()
    live = parse_definition(domain.XMLDesc(0))
    assert live.metadata == METADATA
    assert live.facts.vcpus == 6


def test_a_domain_without_our_metadata_is_not_ours(connection: libvirt.virConnect) -> None:
    # The test driver's own domain `test`: never ours.
    view = parse_definition(connection.lookupByName("test").XMLDesc(0))
    assert view.metadata is None


def test_unreachable_uri_names_the_uri() -> None:
    with pytest.raises(LibvirtUnavailable, match=re.escape("test:///nonexistent-file.xml")):
        open_connection("test:///nonexistent-file.xml")
