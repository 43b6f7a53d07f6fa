"""A clone's files brought from one commit to another by what differs between them,
without a checkout.

`git checkout -f` and `git reset --hard` compare every file the index holds with the
commit: tens of thousands in a fleet-sized repository, at every pass, though a push
changes a handful. Here Git names what differs (`diff-tree`) under the paths the clone
keeps, and only those files are written (from `cat-file --batch`) or removed. Like a
checkout, each file is replaced, never written into: a new file, so whoever kept its
signature reads it again. HEAD and the index are left as they were: the caller knows
which commit the files are (and lets a checkout look at every file now and then).

What is not a plain file (a symlink, a submodule), an executable file, many changes
at once, or a folder on the way that is not a real folder on disk: None, and the
caller checks the commit out as before.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# More changed files than this: a checkout writes them quicker than this does.
MOST_FILES_FOLLOWED = 500
# Contents held in memory at once, from a repository anyone may push to: a file larger
# than this, or files larger than this in all, are left to a checkout, which streams.
LARGEST_FILE_FOLLOWED = 1 << 20
MOST_BYTES_FOLLOWED = 16 << 20
_PLAIN = b"100644"
_GONE = b"000000"

RunGit = Callable[[list[str], bytes | None], bytes]


def follow(
    run: RunGit, work_dir: Path, pathspecs: Sequence[str], old: str, new: str
) -> list[Path] | None:
    """Make the files `pathspecs` name in the work dir, which are `old`'s exactly, be
    `new`'s; returns the paths changed (files and the folders removed with their last
    file), or None when this cannot do it: then nothing was changed, or (a write that
    failed) some files were, which the checkout the caller makes instead puts right."""
    output = run(
        ["diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", old, new, "--", *pathspecs],
        None,
    )
    changes = _parse(output)
    if changes is None:
        return None
    return apply(run, work_dir, changes)


def apply(
    run: RunGit,
    work_dir: Path,
    changes: list[tuple[bytes, str | None]],
    sizes: Mapping[str, int] | None = None,
) -> list[Path] | None:
    """Each path (relative to the work dir) made the blob given (None: removed); the
    paths changed, or None when this cannot do it (too many, too large, not plain
    files in plain folders): then nothing was changed, or (a write that failed) some
    files were, which a checkout puts right. sizes: the blobs' sizes, when the caller
    read them already (held to the same limits)."""
    if len(changes) > MOST_FILES_FOLLOWED:
        return None
    top = os.fsencode(work_dir)
    for path, _blob in changes:
        if not plain_folders(top, path):
            return None
    blobs = _contents(run, [blob for _path, blob in changes if blob is not None], sizes)
    if blobs is None:
        return None
    changed: list[Path] = []
    try:
        for path, blob in changes:
            target = top + b"/" + path
            if blob is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target)
                changed.append(Path(os.fsdecode(target)))
                changed.extend(_remove_empty_folders(top, path))
                continue
            _replace(target, blobs[blob])
            changed.append(Path(os.fsdecode(target)))
    except OSError:
        # A full disk, or a name the tree holds in the way (a folder where the
        # temporary file goes): a checkout does it, as git would.
        return None
    return changed


def _parse(output: bytes) -> list[tuple[bytes, str | None]] | None:
    """`diff-tree -r -z` raw records: `:OLDMODE NEWMODE OLDOID NEWOID STATUS` then the
    path. Each path with its new blob (None: removed); None when something other than
    a plain file is involved."""
    records = output.split(b"\0")
    changes: list[tuple[bytes, str | None]] = []
    index = 0
    while index < len(records) and records[index]:
        meta = records[index]
        if not meta.startswith(b":") or index + 1 >= len(records):
            return None
        fields = meta[1:].split(b" ")
        if len(fields) != 5:
            return None
        old_mode, new_mode, _old_oid, new_oid, _status = fields
        if old_mode not in (_PLAIN, _GONE) or new_mode not in (_PLAIN, _GONE):
            return None
        path = records[index + 1]
        changes.append((path, None if new_mode == _GONE else new_oid.decode()))
        index += 2
    return changes


def plain_folders(top: bytes, path: bytes) -> bool:
    """Every folder on the way to path is a real folder or missing, and the path itself
    a plain file or missing: nothing is written through a symlink."""
    names = path.split(b"/")
    if any(name in (b"", b".", b"..", b".git") for name in names):
        return False
    here = top
    for depth, name in enumerate(names):
        here = here + b"/" + name
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            return True
        plain = stat.S_ISREG(mode) if depth == len(names) - 1 else stat.S_ISDIR(mode)
        if not plain:
            return False
    return True


def _contents(
    run: RunGit, blobs: list[str], known: Mapping[str, int] | None = None
) -> dict[str, bytes] | None:
    """The blobs' contents, from one `cat-file --batch`; None when they are too large to
    hold (their sizes first: known, or from `--batch-check`)."""
    if not blobs:
        return {}
    wanted = list(dict.fromkeys(blobs))
    if known is not None and all(blob in known for blob in wanted):
        sizes: list[int] | None = [known[blob] for blob in wanted]
    else:
        sizes = _sizes(run, wanted)
    if sizes is None or max(sizes) > LARGEST_FILE_FOLLOWED or sum(sizes) > MOST_BYTES_FOLLOWED:
        return None
    output = run(["cat-file", "--batch"], "".join(f"{blob}\n" for blob in wanted).encode())
    contents: dict[str, bytes] = {}
    at = 0
    for blob in wanted:
        header_end = output.find(b"\n", at)
        if header_end < 0:
            return None
        header = output[at:header_end].split(b" ")
        if len(header) != 3 or header[0].decode() != blob or header[1] != b"blob":
            return None
        size = int(header[2])
        start = header_end + 1
        contents[blob] = output[start : start + size]
        at = start + size + 1  # the newline after each object
    return contents


def _sizes(run: RunGit, blobs: list[str]) -> list[int] | None:
    """Each blob's size, from one `cat-file --batch-check`; None when one is no blob."""
    output = run(["cat-file", "--batch-check"], "".join(f"{blob}\n" for blob in blobs).encode())
    sizes: list[int] = []
    lines = output.decode(errors="replace").splitlines()
    if len(lines) != len(blobs):
        return None
    for blob, line in zip(blobs, lines, strict=True):
        fields = line.split(" ")
        if len(fields) != 3 or fields[0] != blob or fields[1] != "blob" or not fields[2].isdigit():
            return None
        sizes.append(int(fields[2]))
    return sizes


def _replace(target: bytes, content: bytes) -> None:
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    temporary = target + b".vmr-tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    with open(temporary, "xb") as file:
        file.write(content)
    os.replace(temporary, target)


def _remove_empty_folders(top: bytes, path: bytes) -> list[Path]:
    """The folders a removed file leaves empty go, as a checkout removes them."""
    removed: list[Path] = []
    folder = os.path.dirname(top + b"/" + path)
    while len(folder) > len(top):
        try:
            os.rmdir(folder)
        except OSError:  # not empty (or gone): the folders above stay too
            break
        removed.append(Path(os.fsdecode(folder)))
        folder = os.path.dirname(folder)
    return removed
