"""`reconciler console NAME`: the VM's serial console, as `d8 v console` and `virsh console`.

The terminal is put in raw mode while attached, so every key reaches the guest, and ^]
(0x1d, the escape of both tools) detaches at once. The stream itself, and the copying
on libvirt's event loop, live in reconciler/libvirt/console.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import termios
import tty
from collections.abc import Iterator
from pathlib import Path

from reconciler.api import DEFAULT_NAMESPACE
from reconciler.cli.common import read_config
from reconciler.libvirt import console as serial

EXIT_FAILED = 1
ESCAPE = 0x1D  # ^]


def console_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Attach the terminal to the serial console of VM NAME (libvirt domain"
        " NAME.NAMESPACE), as `d8 v console` does. Press Ctrl+] to detach."
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
        console = serial.open_console(uri, args.name, args.namespace, force=args.force)
    except serial.ConsoleError as error:
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
            ending = console.relay(stdin, stdout, split_at_escape)
    finally:
        console.close()
    print(f"\nDisconnected from {args.name} console: {ending}", file=sys.stderr)
    return 0 if ending in serial.USER_ENDINGS else EXIT_FAILED


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
