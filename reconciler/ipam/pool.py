"""The usable addresses of `virtualMachineCIDRs` as one index space 0..size-1, and a
next-free lookup over it that costs near O(1) however full the pool is."""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable

from reconciler.rules.conflicts import ip_range_problem


def _normalised(cidrs: Iterable[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
    """Sorted, with CIDRs nested in another dropped: the result must not depend on the
    order the configuration lists them in, and no address may get two indices."""
    kept: list[ipaddress.IPv4Network] = []
    for cidr in sorted(set(cidrs), key=lambda c: (int(c.network_address), c.prefixlen)):
        # Sorted by start then size, a CIDR can only be nested in the last one kept.
        if kept and cidr.subnet_of(kept[-1]):
            continue
        kept.append(cidr)
    return kept


class AddressPool:
    def __init__(
        self,
        cidrs: Iterable[ipaddress.IPv4Network],
        reserved: Iterable[ipaddress.IPv4Address] = (),
    ) -> None:
        self.cidrs = _normalised(cidrs)
        self.reserved = frozenset(int(a) for a in reserved)
        # Per CIDR: first usable address and the index it gets. Network and broadcast
        # are never usable (§6.3 IsInsideOfRange), so /31 and /32 contribute nothing.
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._bases: list[int] = []
        size = 0
        for cidr in self.cidrs:
            first = int(cidr.network_address) + 1
            last = int(cidr.broadcast_address) - 1
            if last < first:
                continue
            self._starts.append(first)
            self._ends.append(last)
            self._bases.append(size)
            size += last - first + 1
        self.size = size

    def index(self, address: int) -> int | None:
        """The index of a usable (not necessarily unreserved) address, else None."""
        at = bisect.bisect_right(self._starts, address) - 1
        if at < 0 or address > self._ends[at]:
            return None
        return self._bases[at] + address - self._starts[at]

    def address(self, index: int) -> int:
        at = bisect.bisect_right(self._bases, index) - 1
        return self._starts[at] + index - self._bases[at]

    def leasable(self, address: int) -> bool:
        return address not in self.reserved and self.index(address) is not None

    def problem(self, address: ipaddress.IPv4Address) -> str | None:
        """Why nobody may lease `address`, or None."""
        if int(address) in self.reserved:
            return f"{address} is reserved (the network's gateway or another host address)"
        if self.index(int(address)) is not None:
            return None
        problem = ip_range_problem(str(address), self.cidrs)
        # ip_range_problem only misses when a nested CIDR's edge lies inside a bigger one.
        return problem or f"{address} is not a usable address of the pool"


class FreeIndex:
    """Taken indices with "next free index at or after i" in amortised near-constant time:
    a union-find whose taken index points past itself (path-compressed), kept in a dict so
    a /8 costs nothing until used. Plain probing would make a nearly full pool quadratic."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._next: dict[int, int] = {}
        self.taken = 0

    def take(self, index: int) -> None:
        if index not in self._next:
            self._next[index] = index + 1
            self.taken += 1

    def is_taken(self, index: int) -> bool:
        return index in self._next

    def _find(self, index: int) -> int:
        """The first free index >= `index`, or `size` when none is left up to the end."""
        root = index
        nexts = self._next
        while root in nexts:
            root = nexts[root]
        while index != root:  # path compression
            nexts[index], index = root, nexts[index]
        return root

    def next_free(self, start: int) -> int | None:
        """The first free index at or after `start`, wrapping around; None when full."""
        if self.taken >= self.size:
            return None
        found = self._find(start)
        if found >= self.size:
            found = self._find(0)
        return found if found < self.size else None
