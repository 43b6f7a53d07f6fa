"""docs/architecture.md is the page a newcomer reads first: it must name every package
and top-level module of reconciler/, and every reconciler/ path it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
NAMED = re.compile(r"`(reconciler/[A-Za-z0-9_/.]+)`")


def named_paths(text: str) -> set[str]:
    return {match.rstrip("/") for match in NAMED.findall(text)}


def packages_and_modules() -> set[str]:
    """reconciler/'s folders of code and its top-level modules, as the doc names them."""
    found = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "reconciler").iterdir()
        if (path.is_dir() and any(path.glob("*.py")))
        or (path.suffix == ".py" and path.stem not in ("__init__", "__main__"))
    }
    return found


def test_every_package_and_module_of_reconciler_is_in_the_architecture_page() -> None:
    missing = packages_and_modules() - named_paths(DOC.read_text(encoding="utf-8"))

    assert not missing, f"docs/architecture.md does not name {sorted(missing)}"


def test_every_reconciler_path_the_page_names_exists() -> None:
    named = named_paths(DOC.read_text(encoding="utf-8"))

    assert not sorted(p for p in named if not (ROOT / p).exists())


def test_the_check_notices_a_package_the_page_leaves_out() -> None:
    text = DOC.read_text(encoding="utf-8").replace("`reconciler/ipam/`", "the IP pool")

    assert "reconciler/ipam" in packages_and_modules() - named_paths(text)
