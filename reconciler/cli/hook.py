"""`reconciler hook qemu DOMAIN OPERATION SUBOP EXTRA`: libvirt's QEMU hook.

libvirtd runs `/etc/libvirt/hooks/qemu` with these four arguments for every domain it
starts, stops or receives; installed as docs/install.md shows, that script runs this
command. It refuses an incoming live migration (`migrate begin`) that the host's
guaranteed capacity cannot take, and lets everything else through (libvirt/hook.py).

It is started often and must answer at once: only the standard library's json and
ElementTree are imported, never libvirt (a hook must not call back into it), the
models or the engine. It writes nothing to stdout, which libvirt would take for a
replacement of the incoming domain's XML.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.libvirt.hook import qemu_hook

# The daemon's cacheDir when its configuration names none (config.py).
DEFAULT_CACHE_DIR = Path("/var/lib/reconciler")


def hook_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "libvirt's QEMU hook (/etc/libvirt/hooks/qemu, docs/install.md): refuse an incoming"
        " live migration the host's guaranteed CPU and memory cannot take, weighed against"
        " what the daemon last wrote into its cacheDir; let every other operation through."
    )
    parser.add_argument("driver", choices=["qemu"], metavar="DRIVER", help="qemu")
    parser.add_argument("domain", metavar="DOMAIN", help="the domain's name")
    parser.add_argument("operation", metavar="OPERATION", help="migrate, prepare, start, ...")
    parser.add_argument("subop", metavar="SUBOP", nargs="?", default="-", help="begin, end, -")
    parser.add_argument("extra", metavar="EXTRA", nargs="?", default="-", help="-")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help=f"the daemon's cacheDir (default {DEFAULT_CACHE_DIR})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    code, message = qemu_hook(
        args.domain, args.operation, args.subop, sys.stdin.buffer, args.cache_dir
    )
    if message:
        # One line: libvirt puts it into the error the source host reports.
        print(" ".join(message.split()), file=sys.stderr)
    return code
