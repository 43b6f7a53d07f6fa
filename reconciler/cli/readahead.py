"""The host read while the manifests load: a one-shot pass's first observation, early.

`reconciler plan` and `apply` read the manifests (Python's work) and then the host (a
call to libvirt per domain and per volume, mostly waiting for libvirtd). Nothing of
the one needs the other, so the host is read in a thread meanwhile: libvirt's calls
let go of the interpreter while they wait. At 100 VMs that is some 300 calls, about
a tenth of a no-op apply.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence

from reconciler.engine.devices.storage import ImageSourceFacts
from reconciler.engine.network.addressing import NetworkFacts
from reconciler.libvirt.observe import Observer
from reconciler.model.domain import ObservedDomain, VolumeFacts


class ReadAhead:
    """The pass's DomainSource: the first read of the domains, and of `pool`'s volumes,
    are the ones begun in a thread at construction; every other read is the observer's.
    An error of the early read is raised where the pass reads, as it would have been."""

    def __init__(self, observer: Observer, pool: str) -> None:
        self._observer = observer
        self._pool = pool
        self._domains: Mapping[str, ObservedDomain] | None = None
        self._volumes: Mapping[str, VolumeFacts] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = threading.Thread(
            target=self._read, name="read-ahead", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        try:
            self._domains = self._observer.observe()
            self._volumes = self._observer.volumes(self._pool)
        except BaseException as error:  # raised again where the pass reads
            self._error = error

    def wait(self) -> None:
        """Until the early read is over; what it found is kept for the pass."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def observe(self) -> Mapping[str, ObservedDomain]:
        self.wait()
        if self._error is not None:
            error, self._error, self._volumes = self._error, None, None
            raise error
        if self._domains is not None:
            domains, self._domains = self._domains, None
            return domains
        return self._observer.observe()

    def volumes(self, pool: str) -> Mapping[str, VolumeFacts]:
        self.wait()
        if self._volumes is not None and pool == self._pool and self._domains is None:
            volumes, self._volumes = self._volumes, None
            return volumes
        return self._observer.volumes(pool)

    def refresh(self, names: Collection[str]) -> Mapping[str, ObservedDomain | None]:
        self.wait()
        return self._observer.refresh(names)

    def network(self, name: str) -> NetworkFacts | None:
        self.wait()
        return self._observer.network(name)

    def image_source(self, path: str, directories: Sequence[str]) -> ImageSourceFacts:
        self.wait()
        return self._observer.image_source(path, directories)
