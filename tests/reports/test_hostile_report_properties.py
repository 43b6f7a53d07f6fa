"""Property test of the report reader: whatever a push puts into status/ (hostile YAML,
random bytes, reports with any value at any field), a pass reads and writes the tree
without an exception, within bounded memory, and every report is used or named."""

from __future__ import annotations

import io
import tempfile
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.reports.addresses import read_leases
from reconciler.reports.documents import (
    NAMED_REPORTS,
    check_reports,
    read_document,
    skipped_reports,
)
from reconciler.reports.reported import reported_disks, reported_nodes
from reconciler.reports.reported_operations import reported_operations
from reconciler.reports.tree import write_host_reports
from tests.loader.test_hostile_properties import HOSTILE_TEXT, MEMORY_BOUND
from tests.reports.conftest import host, plan_of, vm

# Where a pass reads: this host's and another host's VM reports, node reports, a lease,
# a vmip, a disk and an operation report.
REPORT_FILES = (
    "virtualmachines/default/a.yaml",
    "virtualmachines/default/theirs.yaml",
    "nodes/hv1.yaml",
    "nodes/hv2.yaml",
    "virtualmachineipaddressleases/ip-10-66-10-5.yaml",
    "virtualmachineipaddresses/default/a.yaml",
    "virtualdisks/default/a-root.yaml",
    "virtualmachineoperations/default/restart-a.yaml",
)

FIELDS = st.sampled_from(
    [
        "status",
        "metadata",
        "conditions",
        "type",
        "lastTransitionTime",
        "phase",
        "nodeName",
        "resources",
        "cpu",
        "memory",
        "requestedCores",
        "target",
        "persistentVolumeClaimName",
        "virtualMachineIPAddressRef",
        "namespace",
        "name",
        "virtualMachines",
        "total",
        "lastError",
        "protected",
        "restartAwaitingChanges",
    ]
)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["True", "Bound", "Released", "Running", "hv1", "2024-01-01T00:00:00Z"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(FIELDS | st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=25,
)


@st.composite
def reports(draw: st.DrawFn) -> str:
    """A report-shaped document with anything at any of its fields."""
    document: dict[str, Any] = {
        "apiVersion": "virtualization.deckhouse.io/v1alpha2",
        "kind": "VirtualMachine",
        "metadata": {"name": "a"},
        "status": draw(st.dictionaries(FIELDS, VALUES, max_size=6)),
    }
    if draw(st.booleans()):
        document["status"]["conditions"] = draw(
            st.lists(st.dictionaries(FIELDS, VALUES, max_size=4), max_size=3)
        )
    buffer = io.StringIO()
    YAML(typ="safe", pure=True).dump(document, buffer)
    return buffer.getvalue()


# Mostly reports of the right form with wrong values, which only the readers can judge.
REPORT_TEXT = st.integers(0, 3).flatmap(lambda n: reports() if n else HOSTILE_TEXT)


@settings(
    max_examples=60,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(REPORT_TEXT, min_size=len(REPORT_FILES), max_size=len(REPORT_FILES)))
def test_a_pass_over_any_status_tree_never_raises_and_names_what_it_skips(
    texts: list[str],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "status"
        for relative, text in zip(REPORT_FILES, texts, strict=True):
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text, encoding="utf-8", errors="surrogateescape")
        tracemalloc.start()
        try:
            reported_nodes(root)
            reported_disks(root)
            reported_operations(root)
            read_leases(root)
            write_host_reports(
                root, plan_of("hv1", "a"), host("hv1"), "rev", desired_vms={vm("a"), vm("theirs")}
            )
            skipped = check_reports(root)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

        assert peak < MEMORY_BOUND
        # check_reports names the first few and counts the rest; every one is in the
        # uncapped list it is made from.
        every = sorted(skipped_reports(root))
        more = len(every) - NAMED_REPORTS
        assert skipped == (
            every if more <= 0 else [*every[:NAMED_REPORTS], f"and {more} more report(s) skipped"]
        )
        named = {line.split(": ")[1].split(":")[0] for line in every}
        for path in sorted(root.rglob("*.yaml")):
            shown = f"status/{path.relative_to(root).as_posix()}"
            assert isinstance(read_document(path), dict) != (shown in named), shown
