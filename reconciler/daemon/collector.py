"""The daemon's garbage collection: what outlives a pass is frozen, out of the way of
the next passes' collections.

A host of a fleet-sized repository keeps tens of thousands of objects from pass to
pass (the revision's manifests, what each report said). Python's collector walks
every tracked object at each full collection, and a pass allocates enough to start
several: with 10,000 VMs in the repository, walking what the earlier passes kept
was a third of a pass that had nothing to do. After each pass the cycles it left
are collected (only the objects made since the last freeze are walked) and what
remains is frozen (gc.freeze): later collections pass it by. Frozen objects that
become garbage as a cycle are not reclaimed until an unfreeze, so every
FULL_EVERY_PASSES passes everything is unfrozen and collected once.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# At the default interval of 60 s, about every 100 minutes; a full collection of a
# 10,000-VM repository's objects takes some hundreds of milliseconds.
FULL_EVERY_PASSES = 100
# Within a pass, a young collection only after this many new objects (Python's is 700).
# A pass after a push at 10,000 VMs makes a few lists and maps the size of the revision
# (its objects, its tree's blobs, the reports' summaries) and each young collection
# walked them, 5-9 ms, to find a handful of cycles that after_pass collects anyway.
PASS_THRESHOLD = 100_000


class PassCollector:
    def __init__(self, full_every: int = FULL_EVERY_PASSES) -> None:
        self._full_every = full_every
        self._since_full = 0

    @contextmanager
    def during_pass(self) -> Iterator[None]:
        """A pass: young collections are made rarely until after_pass collects."""
        threshold = gc.get_threshold()
        gc.set_threshold(max(PASS_THRESHOLD, threshold[0]), *threshold[1:])
        try:
            yield
        finally:
            gc.set_threshold(*threshold)

    def after_pass(self) -> None:
        self._since_full += 1
        if self._since_full >= self._full_every:
            self._since_full = 0
            gc.unfreeze()
        gc.collect()
        gc.freeze()
