"""The daemon's collections between passes (daemon/collector.py): what a pass leaves as
garbage is reclaimed after it, and what was kept and later dropped is reclaimed at the
next full collection, so a long-running daemon does not grow."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from reconciler.daemon.collector import PassCollector


class Cycle:
    """An object only the collector can reclaim: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session is not frozen


def test_the_cycles_a_pass_leaves_are_reclaimed_after_it() -> None:
    collector = PassCollector(full_every=100)
    garbage = Cycle()
    reference = weakref.ref(garbage)
    del garbage

    collector.after_pass()

    assert reference() is None


def test_what_outlived_a_pass_is_frozen_until_the_full_collection() -> None:
    # given an object kept through a pass (a loaded manifest, a report's line)
    collector = PassCollector(full_every=3)
    kept = [Cycle()]
    reference = weakref.ref(kept[0])
    collector.after_pass()
    # when it is dropped later, as garbage the ordinary collections do not walk
    kept.clear()
    gc.collect()
    collector.after_pass()
    assert reference() is not None
    # then the full collection every few passes reclaims it
    collector.after_pass()
    assert reference() is None


def test_a_pass_collects_rarely_and_leaves_the_collector_as_it_was() -> None:
    # given the process's thresholds
    collector = PassCollector(full_every=100)
    before = gc.get_threshold()
    # when a pass runs, then its young collections wait for many more new objects
    with collector.during_pass():
        assert gc.get_threshold()[0] >= 100_000
        garbage = Cycle()
        reference = weakref.ref(garbage)
        del garbage
    # and after it the thresholds are as they were, and its cycles are reclaimed
    assert gc.get_threshold() == before
    collector.after_pass()
    assert reference() is None
