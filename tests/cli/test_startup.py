"""What starting `reconciler` loads: only the command asked for, so `--version`, `--help`
and the commands that read files answer at once (issue 13; timed by bench/startup.py).

Each command runs in a fresh interpreter, which then lists the modules it imported.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import __version__
from reconciler.cli import main

CHECKOUT = Path(__file__).resolve().parents[2]
# Each takes a good part of the start-up budget to import, and none is needed to parse
# arguments: libvirt-python, GitPython, the pydantic models, the planner.
HEAVY = ("libvirt", "git", "pydantic", "reconciler.engine")
# Runs `reconciler ARGS...` as main does, then prints the modules loaded on a last line.
COMMANDS = ("validate", "plan", "apply", "run", "get", "describe", "vm", "node", "console")
PROBE = """\
import sys
from reconciler.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print()
print(*sorted(sys.modules))
"""


def run_probe(*argv: str) -> tuple[str, set[str]]:
    """The command's output and the modules its interpreter loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    output, _, modules = done.stdout.rstrip("\n").rpartition("\n")
    return output, set(modules.split())


def loaded(modules: set[str], *names: str) -> list[str]:
    return sorted(n for n in names if n in modules)


def test_importing_the_command_line_loads_no_command() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, reconciler.cli; print(*sys.modules)"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert loaded(set(done.stdout.split()), *HEAVY) == []


def test_version_is_printed_without_loading_any_command() -> None:
    output, modules = run_probe("--version")

    assert output.strip() == f"reconciler {__version__}"
    assert loaded(modules, *HEAVY) == []


def test_help_lists_every_command_without_loading_any() -> None:
    output, modules = run_probe("--help")

    listed = re.findall(r"^    (\S+) +\S", output, re.MULTILINE)
    assert tuple(listed) == COMMANDS
    assert loaded(modules, *HEAVY) == []


def test_validate_loads_neither_libvirt_nor_git(tmp_path: Path) -> None:
    output, modules = run_probe("validate", str(tmp_path))

    assert output.startswith("ok: 0 objects")
    assert loaded(modules, "libvirt", "git") == []


def test_get_from_the_reports_loads_neither_libvirt_nor_git_nor_the_planner(
    checkout: Path,
) -> None:
    output, modules = run_probe("get", "vm", "--dir", str(checkout))

    assert "linux-vm" in output
    assert loaded(modules, "libvirt", "git", "reconciler.engine.plan") == []


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])

    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: reconciler {command} ")
