"""`reconciler console NAME`: what a user meets before any byte is copied.

libvirt's test driver cannot open consoles (virDomainOpenConsole: "this function is not
supported by the connection driver"), so here are the refusals, the escape key and the
terminal handling; the copying itself runs against a real libvirtd in
tests/e2e/test_console.py.
"""

from __future__ import annotations

import os
import termios
from collections.abc import Iterator

import libvirt
import pytest

from reconciler.cli import main
from reconciler.cli.console import raw_terminal, split_at_escape

URI = "test:///default"
# test:///default is shared by the connections of one process while one stays open.
STOPPED = "stopped-console-vm"
RUNNING = "running-console-vm"


def domain_xml(name: str) -> str:
    return (
        f"<domain type='test'><name>{name}.default</name><memory>131072</memory>"
        "<os><type>hvm</type></os></domain>"
    )


@pytest.fixture
def test_driver() -> Iterator[libvirt.virConnect]:
    """A stopped and a running domain for the VMs STOPPED and RUNNING (namespace default)."""
    connection = libvirt.open(URI)
    stopped = connection.defineXML(domain_xml(STOPPED))
    running = connection.defineXML(domain_xml(RUNNING))
    running.create()
    yield connection
    running.destroy()
    for domain in (stopped, running):
        domain.undefine()
    connection.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["console", *argv, "--libvirt-uri", URI])
    return code, capsys.readouterr().err


def test_a_vm_without_a_domain_is_refused_with_exit_1(
    test_driver: libvirt.virConnect, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "ghost", "-n", "prod")

    assert code == 1
    assert "VirtualMachine prod/ghost has no domain ghost.prod on test:///default" in err


def test_a_stopped_vm_is_refused_with_how_to_start_it(
    test_driver: libvirt.virConnect, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, STOPPED)

    assert code == 1
    assert f"VirtualMachine default/{STOPPED} (domain {STOPPED}.default) is not running" in err
    assert f"reconciler vm start {STOPPED} -n default" in err


def test_a_driver_without_consoles_says_it_cannot_open_one(
    test_driver: libvirt.virConnect, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, RUNNING)

    assert code == 1
    assert f"cannot open the console of {RUNNING}.default" in err
    assert "not supported" in err
    assert "Successfully connected" not in err


def test_an_unreachable_libvirt_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["console", "linux-vm", "--libvirt-uri", "qemu+unix:///system?socket=/nonexistent"])

    assert code == 1
    assert "cannot connect to qemu+unix:///system" in capsys.readouterr().err


def test_ctrl_bracket_ends_the_input_and_what_came_before_it_is_still_sent() -> None:
    assert split_at_escape(b"uptime\r\x1d") == (b"uptime\r", True)
    assert split_at_escape(b"\x1dreboot\r") == (b"", True)


def test_input_without_the_escape_is_sent_whole() -> None:
    assert split_at_escape(b"\x03\x1b[A ls\r") == (b"\x03\x1b[A ls\r", False)


def test_the_terminal_is_raw_while_attached_and_restored_after() -> None:
    """^C and the arrows must reach the guest, and the shell must get its terminal back."""
    master, slave = os.openpty()
    try:
        cooked = termios.tcgetattr(slave)

        with raw_terminal(slave):
            raw = termios.tcgetattr(slave)

        assert cooked[3] & termios.ICANON and cooked[3] & termios.ISIG
        assert not raw[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
        assert termios.tcgetattr(slave) == cooked
    finally:
        os.close(master)
        os.close(slave)


def test_the_terminal_is_restored_even_when_the_session_fails() -> None:
    master, slave = os.openpty()
    try:
        cooked = termios.tcgetattr(slave)

        with pytest.raises(RuntimeError), raw_terminal(slave):
            raise RuntimeError("the console broke")

        assert termios.tcgetattr(slave) == cooked
    finally:
        os.close(master)
        os.close(slave)
