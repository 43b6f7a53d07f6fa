"""Opening a libvirt connection with errors an operator can act on."""

from __future__ import annotations

import libvirt

from reconciler.model.errors import RetryableError


class LibvirtUnavailable(RetryableError):
    """libvirt could not be reached at the given URI."""


def _quiet(_context: object, _error: object) -> None:
    # libvirt's default handler prints every error to stderr, including the
    # expected ones (a missing domain looked up on purpose); errors reach the
    # caller as exceptions and are reported there.
    return None


libvirt.registerErrorHandler(_quiet, None)


def open_connection(uri: str) -> libvirt.virConnect:
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as error:
        hint = ""
        if uri.startswith("qemu:///system"):
            hint = " (is libvirtd running? `virsh -c qemu:///system version` should answer)"
        raise LibvirtUnavailable(f"cannot connect to {uri}: {error}{hint}") from error
