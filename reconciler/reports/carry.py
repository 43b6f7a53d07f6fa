"""Reports carried for the hosts of a fleet that lost a race to the branch.

A host whose status push loses leaves its commit on the remote under a ref of its own,
`refs/vmr/pending/NODE` (its mailbox), instead of waiting a turn behind every other
host. The next host to push writes what those commits changed under the status folder
into its own commit (the mailbox's reports "carried") and, in the same atomic push,
deletes each mailbox it carried, with a lease on the commit it read: one landing takes
every report waiting, so a fleet-wide change lands in a few rounds however many hosts
there are, not in one round per host (docs/engine.md, "Many hosts on one repository").

A mailbox is anyone's input: only what its commit changed under the status folder is
read, plain files in plain folders, within the follow's limits on count and size
(source/tree_follow.py); the README is left out (every host writes it anew from the
reports). A mailbox is carried only when, for every path it changed, the branch still
holds what its host saw or already what it wrote: a report another host wrote since
(a VM handed over, a newer pass of the same host) is never written over with an older
one; that host lands its own reports instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.source.tree_follow import (
    LARGEST_FILE_FOLLOWED,
    MOST_BYTES_FOLLOWED,
    MOST_FILES_FOLLOWED,
    apply,
    plain_folders,
)

# Where each host's mailbox is on the remote, and where the status clone keeps the ones
# it fetched (a namespace of its own: no branch of the clone is ever one of them).
PENDING_ON_REMOTE = "refs/vmr/pending/"
PENDING_FETCHED = "refs/vmr-pending/"
# Mailboxes carried in one commit at the most (the others wait for the next).
MOST_CARRIED = 64
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_NO_OID = "0" * 40

RunGit = Callable[[list[str], bytes | None], bytes]


@dataclass(frozen=True)
class Carried:
    """What a commit carries: node -> the mailbox commit it carried (the push deletes each
    with a lease on it); the files this wrote or removed in the work dir (what the commit
    holds of it); and those with the folders their removal emptied (what changed on disk)."""

    mailboxes: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


NOTHING = Carried()


def fetched_mailboxes(run: RunGit) -> dict[str, str]:
    """node -> commit of every mailbox the clone fetched last; names that are no node's
    name are left out."""
    output = run(["for-each-ref", "--format=%(refname)%00%(objectname)", PENDING_FETCHED], None)
    mailboxes: dict[str, str] = {}
    for line in output.decode(errors="replace").splitlines():
        refname, _, commit = line.partition("\0")
        node = refname.removeprefix(PENDING_FETCHED)
        if _NODE_NAME.fullmatch(node) and len(commit) == 40:
            mailboxes[node] = commit
    return mailboxes


def carry(
    run: RunGit, work_dir: Path, status_path: str, head: str, mailboxes: Mapping[str, str]
) -> Carried | None:
    """Write into the work dir, which holds `head`'s status folder, what each mailbox's
    commit changed there (those that may be carried: see the module); what was carried,
    or None when the files could not be written (some may have been: the caller checks
    the head out again)."""
    chosen = sorted(mailboxes.items())[:MOST_CARRIED]
    if not chosen:
        return NOTHING
    stdin = "".join(f"{commit}\n" for _node, commit in chosen).encode()
    output = run(
        ["diff-tree", "--stdin", "-r", "-z", "--no-renames", "--no-abbrev", "--", status_path],
        stdin,
    )
    changes = _parse_stdin(output)
    readme = f"{status_path}/README.md".encode()
    wanted = {
        path
        for _node, commit in chosen
        for path, _old, _new in changes.get(commit) or []
        if path != readme
    }
    new_blobs = sorted(
        {new for _node, commit in chosen for _p, _o, new in changes.get(commit) or [] if new}
    )
    at_head, sizes = _look_up(run, head, sorted(wanted), new_blobs)
    top = os.fsencode(work_dir)
    carried: dict[str, str] = {}
    # path -> the blob a carried mailbox makes it: another may make it the same, never
    # otherwise (which of the two is newer is not known here).
    claimed: dict[bytes, str | None] = {}
    writes: dict[bytes, str | None] = {}
    held = 0
    for node, commit in chosen:
        listed = changes.get(commit, [])
        if listed is None:
            continue  # not plain files: its host lands its own reports
        mine = [change for change in listed if change[0] != readme]
        if any(
            claimed.get(path, new) != new or at_head.get(path, "") not in (old, new)
            for path, old, new in mine
        ):
            continue  # written since by another host (or otherwise by another mailbox)
        blob_sizes = [sizes.get(new, LARGEST_FILE_FOLLOWED + 1) for _p, _o, new in mine if new]
        if any(not plain_folders(top, path) for path, _old, _new in mine) or any(
            size > LARGEST_FILE_FOLLOWED for size in blob_sizes
        ):
            continue  # not what a host writes: its own host lands it, if it is one
        size = sum(blob_sizes)
        if len(claimed) + len(mine) > MOST_FILES_FOLLOWED or held + size > MOST_BYTES_FOLLOWED:
            break
        held += size
        carried[node] = commit
        claimed.update((path, new) for path, _old, new in mine)
        writes.update((path, new) for path, _old, new in mine if at_head.get(path) != new)
    if not writes:
        return Carried(carried)
    paths = apply(run, work_dir, list(writes.items()), sizes)
    if paths is None:
        return None
    return Carried(carried, [work_dir / os.fsdecode(path) for path in writes], paths)


_Change = tuple[bytes, str | None, str | None]  # path, blob before, blob after (None: none)


def _parse_stdin(output: bytes) -> dict[str, list[_Change] | None]:
    """`diff-tree --stdin -r -z`: each commit's id, then its raw records against its first
    parent (`:OLDMODE NEWMODE OLDOID NEWOID STATUS`, then the path). A commit whose
    changes are not all plain files maps to None; a commit without changes there (a
    merge, a root commit) is absent."""
    records = output.split(b"\0")
    changes: dict[str, list[_Change] | None] = {}
    current: str | None = None
    index = 0
    while index < len(records):
        record = records[index]
        index += 1
        if not record:
            continue
        if not record.startswith(b":"):
            current = record.decode(errors="replace").strip()
            changes[current] = []
            continue
        if current is None or index >= len(records):
            break
        path = records[index]
        index += 1
        fields = record[1:].split(b" ")
        listed = changes.get(current)
        if listed is None:
            continue
        plain = all(mode in (b"100644", b"000000") for mode in fields[:2])
        if len(fields) != 5 or not plain or b"\n" in path:
            changes[current] = None
            continue
        old, new = fields[2].decode(), fields[3].decode()
        listed.append((path, None if old == _NO_OID else old, None if new == _NO_OID else new))
    return changes


def _look_up(
    run: RunGit, head: str, paths: list[bytes], blobs: list[str]
) -> tuple[dict[bytes, str | None], dict[str, int]]:
    """The blob each path is at `head` (None: no such file; absent: not a blob), and each
    blob's size (absent: no blob), from one `cat-file --batch-check`."""
    if not paths and not blobs:
        return {}, {}
    stdin = b"".join(head.encode() + b":" + path + b"\n" for path in paths)
    stdin += "".join(f"{blob}\n" for blob in blobs).encode()
    lines = run(["cat-file", "--batch-check"], stdin).splitlines()
    if len(lines) != len(paths) + len(blobs):
        return {}, {}  # unreadable: nothing matches, nothing is carried
    at_head: dict[bytes, str | None] = {}
    for path, line in zip(paths, lines, strict=False):
        fields = line.split(b" ")
        if line.endswith(b" missing"):
            at_head[path] = None
        elif len(fields) == 3 and fields[1] == b"blob":
            at_head[path] = fields[0].decode()
    sizes: dict[str, int] = {}
    for blob, line in zip(blobs, lines[len(paths) :], strict=True):
        fields = line.split(b" ")
        if len(fields) == 3 and fields[0].decode() == blob and fields[1] == b"blob":
            sizes[blob] = int(fields[2]) if fields[2].isdigit() else LARGEST_FILE_FOLLOWED + 1
    return at_head, sizes
