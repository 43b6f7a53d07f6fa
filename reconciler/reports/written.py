"""What this process last wrote at each report, so a pass skips the reports whose
content and file are both as it left them.

A daemon's pass after a push changes a handful of a thousand VMs' statuses; the
rest used to cost each pass a path, a read of the earlier report (condition times),
a digest of the document and a comparison with the file: a third of a second at
1,000 VMs. Now each costs a comparison of the status with the one last written and
one lstat: a file that a Git pull (another host's report), an operator or anything
else changed has another inode or other times, and goes the whole way again.

A process that writes the reports once and ends (`reconciler apply`) remembers nothing
(write_once): nobody would ask, and the copy of every status costs some 10 ms at 100 VMs.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.api import ObjectId
from reconciler.reports.documents import file_signature
from reconciler.reports.status_index import FileSignature, signature_of


@dataclass(frozen=True)
class _Written:
    content: object  # a copy: what the caller passed may change after it is written
    path: str
    signature: FileSignature
    document: dict[str, Any]


class WrittenReports:
    """The reports of one status tree (and one family of kinds) this process wrote."""

    def __init__(self, remember: bool = True) -> None:
        self._last: dict[ObjectId, _Written] = {}
        self._remember = remember

    def unchanged(self, object_id: ObjectId, content: object) -> dict[str, Any] | None:
        """The document last written for `content` when the file is still what was
        written; None when the report must be made again."""
        last = self._last.get(object_id)
        if last is None or last.content != content:
            return None
        # The pass's index of the tree knows, without an lstat (status_index.py).
        signature = signature_of(last.path)
        return last.document if signature == last.signature else None

    def note(
        self, object_id: ObjectId, content: object, path: Path, document: dict[str, Any]
    ) -> None:
        if not self._remember:
            return
        signature = file_signature(path)
        if signature is None:
            self._last.pop(object_id, None)
            return
        self._last[object_id] = _Written(
            copy.deepcopy(content), os.fspath(path), signature, document
        )

    def keep(self, object_ids: Collection[ObjectId]) -> None:
        """Forget the objects no longer reported, so the memory does not grow forever."""
        for object_id in [o for o in self._last if o not in object_ids]:
            del self._last[object_id]


class _Trees:
    def __init__(self) -> None:
        self._trees: dict[tuple[str, str], WrittenReports] = {}
        self.remember = True

    def of(self, root: Path, family: str = "vms") -> WrittenReports:
        if not self.remember:
            return WrittenReports(remember=False)
        key = (os.fspath(root), family)
        found = self._trees.get(key)
        if found is None:
            found = self._trees[key] = WrittenReports()
        return found


WRITTEN = _Trees()


def write_once() -> None:
    """This process writes each status tree once, then ends: from now on nothing is
    remembered of what it writes."""
    WRITTEN.remember = False
    WRITTEN._trees.clear()
