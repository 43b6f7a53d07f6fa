"""The CPU a VM asks for (reconciler/model/cpu.py), pinned: placement and reports use it."""

from __future__ import annotations

import pytest

from reconciler.model.cpu import requested_millicores


@pytest.mark.parametrize(
    ("cores", "fraction", "millicores"), [(2, 100, 2000), (3, 33, 990), (1, 5, 50), (4, 25, 1000)]
)
def test_requested_millicores_are_cores_times_the_fraction(
    cores: int, fraction: int, millicores: int
) -> None:
    assert requested_millicores(cores, fraction) == millicores
