"""Where the latest status reports say each VM runs: the fleet's shared memory of placement."""

from __future__ import annotations

from pathlib import Path

from reconciler.api import DEFAULT_NAMESPACE, ObjectId
from reconciler.status.documents import read_document


def reported_nodes(status_root: Path) -> dict[ObjectId, str]:
    """nodeName of every VirtualMachine report under status_root; unreadable ones are skipped."""
    found: dict[ObjectId, str] = {}
    for path in sorted((status_root / "virtualmachines").glob("*/*.yaml")):
        document = read_document(path)
        if not isinstance(document, dict):
            continue  # a report is advisory; a damaged one only loses its stickiness
        status = document.get("status")
        node = status.get("nodeName") if isinstance(status, dict) else None
        if isinstance(node, str) and node:
            namespace = path.parent.name or DEFAULT_NAMESPACE
            found[ObjectId("VirtualMachine", namespace, path.stem)] = node
    return found
