"""The tests mirror the packages (issue 13): the tests of reconciler/X/Y live in tests/X/Y.

A maintainer changing a module finds its tests by the same path; a folder named for
something else ("foundation", "testdriver") hid that libvirt code was tested in three
places. End-to-end tests (tests/e2e) cut across every layer and keep their own folder.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "reconciler"

# Folders of tests that are not the tests of one package, and why.
ACROSS_LAYERS = {"e2e": "end to end on a real libvirtd: every layer at once"}
# Test files directly under tests/ that check the project as a whole.
WHOLE_PROJECT = {
    "test_architecture_doc.py": "docs/architecture.md against the packages",
    "test_import_contract.py": "the layers' import contract",
    "test_layout.py": "this file",
    "test_merge_leftovers.py": "no file keeps the markers of an unresolved merge",
}


def mirrors(relative: Path) -> bool:
    """Whether tests/`relative` names a package or module of reconciler/."""
    return (PACKAGE / relative).is_dir() or (PACKAGE / relative).with_suffix(".py").is_file()


def test_every_test_folder_is_named_for_a_package_or_module_it_tests() -> None:
    # given every folder under tests/ that holds tests
    folders = {
        path.parent.relative_to(TESTS)
        for path in TESTS.rglob("test_*.py")
        if path.parent != TESTS and path.relative_to(TESTS).parts[0] not in ACROSS_LAYERS
    }
    # then each is the path of a package or module under reconciler/
    strays = sorted(str(folder) for folder in folders if not mirrors(folder))
    assert not strays, f"test folders that mirror nothing under reconciler/: {strays}"


def test_every_test_file_at_the_top_tests_a_module_or_the_whole_project() -> None:
    # given the test files directly under tests/
    top = sorted(path.name for path in TESTS.glob("test_*.py"))
    # then each is test_<module>.py of a module reconciler/<module>.py, or a whole-project check
    strays = [
        name
        for name in top
        if name not in WHOLE_PROJECT
        and not mirrors(Path(name.removeprefix("test_")).with_suffix(""))
    ]
    assert not strays, f"top-level tests that mirror no module: {strays}"


def test_a_folder_named_for_no_package_is_found() -> None:
    # given a test folder that names no package (as tests/foundation did)
    # then the check that guards the layout says so
    assert not mirrors(Path("foundation"))
    assert not mirrors(Path("testdriver"))
    assert mirrors(Path("libvirt") / "storage") and mirrors(Path("loader"))
