"""One storage job at a time per pool.

libvirt refuses some jobs on a pool while another runs in it ("pool has
asynchronous jobs running" on refresh, "volume is still being allocated" on a
clone of a volume being built), so every function of this package takes the
pool's lock for its whole call. Reentrant, so one of them may call another.
The lock is per process: the host runs one daemon.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import libvirt

_LOCKS: dict[tuple[str, str], threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _pool_key(pool: libvirt.virStoragePool) -> tuple[str, str]:
    # By host and pool UUID rather than by Python object: two lookups, or two
    # connections to the same libvirtd, give different objects for one pool.
    return str(pool.connect().getURI()), str(pool.UUIDString())


def _lock_of(pool: libvirt.virStoragePool) -> threading.RLock:
    key = _pool_key(pool)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = threading.RLock()
        return lock


@contextmanager
def pool_lock(pool: libvirt.virStoragePool) -> Iterator[None]:
    """Hold the pool's lock: no other storage job of this process runs in it meanwhile."""
    with _lock_of(pool):
        yield
