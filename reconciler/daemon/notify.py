"""systemd's notify protocol (sd_notify(3)): READY, WATCHDOG, STATUS, STOPPING.

A datagram per message to the socket named by $NOTIFY_SOCKET; a leading `@`
names an abstract socket. Without the variable (not under systemd) every call
is a no-op, so the daemon runs the same by hand.
"""

from __future__ import annotations

import os
import socket
import threading
import time


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self._address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *fields: str) -> bool:
        """Send `KEY=VALUE` lines; False when not under systemd or the socket is gone."""
        if self._socket is None:
            return False
        target = "\0" + self._address[1:] if self._address.startswith("@") else self._address
        try:
            # Never wait for the reader: a full queue must not stall a pass.
            self._socket.sendto("\n".join(fields).encode(), socket.MSG_DONTWAIT, target)
        except OSError:  # BlockingIOError included: that message is dropped
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *((f"STATUS={status}",) if status else ()))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")


def watchdog_interval_seconds() -> float | None:
    """Half of systemd's WatchdogSec for this process, as sd_watchdog_enabled(3) advises."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


class Heartbeat:
    """WATCHDOG=1 from a thread of its own, for as long as the daemon makes progress.

    A pass may legitimately take minutes (a guest's graceful shutdown), so the main
    loop cannot ping on time by itself; pinging unconditionally would hide a hung
    daemon. The main loop and every applied action call `beat()`; once nothing has
    beaten for `stall_seconds`, the pings stop and systemd restarts the service.
    """

    def __init__(self, notifier: Notifier, interval: float, stall_seconds: float = 900.0) -> None:
        self._notifier = notifier
        self._interval = interval
        self._stall = stall_seconds
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def beat(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if time.monotonic() - self._last < self._stall:
                self._notifier.watchdog()
