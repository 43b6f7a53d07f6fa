"""Why a pass should run: requests from every trigger, coalesced into one pass at a time."""

from __future__ import annotations

import threading
from collections import Counter


class Triggers:
    """Thread-safe. Requests arriving during a pass are merged into the next one."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending: Counter[str] = Counter()
        self._stopping = False

    def request(self, reason: str) -> None:
        with self._condition:
            self._pending[reason] += 1
            self._condition.notify_all()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wait(self, timeout: float | None = None) -> Counter[str] | None:
        """The reasons gathered since the last call; None when stopping (or on timeout)."""
        with self._condition:
            self._condition.wait_for(lambda: self._pending or self._stopping, timeout)
            if self._stopping or not self._pending:
                return None
            reasons, self._pending = self._pending, Counter()
            return reasons
