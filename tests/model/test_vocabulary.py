"""Condition types, reasons and phases are written once, in reconciler/model (issue 13).

A string such as "ConfigurationNotApplied" typed in a module outside the model is a
word the enums no longer guard: a typo in it would reach every report unnoticed.
Every string constant of reconciler/ outside reconciler/model is checked against the
members of the model's enums; the few that mean something else are listed with why.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from reconciler.model import conditions, phases
from reconciler.reports.documents import render

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"
MODEL = PACKAGE / "model"

# (file under reconciler/, string) -> why that string there is no condition, reason or phase.
ALLOWED: dict[tuple[str, str], str] = {
    ("libvirt/storage/__init__.py", "ShrinkRefused"): "the exception class's name in __all__",
}


def vocabulary() -> dict[str, str]:
    """Every member value of the model's enums -> the member that defines it."""
    found: dict[str, str] = {}
    for enum in (*conditions.VOCABULARIES, *phases.VOCABULARIES):
        for member in enum:
            found.setdefault(member.value, f"{enum.__name__}.{member.name}")
    return found


def words_written(source: str, words: dict[str, str]) -> list[tuple[int, str]]:
    """(line, string) of each string constant in `source` that is one of `words`."""
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in words
    )


def modules_outside_the_model() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if not p.is_relative_to(MODEL)]


def test_no_module_outside_the_model_writes_a_condition_type_reason_or_phase() -> None:
    # given the model's vocabularies
    words = vocabulary()
    # when every module outside reconciler/model is read
    written = [
        f"reconciler/{relative}:{line}: {word!r}: use {words[word]}"
        for path in modules_outside_the_model()
        for relative in [path.relative_to(PACKAGE).as_posix()]
        for line, word in words_written(path.read_text(), words)
        if (relative, word) not in ALLOWED
    ]
    # then none writes one of their values as a string
    assert written == []


def test_the_guard_finds_a_condition_spelled_as_strings() -> None:
    # given a module that writes a condition the old way
    source = 'status.set(Condition("ConfigurationApplied", False, "ConfigurationNotApplied"))\n'
    # when it is checked
    found = words_written(source, vocabulary())
    # then both its type and its reason are named
    assert found == [(1, "ConfigurationApplied"), (1, "ConfigurationNotApplied")]


def test_the_guard_finds_a_phase_compared_as_a_string() -> None:
    # given a phase comparison written with a literal
    source = 'if status.phase == "Stopped":\n    pass\n'
    # when it is checked; then the phase is named
    assert words_written(source, vocabulary()) == [(1, "Stopped")]


def test_every_allowed_string_is_still_written_where_the_list_says() -> None:
    # given the allow-list
    words = vocabulary()
    # when each entry's file is read
    stale = [
        (relative, word)
        for relative, word in ALLOWED
        if not (PACKAGE / relative).is_file()
        or word not in {w for _, w in words_written((PACKAGE / relative).read_text(), words)}
    ]
    # then no entry outlives the string it excuses
    assert stale == []


def test_a_condition_is_written_into_a_report_as_the_platforms_plain_words() -> None:
    # given a condition made from the enums
    condition = conditions.mark_false(
        conditions.VMCondition.CONFIGURATION_APPLIED,
        conditions.VMReason.CONFIGURATION_NOT_APPLIED,
        "defining the domain failed",
    )
    # when it is rendered as a report's YAML
    text = render({"conditions": [condition.as_dict("2026-12-03T00:00:00Z")]})
    # then it reads as the platform writes it, with no trace of the enums
    assert text == (
        "conditions:\n"
        "- type: ConfigurationApplied\n"
        "  status: 'False'\n"
        "  reason: ConfigurationNotApplied\n"
        "  message: defining the domain failed\n"
        "  lastTransitionTime: '2026-12-03T00:00:00Z'\n"
    )


def test_the_model_imports_only_the_api_and_the_standard_library() -> None:
    # given the model layer's modules; when their imports are read
    outside = sorted(
        f"{path.name}: {name}"
        for path in MODEL.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
        )
        if not name.startswith(("reconciler.api", "reconciler.model"))
        and name.partition(".")[0] not in sys.stdlib_module_names
    )
    # then none reaches above the api
    assert outside == []
