"""Reports that cannot be used, and why.

status/ is written by every host of a fleet and by anyone who can push, so a report
is input like a manifest: it may be too large, nest too deep, hold an alias bomb, not
be YAML, or not be shaped like a report. Such a report is skipped (read as if it were
not there), logged once, and named in the node report's lastError by the passes that
meet it (status/documents.py, skipped_reports).
"""

from __future__ import annotations

import logging
from typing import Any

from reconciler.findings import Finding

log = logging.getLogger("reconciler.reports")

Signature = tuple[int, int, int, int]

# Where the readers of reports (status/summary.py, engine/status.py, documents.py) look
# inside a report without checking first, in every kind of report. A report whose
# containers there are something else was not written by a host: rather than have
# every reader guard every lookup, such a report is skipped whole. (Other fields differ
# by kind, a disk's `capacity` is text and a node's a mapping: their readers check.)
_MAPPINGS = (
    ("metadata",),
    ("status",),
    ("status", "resources"),
    ("status", "resources", "cpu"),
    ("status", "resources", "memory"),
    ("status", "virtualMachines"),
)
_LISTS = (("status", "conditions"),)
# A condition's fields are compared, printed and used as keys: plain values only.
_SCALARS = (str, int, float, bool, type(None))


def report_shape_problem(document: Any) -> str | None:
    """Why a parsed report cannot be used, or None when it is shaped like one."""
    if not isinstance(document, dict):
        return "a report must be a mapping"
    # Written but null is wrong too: readers take `.get(key, {})` for a missing key only.
    for path in _MAPPINGS:
        found = _at(document, path)
        if found is not _MISSING and not isinstance(found, dict):
            return f"{'.'.join(path)} must be a mapping"
    for path in _LISTS:
        found = _at(document, path)
        if found is not _MISSING and not (
            isinstance(found, list) and all(isinstance(item, dict) for item in found)
        ):
            return f"{'.'.join(path)} must be a list of mappings"
    conditions = _at(document, ("status", "conditions"))
    for index, condition in enumerate(conditions if isinstance(conditions, list) else ()):
        for field, value in condition.items():
            if not isinstance(value, _SCALARS):
                return f"status.conditions.{index}.{field} must be a plain value"
    return None


_MISSING = object()


def _at(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at path, or _MISSING when a key on the way is not there."""
    found: Any = document
    for part in path:
        if not isinstance(found, dict) or part not in found:
            return _MISSING
        found = found[part]
    return found


# Report path -> what the file system said of the file when it was found unusable, and why.
_NOTED: dict[str, tuple[Signature, Finding]] = {}


def note(name: str, signature: Signature | None, problem: Finding | None) -> None:
    """Remember why the report at `name` was skipped (logged the first time), or forget it
    when it is usable again (or gone)."""
    if problem is None or signature is None:
        _NOTED.pop(name, None)
        return
    earlier = _NOTED.get(name)
    if earlier is None or earlier[1] != problem:
        log.warning("report skipped: %s", problem)
    _NOTED[name] = (signature, problem)


def noted() -> list[tuple[str, Signature, Finding]]:
    """Every report found unusable and not found usable since, by path."""
    return [(name, signature, problem) for name, (signature, problem) in sorted(_NOTED.items())]
