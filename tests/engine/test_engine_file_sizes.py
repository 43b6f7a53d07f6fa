"""The engine stays readable (issue 13): no file under reconciler/engine/ over 400 lines,
and plan.py, which only orders the steps, at most 250."""

from __future__ import annotations

from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "reconciler" / "engine"
LIMIT, PLAN_LIMIT = 400, 250


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_engine_file_is_over_400_lines() -> None:
    long = {str(p.relative_to(ENGINE)): lines(p) for p in ENGINE.rglob("*.py") if lines(p) > LIMIT}
    assert not long, f"split these by concern: {long}"


def test_plan_only_orders_the_steps() -> None:
    assert lines(ENGINE / "plan.py") <= PLAN_LIMIT
