"""How far a long piece of work is: a line for whoever waits on it, only once it is long.

A pass over many VMs, a repository of thousands of files, a large image import: each
can take more than a few seconds, and silence looks like a hang. Short work says
nothing. Two audiences, one rule (say it once the work has taken `delay` seconds,
then at most every `interval` seconds):

- a terminal (`for_stream` on a TTY): one line on stderr that overwrites itself a few
  times per second after 2 s, erased when the work ends or other output comes;
- a log (the daemon under systemd, a command whose stderr is a file): a line every
  10 s of long work, as journald keeps every line ("pass: 340/1000 VMs planned, 12 s").

Work reports itself through `Progress.update(stage, done, total)`, or through
`Progress.step` handed down as a plain callback: the engine, which does no I/O, takes
such a callback from its caller. The clock is injected, so tests drive time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TextIO

Clock = Callable[[], float]
# (stage, done, total): "VMs planned", 340, 1000. A total of 0 is unknown.
Step = Callable[[str, int, int], None]

TERMINAL_DELAY_SECONDS = 2.0
TERMINAL_INTERVAL_SECONDS = 0.25
LOG_DELAY_SECONDS = 10.0
LOG_INTERVAL_SECONDS = 10.0


def ignore_step(_stage: str, _done: int, _total: int) -> None:
    """The Step of a caller that shows no progress."""


class Progress:
    """One long piece of work (a pass, a command), in stages; says how far it is once it
    has run `delay` seconds, then at most every `interval`."""

    def __init__(
        self,
        what: str,
        show: Callable[[str], None],
        *,
        delay: float,
        interval: float,
        clock: Clock = time.monotonic,
        clear: Callable[[], None] | None = None,
    ) -> None:
        self._what = what
        self._show = show
        self._clear = clear
        self._delay = delay
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last_shown: float | None = None

    def update(self, stage: str, done: int, total: int = 0) -> None:
        """Where the work is now: `done` of `total` (0: unknown) in `stage`."""
        now = self._clock()
        elapsed = now - self._started
        if elapsed < self._delay:
            return
        if self._last_shown is not None and now - self._last_shown < self._interval:
            return
        self._last_shown = now
        count = f"{done}/{total}" if total else f"{done}"
        self._show(f"{self._what}: {count} {stage}, {elapsed:.0f} s")

    def step(self, stage: str, done: int, total: int) -> None:
        """update() as a Step callback."""
        self.update(stage, done, total)

    def interrupt(self) -> None:
        """Other output comes: a terminal's line is erased first (the next update draws it
        again); a log's lines stay."""
        if self._clear is not None and self._last_shown is not None:
            self._clear()
            self._last_shown = None

    def finish(self) -> None:
        """The work is over: nothing of the progress line is left on a terminal."""
        self.interrupt()


def for_stream(what: str, stream: TextIO, clock: Clock = time.monotonic) -> Progress:
    """Progress for a command: a self-overwriting line when `stream` is a terminal, else
    a line every LOG_INTERVAL_SECONDS (a CI job's log)."""
    if _is_terminal(stream):

        def draw(line: str) -> None:
            # \r and "erase to the end of the line": the line overwrites the last one.
            stream.write(f"\r{line}\x1b[K")
            stream.flush()

        def erase() -> None:
            stream.write("\r\x1b[K")
            stream.flush()

        return Progress(
            what,
            draw,
            delay=TERMINAL_DELAY_SECONDS,
            interval=TERMINAL_INTERVAL_SECONDS,
            clock=clock,
            clear=erase,
        )

    def line(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    return Progress(what, line, delay=LOG_DELAY_SECONDS, interval=LOG_INTERVAL_SECONDS, clock=clock)


def for_log(what: str, logger: logging.Logger, clock: Clock = time.monotonic) -> Progress:
    """Progress for the daemon: a log line every LOG_INTERVAL_SECONDS of long work."""
    return Progress(
        what,
        lambda line: logger.info("%s", line),
        delay=LOG_DELAY_SECONDS,
        interval=LOG_INTERVAL_SECONDS,
        clock=clock,
    )


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or no file behind it
        return False
