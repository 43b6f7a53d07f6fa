"""Many read-only libvirt calls made a few at a time instead of one after the other.

A pass reads each domain's definition and each volume's size: one round trip to
libvirtd per call, 200 at 100 VMs, a third of a one-shot no-op pass's own time on a
real daemon. The daemon answers calls in worker threads of its own and libvirt-python
lets go of the interpreter lock while it waits, so a few threads asking at once
overlap their round trips. Each call's error is raised where its result is used, in
the caller's order, as if the calls had been made there one by one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

# Callers at once, this thread included: more overlap no further on a small host.
THREADS = 4
# Fewer calls than this are made here, one by one: a thread costs more than they wait.
AT_LEAST = 16


class Answer(Generic[T]):
    """One call's result, or the error it raised."""

    __slots__ = ("_error", "_value")

    def __init__(self) -> None:
        self._value: T | None = None
        self._error: Exception | None = None

    def take(self, call: Callable[[], T]) -> None:
        try:
            self._value = call()
        except Exception as error:  # raised again by value(), in the caller's thread
            self._error = error

    def value(self) -> T:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when there is no error


def together(calls: Sequence[Callable[[], T]]) -> list[Answer[T]]:
    """Each call's answer, in order; the calls are made THREADS at a time."""
    answers: list[Answer[T]] = [Answer() for _ in calls]
    # One index after another to whichever thread asks next (a range iterator's next
    # is atomic), so a slow call holds up only its own thread.
    order = iter(range(len(calls)))

    def work() -> None:
        for index in order:
            answers[index].take(calls[index])

    helpers = []
    if len(calls) >= AT_LEAST:
        helpers = [threading.Thread(target=work, daemon=True) for _ in range(THREADS - 1)]
    for helper in helpers:
        helper.start()
    work()
    for helper in helpers:
        helper.join()
    return answers
