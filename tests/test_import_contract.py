"""The import contract of pyproject.toml ([tool.importlinter], run by `make lint`): the
layers of docs/architecture.md only point down, libvirt-python is imported only under
reconciler/libvirt/, and the engine imports nothing that does I/O. Each planted import
below is one a maintainer could write by mistake; the check must name it.

No import hides inside a function either (that is how two-way imports used to hold),
except where the command line imports a command's modules when it runs, and where
reconciler.api imports one of its own modules when a name of it is first used (its
TYPE_CHECKING imports show the contract the same edges), both for start-up speed,
saying so on the line above."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECONCILER = ROOT / "reconciler"
CLI = RECONCILER / "cli"
# The packages whose names are imported on first use (PEP 562), for start-up speed.
LAZY_PACKAGES = (
    RECONCILER / "api" / "__init__.py",
    RECONCILER / "source" / "__init__.py",
    RECONCILER / "provisioning" / "__init__.py",
)
FUTURE = "from __future__ import annotations\n"


def lint_imports(directory: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports run in `directory`, which it puts first on the path: the reconciler/
    found there is the one checked."""
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command, "import-linter is not installed (pip install -e '.[test]')"
    return subprocess.run(
        [command, "--no-cache", "--no-logo"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def copy_with(tmp_path: Path, module: str, planted: str) -> int:
    """The package and its contract copied into tmp_path, with `planted` added to
    `module` (a path under reconciler/) after its first line of imports; its line number."""
    shutil.copytree(
        ROOT / "reconciler", tmp_path / "reconciler", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "reconciler" / module
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    at = lines.index(FUTURE) + 1
    lines.insert(at, planted + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return at + 1


def test_the_tree_keeps_the_import_contract() -> None:
    checked = lint_imports(ROOT)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 broken" in checked.stdout


def test_a_model_module_importing_the_daemon_breaks_the_layers(tmp_path: Path) -> None:
    line = copy_with(tmp_path, "model/names.py", "from reconciler.daemon import run")

    checked = lint_imports(tmp_path)

    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "Layers only point down BROKEN" in checked.stdout
    assert "reconciler.model is not allowed to import reconciler.daemon" in checked.stdout
    assert f"reconciler.model.names -> reconciler.daemon.run (l.{line})" in checked.stdout


def test_the_engine_importing_libvirt_breaks_the_contract(tmp_path: Path) -> None:
    line = copy_with(tmp_path, "engine/plan.py", "import libvirt")

    checked = lint_imports(tmp_path)

    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "libvirt-python is imported only under reconciler.libvirt BROKEN" in checked.stdout
    assert f"reconciler.engine.plan -> libvirt (l.{line})" in checked.stdout


def test_the_engine_importing_os_breaks_the_contract(tmp_path: Path) -> None:
    line = copy_with(tmp_path, "engine/vm/power.py", "import os")

    checked = lint_imports(tmp_path)

    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "reconciler.engine is not allowed to import os" in checked.stdout
    assert f"reconciler.engine.vm.power -> os (l.{line})" in checked.stdout


def imports_inside_functions(source: str) -> list[int]:
    """The lines of imports made while a function runs: import statements in a function
    body, and importlib.import_module or __import__ calls anywhere."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines.extend(
                inner.lineno
                for inner in ast.walk(node)
                if isinstance(inner, ast.Import | ast.ImportFrom)
            )
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in (
            "importlib.import_module",
            "__import__",
        ):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_no_import_is_made_inside_a_function_outside_the_command_line() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted(RECONCILER.rglob("*.py"))
        if CLI not in path.parents and path not in LAZY_PACKAGES
        for line in imports_inside_functions(path.read_text(encoding="utf-8"))
    ]

    assert found == []


def test_every_import_the_command_line_makes_when_it_runs_says_it_is_for_start_up() -> None:
    unexplained = []
    for path in [*sorted(CLI.rglob("*.py")), *LAZY_PACKAGES]:
        lines = path.read_text(encoding="utf-8").splitlines()
        for line in imports_inside_functions("\n".join(lines)):
            above = lines[line - 2].strip()
            if not (above.startswith("#") and "start-up" in above):
                unexplained.append(f"{path.relative_to(ROOT)}:{line}")

    assert unexplained == []


def test_the_scan_finds_imports_made_inside_a_function() -> None:
    source = (
        "import json\n"
        "def load():\n"
        "    from reconciler.policies import load_limits\n"
        "    return importlib.import_module('git')\n"
    )

    assert imports_inside_functions(source) == [3, 4]
