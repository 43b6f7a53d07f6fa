"""A guest with a provisioning seed CD-ROM migrates with its disks copied (issue 14).

libvirt copies only writable disks and refuses to copy a read-only one, so a seed
volume that is not on the destination would fail the migration. The runner
(reconciler/libvirt/migrations.py) ejects the seed from the running instance first;
the next-boot definition keeps it, and a migration that fails puts it back.
"""

from __future__ import annotations

import libvirt
import pytest

from reconciler.libvirt.migrate import MigrationRequest
from reconciler.libvirt.migrations import Migrations
from reconciler.model.names import seed_volume_name

from .fleet import IMAGES, Fleet
from .fleet_guests import boot_id, create_qcow2, disk_xml, guest_domain_xml, remove_guest
from .lab import wait_for_agent

pytestmark = pytest.mark.e2e


def guest_with_seed(fleet: Fleet) -> tuple[libvirt.virDomain, str]:
    """A guest on A with a disk and a seed CD-ROM, a volume of A's pool as the
    reconciler names and attaches seeds."""
    name = fleet.new_name()
    seed = seed_volume_name("fleet", name, b"user-data")
    path = fleet.a.outside(f"{IMAGES}/{seed}")
    path.write_bytes(b"\0" * 1024 * 1024)
    path.chmod(0o644)
    pool = fleet.connections[0].storagePoolLookupByName("default")
    pool.refresh()
    cdrom = (
        "<disk type='volume' device='cdrom'><driver name='qemu' type='raw'/>"
        f"<source pool='default' volume='{seed}'/><target dev='sda' bus='sata'/>"
        "<readonly/></disk>"
    )
    disk = disk_xml(create_qcow2(fleet.a, name, 64)) + cdrom
    domain = fleet.connections[0].defineXML(guest_domain_xml(name, fleet.guest, disk))
    domain.create()
    wait_for_agent(domain)
    return domain, seed


def migrate(fleet: Fleet, domain: libvirt.virDomain, uri: str) -> Migrations:
    runner = Migrations(fleet.connections[0], blocking=True)
    runner.start(domain.name(), f"fleet/evict-{domain.name()}", "hostb", MigrationRequest(uri))
    return runner


def test_a_guest_with_a_seed_cdrom_migrates_and_keeps_the_seed_for_its_next_boot(
    fleet: Fleet,
) -> None:
    domain, seed = guest_with_seed(fleet)
    name = domain.name()
    boot = boot_id(domain)
    try:
        # when it migrates with its disks copied (the seed exists only on A)
        runner = migrate(fleet, domain, fleet.b.peer_uri)
        # then it runs on B, the same boot; the running instance has no seed media, the
        # next-boot definition still names the seed (B's host makes the volume again)
        assert runner.failures() == {}
        on_b = fleet.connections[1].lookupByName(name)
        assert on_b.isActive() and boot_id(on_b) == boot
        assert seed not in on_b.XMLDesc(0)
        assert seed in on_b.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        # and A's copy of the seed is gone with the guest
        assert not fleet.a.outside(f"{IMAGES}/{seed}").exists()
    finally:
        remove_guest(fleet, name)
        fleet.a.outside(f"{IMAGES}/{seed}").unlink(missing_ok=True)


def test_a_migration_that_fails_puts_the_seed_back(fleet: Fleet) -> None:
    domain, seed = guest_with_seed(fleet)
    try:
        # when the migration fails (no libvirtd answers at that address)
        runner = migrate(fleet, domain, "qemu+tcp://10.77.0.9/system")
        # then the guest runs on A with its seed media in place
        assert list(runner.failures()) == [f"fleet/evict-{domain.name()}"]
        assert domain.isActive()
        assert seed in domain.XMLDesc(0)
    finally:
        remove_guest(fleet, domain.name())
        fleet.a.outside(f"{IMAGES}/{seed}").unlink(missing_ok=True)
