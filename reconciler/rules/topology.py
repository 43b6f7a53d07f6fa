"""CPU topology from the core count (dvp-api.md §5), driven by policies/cpu-topology.yaml."""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass

from reconciler.memo import IdentityMemo
from reconciler.policies import TopologyBand, TopologyPolicy


@dataclass(frozen=True)
class Topology:
    sockets: int
    cores_per_socket: int
    max_cores_per_socket: int

    @property
    def cores(self) -> int:
        return self.sockets * self.cores_per_socket


class TopologyError(ValueError):
    """A core count that cannot be laid out; the message names the nearest allowed counts."""


def _band(policy: TopologyPolicy, cores: int) -> TopologyBand | None:
    for band in policy.bands:
        if band.cores.min <= cores <= band.cores.max:
            return band
    return None


def _fits(band: TopologyBand, cores: int) -> bool:
    return cores % band.step == 0 and cores % band.sockets == 0


@functools.cache
def allowed_core_counts(policy: TopologyPolicy) -> tuple[int, ...]:
    counts = []
    for cores in range(1, policy.max_cores + 1):
        band = _band(policy, cores)
        if band is not None and _fits(band, cores):
            counts.append(cores)
    return tuple(counts)


def nearest_allowed(policy: TopologyPolicy, cores: int) -> list[int]:
    counts = allowed_core_counts(policy)
    index = bisect.bisect_left(counts, cores)
    nearest = []
    if index > 0:
        nearest.append(counts[index - 1])
    if index < len(counts) and counts[index] != cores:
        nearest.append(counts[index])
    return nearest


# The layouts of each policy by core count, or the error's message: every VM of a pass
# asks, several times, for one of a handful of counts.
_LAYOUTS: IdentityMemo[dict[int, Topology | str]] = IdentityMemo(limit=16)


def topology_for(policy: TopologyPolicy, cores: int) -> Topology:
    """Sockets and cores per socket for a core count, or a TopologyError saying why not."""
    layouts = _LAYOUTS.get(policy)
    if layouts is None:
        layouts = _LAYOUTS.put((policy,), {})
    found = layouts.get(cores)
    if found is None:
        try:
            found = _layout(policy, cores)
        except TopologyError as error:
            found = str(error)
        layouts[cores] = found
    if isinstance(found, str):
        raise TopologyError(found)
    return found


def _layout(policy: TopologyPolicy, cores: int) -> Topology:
    band = _band(policy, cores) if cores <= policy.max_cores else None
    if band is None or not _fits(band, cores):
        nearest = " or ".join(str(n) for n in nearest_allowed(policy, cores))
        if cores > policy.max_cores:
            reason = f"number of cores should not exceed {policy.max_cores}"
        elif band is None:
            reason = f"{cores} cores is outside every band of the topology policy"
        else:
            reason = (
                f"{cores} cores cannot be spread evenly over {band.sockets} sockets:"
                f" between {band.cores.min} and {band.cores.max} cores the count must be"
                f" a multiple of {band.step}"
            )
        raise TopologyError(f"{reason}; nearest allowed: {nearest}")
    return Topology(
        sockets=band.sockets,
        cores_per_socket=-(-cores // band.sockets),
        max_cores_per_socket=band.max_cores_per_socket,
    )
