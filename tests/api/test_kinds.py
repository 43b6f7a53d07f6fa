"""The table of kinds (reconciler/api/__init__.py): what it says of each kind without
importing it agrees with the kind's model, and looking a kind up gives that model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import api
from reconciler.api import KINDS, PLURALS
from reconciler.api.meta import Manifest

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", list(PLURALS))
def test_a_kind_looked_up_is_the_model_of_that_kind_with_that_plural(kind: str) -> None:
    model = KINDS[kind]

    assert issubclass(model, Manifest)
    assert kind == model.KIND
    assert PLURALS[kind] == model.PLURAL


def test_every_manifest_model_is_a_kind_of_the_table() -> None:
    models = {model.KIND for model in _subclasses(Manifest)}

    assert models == set(KINDS)


def test_an_unknown_kind_is_not_in_the_table() -> None:
    assert "Pod" not in KINDS
    assert KINDS.get("Pod") is None
    with pytest.raises(KeyError):
        KINDS["Pod"]


def test_naming_the_kinds_imports_none_of_their_models() -> None:
    probe = (
        "import sys; from reconciler.api import KINDS, PLURALS, ObjectId;"
        " assert 'VirtualMachine' in KINDS and sorted(KINDS) and PLURALS;"
        " print(*sorted(m for m in sys.modules if m.startswith('reconciler.api.')))"
    )

    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=CHECKOUT, capture_output=True, text=True, check=True
    )

    assert done.stdout.split() == ["reconciler.api.meta", "reconciler.api.names"]


def test_an_unknown_name_of_the_package_is_an_attribute_error() -> None:
    with pytest.raises(ImportError):
        from reconciler.api import NoSuchKind  # type: ignore[attr-defined]  # noqa: F401


def _subclasses(model: type[Manifest]) -> set[type[Manifest]]:
    for kind in KINDS:
        KINDS[kind]  # every kind's module imported, so that its models exist
    found: set[type[Manifest]] = set()
    pending = list(model.__subclasses__())
    while pending:
        subclass = pending.pop()
        found.add(subclass)
        pending.extend(subclass.__subclasses__())
    return {m for m in found if "KIND" in vars(m)}


def test_every_name_the_package_exports_resolves_to_its_modules_own() -> None:
    for name in api.__all__:
        value = getattr(api, name)

        if name not in ("KINDS", "PLURALS"):
            home = sys.modules[f"reconciler.api.{api._HOMES[name]}"]
            assert value is getattr(home, name), name
