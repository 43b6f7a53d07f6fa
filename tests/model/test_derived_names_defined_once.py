"""The domain name `NAME.NAMESPACE` is built in reconciler/model/names.py only: a second
hand-written copy is how two parts of the daemon came to disagree on a VM's domain."""

from __future__ import annotations

import ast
from pathlib import Path

RECONCILER = Path(__file__).resolve().parents[2] / "reconciler"
MODEL = RECONCILER / "model"


def hand_built_domain_names(source: str) -> list[int]:
    """The lines of f-strings that join something ending in `name`, a dot and something
    ending in `namespace` (`f"{vm.name}.{vm.namespace}"`, `f"{name}.{namespace}-…"`)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.JoinedStr):
            continue
        parts = node.values
        for first, dot, second in zip(parts, parts[1:], parts[2:], strict=False):
            if (
                isinstance(first, ast.FormattedValue)
                and isinstance(dot, ast.Constant)
                and dot.value == "."
                and isinstance(second, ast.FormattedValue)
                and ast.unparse(first.value).endswith("name")
                and ast.unparse(second.value).endswith("namespace")
            ):
                lines.append(node.lineno)
    return lines


def test_no_domain_name_is_built_by_hand_outside_the_model() -> None:
    found = [
        f"{path.relative_to(RECONCILER.parent)}:{line}"
        for path in sorted(RECONCILER.rglob("*.py"))
        if MODEL not in path.parents
        for line in hand_built_domain_names(path.read_text())
    ]
    assert found == [], "build domain names with reconciler.model.names.domain_name"


def test_the_scan_finds_a_domain_name_built_by_hand() -> None:
    source = 'a = f"{vm.name}.{vm.namespace}"\n\nb = f"{vm_name}.{namespace}-{digest}"\n'
    assert hand_built_domain_names(source) == [1, 3]


def test_the_scan_leaves_other_dotted_names_alone() -> None:
    source = 'a = f"{namespace}.{vm_name}-"\nb = f"{pool}/{name}"\nc = f"{stem}.{fmt}"\n'
    assert hand_built_domain_names(source) == []


def test_the_scan_sees_the_models_own_builder() -> None:
    assert hand_built_domain_names((MODEL / "names.py").read_text()) != []
