"""What the latest VirtualMachineOperation reports say: a final one is never run again."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.api import ObjectId, VirtualMachineOperation
from reconciler.engine.operations.execute import ReportedOperation
from reconciler.engine.operations.generated import read_generated
from reconciler.model.conditions import OperationCondition
from reconciler.reports.documents import read_document, report_object_id
from reconciler.reports.status_index import index_of


def reported_operations(status_root: Path) -> dict[ObjectId, ReportedOperation]:
    """The phase and `Completed` condition of every operation report under status_root.

    An unreadable report counts as none: the domain's own record of the operation
    (engine/operations/execute.py) still keeps it from running twice. The report of an
    operation a host made carries the operation too (engine/operations/generated.py).
    """
    found: dict[ObjectId, ReportedOperation] = {}
    folder = os.path.join(status_root, VirtualMachineOperation.PLURAL)
    for name, _entry in index_of(status_root).listing(folder, nested=True):
        path = Path(name)
        document = read_document(path)
        status = document.get("status") if isinstance(document, dict) else None
        phase = status.get("phase") if isinstance(status, dict) else None
        operation = report_object_id(path, VirtualMachineOperation.KIND, namespaced=True)
        if not isinstance(phase, str) or operation is None:
            continue
        assert isinstance(status, dict)
        conditions = status.get("conditions")
        completed = next(
            (
                c
                for c in (conditions if isinstance(conditions, list) else [])
                if isinstance(c, dict) and c.get("type") == OperationCondition.COMPLETED
            ),
            {},
        )
        found[operation] = ReportedOperation(
            phase,
            str(completed.get("reason") or ""),
            str(completed.get("message") or ""),
            read_generated(document, operation),
        )
    return found
