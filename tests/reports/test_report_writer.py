"""Reports are written byte for byte as ruamel.yaml has always written them.

A report that changed is written by reconciler/reports/yamlwriter.py, not by ruamel.yaml's
pure-Python emitter (milliseconds per report). Any byte of difference would rewrite
every report of every repository once, and flip them back and forth between hosts of
the old and the new version: so the writer's text is compared with ruamel.yaml's over
generated documents of every shape a report has, and text of every nasty kind.
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.reports.documents import render
from reconciler.reports.yamlwriter import ruamel_text, yaml_text

NASTY = [
    "",
    " ",
    " x",
    "x ",
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "n",
    "null",
    "Null",
    "~",
    "true",
    "False",
    "1",
    "-1",
    "+1",
    "1.0",
    ".5",
    "1e3",
    "0x1F",
    "0o17",
    "017",
    "1_000",
    ".inf",
    "-.Inf",
    ".nan",
    "10%",
    "100m",
    "1Gi",
    "2026-12-03",
    "2026-12-03T07:00:00Z",
    "2026-12-03 07:00:00",
    "a: b",
    "a:b",
    "a:",
    ":a",
    ":",
    "::1",
    "fd00::1",
    "52:54:00:ab:cd:ef",
    "- x",
    "-x",
    "-",
    "--",
    "---",
    "...",
    "? x",
    "?x",
    "?",
    "#c",
    "a #c",
    "a#c",
    "'q'",
    "it's",
    '"dq"',
    'say "hi"',
    "both ' and \"",
    "back\\slash",
    "[a]",
    "{a}",
    "a, b",
    "&anchor",
    "*alias",
    "!tag",
    "|",
    ">",
    "%",
    "@",
    "`",
    "<<",
    "=",
    "\t",
    "a\tb",
    "a\nb",
    "a\n",
    "\n",
    "a\r\nb",
    "x\x85y",
    "a\u2028b",
    "a\u2029b",
    "\x00",
    "\x07",
    "\x7f",
    "\ufeff",
    "é",
    "é: x",
    "naïve 'quote'",
    "日本語",
    "emoji \U0001f600",
    "\u00a0nbsp",
    "a  b",
    "a " * 700,
    "x" * 1500,
    "word " * 900,
    "k" * 126,
    "k" * 127,
    "k" * 128,
    "k" * 130,
]
TEXT = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.text(string.printable, max_size=30),
    st.text(" -:#'\"?,[]{}!&*|>%@`ab01", max_size=12),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=25,
)
DOCUMENTS = st.dictionaries(TEXT, VALUES, max_size=6)

REPORT = {
    "apiVersion": "virtualization.deckhouse.io/v1alpha2",
    "kind": "VirtualMachine",
    "metadata": {
        "name": "vm-1",
        "namespace": "default",
        "creationTimestamp": "2024-01-01T00:00:00Z",
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "AgentReady", "status": "True", "reason": "AgentReady", "message": ""},
        ],
        "resources": {"cpu": {"cores": 1, "coreFraction": "10%"}, "memory": {"size": "1Gi"}},
        "networks": [{"type": "Main", "ipAddress": "10.0.0.5", "macAddress": "52:54:00:00:00:01"}],
        "blockDeviceRefs": [],
        "stats": {},
        "lastError": None,
    },
}


@settings(max_examples=1500, deadline=None)
@given(DOCUMENTS)
@example(REPORT)
@example({})
@example({"shared": [{"a": 1}] * 2})
def test_a_report_is_written_byte_for_byte_as_ruamel_writes_it(document: dict[str, Any]) -> None:
    assert render(document) == ruamel_text(document)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NASTY), st.sampled_from(NASTY))
def test_every_nasty_text_as_key_and_value_is_written_as_ruamel_writes_it(
    key: str, value: str
) -> None:
    document = {key: value, "list": [value, {key: [value]}]}
    assert render(document) == ruamel_text(document)


def test_a_realistic_report_is_written_without_ruamel() -> None:
    # The fast path must actually be taken for what passes write, or it buys nothing.
    assert yaml_text(REPORT) == ruamel_text(REPORT)


def test_a_deeply_nested_report_is_written_as_ruamel_writes_it() -> None:
    document: dict[str, Any] = {"leaf": "x"}
    for _ in range(150):
        document = {"level": [document, "y"]}

    assert yaml_text(document) == ruamel_text(document)


def test_a_document_with_a_type_ruamel_alone_writes_is_still_written_as_before() -> None:
    document = {"ratio": 0.5, "nan": float("nan"), "tuple": (1, 2)}
    assert yaml_text(document) is None
    assert render(document) == ruamel_text(document)


ONE_LINE_ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
ASCII_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), ONE_LINE_ASCII, st.sampled_from(NASTY[:70])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(ONE_LINE_ASCII, inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(ONE_LINE_ASCII, ASCII_VALUES, max_size=6))
def test_every_one_line_ascii_report_is_written_by_the_fast_writer_as_ruamel_writes_it(
    document: dict[str, Any],
) -> None:
    # What reports hold (names, addresses, reasons, messages): never left to ruamel.
    assert yaml_text(document) == ruamel_text(document)
