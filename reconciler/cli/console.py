"""`reconciler console NAME`: the VM's serial console, as `d8 v console` and `virsh console`.

The domain's first serial console is opened as a libvirt stream (virDomainOpenConsole)
and bytes are copied both ways by callbacks on libvirt's event loop, as virsh does:
the stream is non-blocking, so a guest that floods its console never starves the
keyboard, and ^] (0x1d, the escape of both tools) detaches at once.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.api import DEFAULT_NAMESPACE
from reconciler.cli.common import read_config

if TYPE_CHECKING:
    import libvirt

EXIT_FAILED = 1
ESCAPE = 0x1D  # ^]
CHUNK = 64 * 1024

# Why a session ended, and whether the user chose it (exit 0) or the host did (exit 1).
DETACHED = "detached"
INPUT_ENDED = "input ended"
CLOSED = "the console was closed by the host"
INTERRUPTED = "interrupted"
USER_ENDINGS = frozenset({DETACHED, INPUT_ENDED, INTERRUPTED})


class ConsoleError(Exception):
    """The console cannot be attached; the message says why and what to do."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "console",
        help="attach to a VM's serial console (^] detaches)",
        description="Attach the terminal to the serial console of VM NAME (libvirt domain"
        " NAME.NAMESPACE), as `d8 v console` does. Press Ctrl+] to detach.",
    )
    parser.add_argument("name", metavar="NAME", help="the VirtualMachine")
    parser.add_argument("-n", "--namespace", default=DEFAULT_NAMESPACE, metavar="NAMESPACE")
    parser.add_argument(
        "--libvirt-uri", metavar="URI", help="default: the config's, else qemu:///system"
    )
    parser.add_argument(
        "--force", action="store_true", help="take the console over from whoever holds it"
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="the daemon's configuration (libvirt URI)"
    )
    parser.set_defaults(run=run)


def split_at_escape(data: bytes) -> tuple[bytes, bool]:
    """The bytes to send before ^], and whether ^] was typed (what follows it is dropped)."""
    index = data.find(ESCAPE)
    return (data, False) if index < 0 else (data[:index], True)


def run(args: argparse.Namespace) -> int:
    config = read_config(args)
    uri = args.libvirt_uri or (config.libvirt_uri if config else "qemu:///system")
    try:
        connection, stream = open_console(uri, args.name, args.namespace, force=args.force)
    except ConsoleError as error:
        print(f"reconciler: {error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        print(
            f"Successfully connected to {args.name} console. The escape sequence is ^]",
            file=sys.stderr,
            flush=True,
        )
        stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
        with raw_terminal(stdin):
            ending = ConsoleRelay(stream, stdin, stdout).run()
    finally:
        with contextlib.suppress(Exception):
            connection.close()
    print(f"\nDisconnected from {args.name} console: {ending}", file=sys.stderr)
    return 0 if ending in USER_ENDINGS else EXIT_FAILED


def open_console(
    uri: str, name: str, namespace: str, *, force: bool
) -> tuple[libvirt.virConnect, libvirt.virStream]:
    """A connection and the console stream of domain NAME.NAMESPACE (SPEC §5)."""
    # Imported here so that the other commands run where libvirt is not installed.
    import libvirt

    from reconciler.libvirt.connection import LibvirtUnavailable, open_connection
    from reconciler.libvirt.events import start_event_loop

    # Stream events come through the event loop, which must exist before the connection.
    start_event_loop()
    try:
        connection = open_connection(uri)
    except LibvirtUnavailable as error:
        raise ConsoleError(str(error)) from None
    domain_name = f"{name}.{namespace}"
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
    return connection, stream


def _console_failure(
    error: libvirt.libvirtError, domain_name: str, namespace: str, name: str, uri: str
) -> str:
    import libvirt

    if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
        return (
            f"VirtualMachine {namespace}/{name} has no domain {domain_name} on {uri}:"
            " is it in the repository and placed on this host?"
        )
    text = str(error)
    if "Active console session" in text:
        return f"someone else is attached to the console of {domain_name}; --force takes it over"
    return f"cannot open the console of {domain_name}: {text}"


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode while attached, so ^C, ^Z and the arrows reach the guest, not us."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class ConsoleRelay:
    """Copies bytes between a terminal's file descriptors and a console stream.

    Every callback runs on libvirt's event-loop thread, and only there is the stream
    touched, ended included; the caller's thread just waits for the ending.
    """

    def __init__(self, stream: libvirt.virStream, stdin: int, stdout: int) -> None:
        self._stream = stream
        self._stdin = stdin
        self._stdout = stdout
        self._outgoing = bytearray()
        self._input_ended = False
        self._stdin_watch = -1
        self._ending = ""
        self._ended = threading.Event()

    def run(self) -> str:
        """Relay until ^], the end of input or the console's end; returns which ended it."""
        import libvirt

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
        import libvirt

        events = libvirt.VIR_STREAM_EVENT_READABLE
        if self._outgoing:
            events |= libvirt.VIR_STREAM_EVENT_WRITABLE
        return int(events | libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP)

    def _on_stream(self, _stream: object, events: int, _opaque: object) -> None:
        import libvirt

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
        import libvirt

        if self._ending:
            return
        try:
            data = os.read(self._stdin, CHUNK)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EINTR):
                return
            data = b""
        typed, detach = split_at_escape(data)
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
        import libvirt

        libvirt.virEventRemoveTimeout(timer)
        if not self._ending:
            self._end(INTERRUPTED)

    def _end(self, ending: str) -> None:
        import libvirt

        self._ending = ending
        if self._stdin_watch >= 0:
            libvirt.virEventRemoveHandle(self._stdin_watch)
            self._stdin_watch = -1
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.eventRemoveCallback()
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.abort()
        self._ended.set()
