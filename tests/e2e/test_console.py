"""`reconciler console`: a terminal attached to a running guest's serial console on libvirtd.

libvirt's test driver has no consoles (virDomainOpenConsole is not supported there), so
the byte copying is tested here: the command runs in its own process with a real
pseudo-terminal as its terminal, the tiny guest writes to and reads from its ttyS0
(driven through the guest agent), and ^] ends the session. One domain serves the
module: a start costs seconds.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass

import libvirt
import pytest

from .conftest import REPO, E2ESession
from .lab import TestGuest, agent_command, remove_domains, tiny_domain_xml, wait_for_agent

VM = "console"
EXPECT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RunningGuest:
    domain: libvirt.virDomain
    namespace: str


@pytest.fixture(scope="module")
def running_guest(
    system_conn: libvirt.virConnect, e2e_session: E2ESession, guest: TestGuest
) -> Iterator[RunningGuest]:
    namespace = e2e_session.new_name()
    name = f"{VM}.{namespace}"
    # The default serial device of the tiny domain is a pty: what openConsole attaches to,
    # and what the engine renders for every VM (SPEC §5).
    domain = system_conn.defineXML(tiny_domain_xml(name, guest))
    try:
        domain.create()
        wait_for_agent(domain)
        yield RunningGuest(domain, namespace)
    finally:
        remove_domains(system_conn, lambda candidate: candidate == name)


def guest_shell(domain: libvirt.virDomain, script: str) -> None:
    """Start `sh -c script` in the guest; it runs on while this returns."""
    agent_command(domain, "guest-exec", path="/bin/sh", arg=["-c", script])


class Terminal:
    """The controlling side of a pseudo-terminal whose other side the command uses."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.seen = b""

    def expect(self, pattern: bytes, timeout: float = EXPECT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{pattern!r} not seen on the terminal; it shows {self.seen!r}"
                )
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # EIO: the command closed its side
                    time.sleep(0.05)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@contextlib.contextmanager
def console_command(
    guest: RunningGuest, *extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], Terminal]]:
    terminal = Terminal()
    command = [sys.executable, "-m", "reconciler", "console", VM, "-n", guest.namespace]
    process = subprocess.Popen(
        [*command, "--libvirt-uri", "qemu:///system", *extra],
        stdin=terminal.slave,
        stdout=terminal.slave,
        stderr=terminal.slave,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        yield process, terminal
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        terminal.close()


def test_guest_output_and_typed_input_cross_the_console_and_ctrl_bracket_detaches(
    running_guest: RunningGuest,
) -> None:
    with console_command(running_guest) as (process, terminal):
        cooked = termios.tcgetattr(terminal.slave)
        terminal.expect(b"The escape sequence is ^]")

        guest_shell(running_guest.domain, "echo guest-says-hello >/dev/ttyS0")
        terminal.expect(b"guest-says-hello")
        guest_shell(running_guest.domain, "read line </dev/ttyS0; echo got:$line >/dev/ttyS0")
        time.sleep(0.5)  # let `read` open the tty
        terminal.type(b"ping\r")
        terminal.expect(b"got:ping")

        terminal.type(b"\x1d")
        assert process.wait(timeout=10) == 0
        terminal.expect(b"Disconnected from console console: detached")
        # The terminal is handed back as it was found, not left in raw mode.
        assert termios.tcgetattr(terminal.slave) == cooked


def test_a_console_held_by_someone_else_is_refused_and_force_takes_it_over(
    running_guest: RunningGuest, system_conn: libvirt.virConnect
) -> None:
    holder = system_conn.newStream(0)
    running_guest.domain.openConsole(None, holder, 0)
    try:
        refused = subprocess.run(
            [sys.executable, "-m", "reconciler", "console", VM, "-n", running_guest.namespace,
             "--libvirt-uri", "qemu:///system"],
            cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert refused.returncode == 1
        assert "someone else is attached" in refused.stderr and "--force" in refused.stderr

        with console_command(running_guest, "--force") as (process, terminal):
            terminal.expect(b"The escape sequence is ^]")
            marker = base64.b32encode(os.urandom(5)).decode().lower()
            guest_shell(running_guest.domain, f"echo forced-{marker} >/dev/ttyS0")
            terminal.expect(f"forced-{marker}".encode())
            terminal.type(b"\x1d")
            assert process.wait(timeout=10) == 0
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            holder.abort()


def test_a_domain_that_stops_ends_the_session_with_exit_1(
    running_guest: RunningGuest,
) -> None:
    """Runs last: it stops the module's domain."""
    with console_command(running_guest) as (process, terminal):
        terminal.expect(b"The escape sequence is ^]")

        running_guest.domain.destroy()

        assert process.wait(timeout=20) == 1
        terminal.expect(b"console was closed by the host")
        assert re.search(rb"Disconnected from console console", terminal.seen)
