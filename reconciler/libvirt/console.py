"""A VM's serial console as a libvirt stream, copied to and from a terminal's descriptors.

The domain's first serial console is opened as a libvirt stream (virDomainOpenConsole)
and bytes are copied both ways by callbacks on libvirt's event loop, as virsh does:
the stream is non-blocking, so a guest that floods its console never starves the
keyboard, and the escape key detaches at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from reconciler.api import ObjectId
from reconciler.libvirt.connection import LibvirtUnavailable, open_connection
from reconciler.libvirt.events import start_event_loop
from reconciler.model import names

CHUNK = 64 * 1024

# Why a session ended, and whether the user chose it (exit 0) or the host did (exit 1).
DETACHED = "detached"
INPUT_ENDED = "input ended"
CLOSED = "the console was closed by the host"
INTERRUPTED = "interrupted"
USER_ENDINGS = frozenset({DETACHED, INPUT_ENDED, INTERRUPTED})


class ConsoleError(Exception):
    """The console cannot be attached; the message says why and what to do."""


@dataclass(frozen=True)
class AttachedConsole:
    """The connection and the console stream it carries; closing the connection ends both."""

    connection: libvirt.virConnect
    stream: libvirt.virStream

    def relay(
        self, stdin: int, stdout: int, split_input: Callable[[bytes], tuple[bytes, bool]]
    ) -> str:
        """Copy bytes until the session ends; returns why it ended (one of the endings above)."""
        return ConsoleRelay(self.stream, stdin, stdout, split_input).run()

    def close(self) -> None:
        # Called on the way out, often after the host already dropped the console:
        # nothing is left to report, and the terminal must be given back regardless.
        with contextlib.suppress(Exception):
            self.connection.close()


def open_console(uri: str, name: str, namespace: str, *, force: bool) -> AttachedConsole:
    """A connection and the console stream of domain NAME.NAMESPACE (SPEC §5)."""
    # Stream events come through the event loop, which must exist before the connection.
    start_event_loop()
    try:
        connection = open_connection(uri)
    except LibvirtUnavailable as error:
        raise ConsoleError(str(error)) from None
    domain_name = names.domain_name(ObjectId(names.VM_KIND, namespace, name))
    try:
        domain = connection.lookupByName(domain_name)
        if not domain.isActive():
            raise ConsoleError(
                f"VirtualMachine {namespace}/{name} (domain {domain_name}) is not running;"
                f" start it with `reconciler vm start {name} -n {namespace}`"
            )
        stream = connection.newStream(libvirt.VIR_STREAM_NONBLOCK)
        domain.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else 0)
    except libvirt.libvirtError as error:
        connection.close()
        raise ConsoleError(_console_failure(error, domain_name, namespace, name, uri)) from None
    except ConsoleError:
        connection.close()
        raise
    return AttachedConsole(connection, stream)


def _console_failure(
    error: libvirt.libvirtError, domain_name: str, namespace: str, name: str, uri: str
) -> str:
    if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
        return (
            f"VirtualMachine {namespace}/{name} has no domain {domain_name} on {uri}:"
            " is it in the repository and placed on this host?"
        )
    text = str(error)
    if "Active console session" in text:
        return f"someone else is attached to the console of {domain_name}; --force takes it over"
    return f"cannot open the console of {domain_name}: {text}"


class ConsoleRelay:
    """Copies bytes between a terminal's file descriptors and a console stream.

    Every callback runs on libvirt's event-loop thread, and only there is the stream
    touched, ended included; the caller's thread just waits for the ending.
    """

    def __init__(
        self,
        stream: libvirt.virStream,
        stdin: int,
        stdout: int,
        split_input: Callable[[bytes], tuple[bytes, bool]],
    ) -> None:
        self._stream = stream
        self._stdin = stdin
        self._stdout = stdout
        # The escape key is the terminal's business (cli/console.py): it decides which
        # typed bytes are sent and whether the user detached.
        self._split_input = split_input
        self._outgoing = bytearray()
        self._input_ended = False
        self._stdin_watch = -1
        self._ending = ""
        self._ended = threading.Event()

    def run(self) -> str:
        """Relay until ^], the end of input or the console's end; returns which ended it."""
        self._stream.eventAddCallback(self._stream_events(), self._on_stream, None)
        self._stdin_watch = libvirt.virEventAddHandle(
            self._stdin, libvirt.VIR_EVENT_HANDLE_READABLE, self._on_stdin, None
        )
        while True:
            try:
                self._ended.wait()
                return self._ending
            except KeyboardInterrupt:
                # Only without a terminal in raw mode does ^C arrive as a signal.
                libvirt.virEventAddTimeout(0, self._on_interrupt, None)

    def _stream_events(self) -> int:
        events = libvirt.VIR_STREAM_EVENT_READABLE
        if self._outgoing:
            events |= libvirt.VIR_STREAM_EVENT_WRITABLE
        return int(events | libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP)

    def _on_stream(self, _stream: object, events: int, _opaque: object) -> None:
        if self._ending:
            return
        try:
            if events & libvirt.VIR_STREAM_EVENT_READABLE:
                self._guest_to_terminal()
            if events & libvirt.VIR_STREAM_EVENT_WRITABLE and not self._ending:
                self._terminal_to_guest()
        except libvirt.libvirtError:
            self._end(CLOSED)
            return
        if not self._ending and events & (
            libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP
        ):
            self._end(CLOSED)
        elif not self._ending:
            # Listen for WRITABLE only while something waits to be sent: a stream is
            # almost always writable, and the loop would spin on it.
            self._stream.eventUpdateCallback(self._stream_events())

    def _guest_to_terminal(self) -> None:
        while not self._ending:
            data = self._stream.recv(CHUNK)
            if isinstance(data, int):  # -2: nothing more for now
                return
            if not data:
                self._end(CLOSED)
                return
            if not self._write_out(data):
                self._end(INPUT_ENDED)

    def _write_out(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._stdout, view) :]
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                return False  # the terminal is gone (EPIPE, EIO): nobody is reading
        return True

    def _on_stdin(self, _watch: int, _fd: int, _events: int, _opaque: object) -> None:
        if self._ending:
            return
        try:
            data = os.read(self._stdin, CHUNK)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EINTR):
                return
            data = b""
        typed, detach = self._split_input(data)
        self._outgoing += typed
        if not data:
            self._input_ended = True
            # At the end of input the descriptor stays readable: stop listening to it.
            libvirt.virEventRemoveHandle(self._stdin_watch)
            self._stdin_watch = -1
        try:
            self._terminal_to_guest()
        except libvirt.libvirtError:
            self._end(CLOSED)
            return
        if detach:
            self._end(DETACHED)
        elif not self._ending:
            self._stream.eventUpdateCallback(self._stream_events())

    def _terminal_to_guest(self) -> None:
        while self._outgoing:
            sent = self._stream.send(bytes(self._outgoing))
            if sent < 0:  # -2: the stream is full; WRITABLE will call again
                break
            del self._outgoing[:sent]
        if self._input_ended and not self._outgoing:
            self._end(INPUT_ENDED)

    def _on_interrupt(self, timer: int, _opaque: object) -> None:
        libvirt.virEventRemoveTimeout(timer)
        if not self._ending:
            self._end(INTERRUPTED)

    def _end(self, ending: str) -> None:
        self._ending = ending
        if self._stdin_watch >= 0:
            libvirt.virEventRemoveHandle(self._stdin_watch)
            self._stdin_watch = -1
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.eventRemoveCallback()
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.abort()
        self._ended.set()
