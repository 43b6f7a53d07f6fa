"""A report read back is what parsing its file gives.

read_document takes a report this process rendered from the JSON of its document
instead of parsing the YAML again (documents._Memo.sources); that is only right where
parsing the YAML gives exactly the document's values. ruamel.yaml does not keep some
line breaks (NEL, LS, PS), so documents holding them are parsed as before.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.loader import load_config_text
from reconciler.reports.documents import read_document, render, write_if_changed
from reconciler.reports.skipped import report_shape_problem

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from(
        [
            "yes",
            "no",
            "on",
            "off",
            "null",
            "~",
            "1.0",
            "0x1F",
            "1e3",
            "10%",
            "a: b",
            "- x",
            "2026-12-03T07:00:00Z",
            "#c",
            "'q'",
            '"dq"',
            "",
            " x",
            "x\x85y",
            "\u2028",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=20,
)
DOCUMENTS = st.dictionaries(TEXT, VALUES, min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS)
def test_a_report_written_here_reads_back_as_parsing_its_file_gives(
    document: dict[str, Any],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "report.yaml"
        text = render(document)
        write_if_changed(path, text)
        parsed = load_config_text(text, "report.yaml")
        # What is not shaped like a report is skipped (test_hostile_reports.py).
        expected = parsed if report_shape_problem(parsed) is None else None
        assert read_document(path) == expected


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS)
def test_most_documents_read_back_exactly(document: dict[str, Any]) -> None:
    """What the memo relies on, where it is used: outside NEL, LS and PS the YAML of a
    document of JSON's types parses back to exactly its values."""
    key = json.dumps(document)
    if any(escaped in key for escaped in ("\\u0085", "\\u2028", "\\u2029")):
        return
    assert load_config_text(render(document), "report.yaml") == json.loads(key)


def test_a_report_changed_behind_our_back_is_read_again(tmp_path: Path) -> None:
    document = {"status": {"phase": "Running", "message": "network default's subnets\nline"}}
    path = tmp_path / "vm.yaml"
    assert write_if_changed(path, render(document))
    assert read_document(path) == document
    path.write_text("status:\n  phase: Stopped\n", encoding="utf-8")
    assert read_document(path) == {"status": {"phase": "Stopped"}}
