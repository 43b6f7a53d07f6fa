"""Host files opened only from inside the directories they may come from.

What a pull request writes can name any file of the host: an image's `file://` URL,
a symlink committed into the manifests or into `status/`. The reconciler reads a
host file only when its real location (`..` and every symlink resolved) lies inside
a directory allowed for that purpose: the manifests root, or the host's
`imageDirectories`.

The check is made twice: on the path, before anything is opened, and on the file
actually opened (the kernel's name for the open descriptor). A symlink swapped in
between the two, at any component, is caught by the second; `O_NOFOLLOW` keeps the
last component from being a symlink at all. A hard link made inside an allowed
directory cannot be told from the file itself: keeping those directories writable
only by the operator is the host's part (docs/install.md).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


class ConfinementError(Exception):
    """A file that is not read; the message says why without naming where it leads."""


class OutsideDirectories(ConfinementError):
    def __init__(self) -> None:
        super().__init__("it leads outside the allowed directories")


class NotARegularFile(ConfinementError):
    def __init__(self) -> None:
        super().__init__("it is not a regular file")


def _real(path: str) -> str | None:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):  # an embedded NUL byte, a path too long
        return None


def resolve_inside(path: str, directories: Iterable[str]) -> str | None:
    """The real location of `path` when it is absolute and lies strictly inside one of
    `directories` (each resolved too); None otherwise."""
    if not os.path.isabs(path):
        return None
    real = _real(path)
    if real is None:
        return None
    for directory in directories:
        base = _real(directory)
        if base is not None and real != base and os.path.commonpath((real, base)) == base:
            return real
    return None


def open_inside(path: str, directories: Iterable[str]) -> int:
    """A read-only descriptor of the regular file `path`, only if it lies inside one of
    `directories` both before and after it is opened.

    Raises OutsideDirectories or NotARegularFile, or the OSError of the open itself
    (missing, unreadable); the caller closes the descriptor.
    """
    allowed = tuple(directories)
    real = resolve_inside(path, allowed)
    if real is None:
        raise OutsideDirectories()
    # O_NONBLOCK: a FIFO put where a file was expected must not hang the pass.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    try:
        descriptor = os.open(real, flags)
    except OSError as error:
        if os.path.islink(real):  # swapped for a symlink since it was resolved
            raise OutsideDirectories() from None
        raise OSError(error.errno, error.strerror) from None  # without the resolved path
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise NotARegularFile()
        if resolve_inside(_opened_path(descriptor), allowed) is None:
            raise OutsideDirectories()
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _opened_path(descriptor: int) -> str:
    """Where the kernel says an open descriptor's file is; "" when it cannot say."""
    try:
        return os.readlink(f"/proc/self/fd/{descriptor}")
    except OSError:
        return ""


# --- symlinks of the manifests repository ----------------------------------------------


class SymlinkRefused(Exception):
    """A symlink of the repository that is not followed; the message says why."""


_LEADS_OUTSIDE = "is a symbolic link that leads outside the repository; it is not read"


def repository_target(path: Path, repository: Path) -> str | None:
    """Where a symlink of the repository leads, if that is inside it and not under a
    dot-folder (.git holds the clone's configuration, maybe credentials); else None."""
    real = resolve_inside(os.path.abspath(path), [os.path.abspath(repository)])
    if real is None:
        return None
    base = os.path.realpath(repository)
    if any(part.startswith(".") for part in Path(os.path.relpath(real, base)).parts):
        return None
    return real


def open_repository_link(path: Path, repository: Path) -> int:
    """A read-only descriptor of the file a symlink of the repository leads to, when
    that is a file inside it; SymlinkRefused otherwise. The caller closes it."""
    if repository_target(path, repository) is None:
        raise SymlinkRefused(_LEADS_OUTSIDE)
    try:
        # Checked again on the file opened: a link changed since it was resolved is caught.
        return open_inside(os.path.abspath(path), [os.path.abspath(repository)])
    except FileNotFoundError:
        raise SymlinkRefused("is a symbolic link to a file that does not exist") from None
    except NotARegularFile:
        raise SymlinkRefused("is a symbolic link to a folder or device; it is not read") from None
    except ConfinementError:
        raise SymlinkRefused(_LEADS_OUTSIDE) from None


def open_regular(path: Path) -> int:
    """A read-only descriptor of `path` if it is a regular file (NotARegularFile if not:
    a FIFO must not hang the reader, a device must not be read). The caller closes it."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise NotARegularFile()
    return descriptor
