"""The engine decides from values only (issue 13): it neither imports the report files'
package nor opens a file; policies and earlier reports are read by the pass driver
(reconciler/reports/pass_inputs.py) and handed in. A read inside the engine is how a
"pure" plan came to depend on what happened to be on disk."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

RECONCILER = Path(__file__).resolve().parents[2] / "reconciler"
ENGINE = RECONCILER / "engine"

# Modules whose import alone says the code reads or writes files.
FILE_MODULES = ("reconciler.reports", "pathlib", "io", "os", "shutil", "tempfile")
# Calls that read a file: the builtin, Path's readers, the policy loaders.
FILE_CALLS = frozenset(
    {
        "open",
        "read_text",
        "read_bytes",
        "write_text",
        "write_bytes",
        "iterdir",
        "glob",
        "rglob",
        "load_topology_policy",
        "load_change_rules",
        "load_limits",
        "read_policy_file",
    }
)


def file_access(source: str) -> list[str]:
    """`LINE: what` for every import of a file module and every file-reading call."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # `from reconciler import reports` imports the package too.
            modules = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call):
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in FILE_CALLS:
                found.append((node.lineno, f"calls {name}"))
            continue
        else:
            continue
        imported = [
            m for m in modules if any(m == f or m.startswith(f"{f}.") for f in FILE_MODULES)
        ]
        if imported:
            found.append((node.lineno, f"imports {imported[0]}"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def engine_file_access(engine: Path) -> list[str]:
    return [
        f"{path.relative_to(engine.parent)}:{line}"
        for path in sorted(engine.rglob("*.py"))
        for line in file_access(path.read_text())
    ]


def test_the_engine_imports_no_report_module_and_reads_no_file() -> None:
    assert engine_file_access(ENGINE) == [], (
        "read files in the pass driver (reconciler/reports/pass_inputs.py) and pass values"
    )


def test_the_scan_finds_a_status_import_planted_in_the_engine(tmp_path: Path) -> None:
    engine = tmp_path / "engine"
    shutil.copytree(ENGINE, engine)
    planted = engine / "reconcile.py"
    planted.write_text(
        planted.read_text() + "\nfrom reconciler.reports.reported import reported_nodes\n"
    )

    found = engine_file_access(engine)

    assert found == [
        f"engine/reconcile.py:{len(planted.read_text().splitlines())}: imports "
        "reconciler.reports.reported"
    ]


def test_the_scan_finds_every_way_of_reading_a_file() -> None:
    source = (
        "import reconciler.reports\n"
        "from reconciler import reports\n"
        "from pathlib import Path\n"
        "text = open('policies/x.yaml').read()\n"
        "data = Path('status').read_text()\n"
        "rules = load_change_rules('default', None)\n"
    )
    assert file_access(source) == [
        "1: imports reconciler.reports",
        "2: imports reconciler.reports",
        "3: imports pathlib",
        "4: calls open",
        "5: calls read_text",
        "6: calls load_change_rules",
    ]


def test_the_scan_leaves_values_alone() -> None:
    source = (
        "from reconciler.policies import ChangeRule, TopologyPolicy\n"
        "from reconciler.status_words import phase\n"
        "from reconciler.model import status\n"
        "status.set(condition)\n"
        "reports = EarlierReports(nodes={})\n"
    )
    assert file_access(source) == []
