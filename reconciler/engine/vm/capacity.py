"""The host's guaranteed CPU: what the VMs running here hold, and whether one more fits.

A VM is started only when the share its class guarantees (requestedCores, dvp-api.md
§2.4) fits in what the running VMs leave of the host's capacity; otherwise it waits
in Pending with Running False (InsufficientResources). Values only: a pass starts
from `capacity_in_use` and threads the Capacity each admission returns to the next VM.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from reconciler.model.cpu import millicores_of
from reconciler.model.domain import ObservedDomain


@dataclass(frozen=True)
class Capacity:
    total: int
    used: int = 0

    def admit(self, millicores: int) -> Capacity | str:
        """The capacity with `millicores` more in use, or why the share does not fit."""
        free = self.total - self.used
        if millicores <= free:
            return Capacity(self.total, self.used + millicores)
        return (
            f"needs {millicores}m of guaranteed CPU but only {max(free, 0)}m of"
            f" {self.total}m are free on this host ({millicores - max(free, 0)}m missing)"
        )


def capacity_in_use(
    total: int, domains: Mapping[str, ObservedDomain], leaving: Collection[str]
) -> Capacity:
    """The host's capacity with the shares of its running VMs in use, but for the
    domains this pass undefines (`leaving`): what they free admits VMs in the same pass."""
    used = 0
    for name, observed in domains.items():
        if name in leaving:
            continue
        if observed.state.active and observed.live and observed.live.metadata:
            used += millicores_of(observed.live.metadata.spec)
    return Capacity(total, used)
