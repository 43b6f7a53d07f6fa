"""A volume whose file was removed behind libvirt's back (an operator's `rm`, a cleanup
script) stays in the pool's listing until the pool is refreshed, and asking it for its
size fails: a pass must not die of it, every pass after it included. Found by
bench/evacuation.py, whose cleanup removes files directly."""

from __future__ import annotations

import pytest

from reconciler.libvirt.observe import Observer

from .fleet import IMAGES, Fleet
from .fleet_guests import create_qcow2

pytestmark = pytest.mark.e2e


def test_a_volume_removed_behind_libvirts_back_is_no_longer_seen(fleet: Fleet) -> None:
    # given a volume of host A's pool, listed by libvirt, whose file is then removed
    conn = fleet.connections[0]
    name = fleet.new_name()
    create_qcow2(fleet.a, name, 16)
    pool = conn.storagePoolLookupByName("default")
    pool.refresh(0)
    assert f"{name}.qcow2" in pool.listVolumes()
    fleet.a.outside(f"{IMAGES}/{name}.qcow2").unlink()
    # when the host observes its pool
    volumes = Observer(conn).volumes("default")
    # then the observation succeeds without the volume, and libvirt no longer lists it
    assert f"{name}.qcow2" not in volumes
    assert f"{name}.qcow2" not in pool.listVolumes()
