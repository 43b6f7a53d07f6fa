"""Report documents as YAML text, byte for byte what ruamel.yaml writes, at a fraction
of its cost.

ruamel.yaml's pure-Python emitter takes milliseconds per report, and a first pass
over a thousand VMs writes thousands of them. Reports are plain data (mappings with
text keys, lists, text, integers, booleans, None), whose block layout is simple:
this writes that layout directly, and asks ruamel.yaml itself how each distinct piece
of text is written (its scalar analysis and its resolver, which say whether a text
could stand plain, and which quotes it needs), so the two never disagree on a string.
Anything beyond what is written here (other types, line breaks, text long enough for
ruamel to fold, keys too long to be simple, one object in two places, quotes that
would need escapes beyond `\\"` and `\\\\`) makes `yaml_text` answer None: the caller
renders that document with ruamel.yaml as before.
tests/reports/test_report_writer.py proves the bytes equal over generated documents.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.serializer import Serializer

_STR_TAG = "tag:yaml.org,2002:str"
# ruamel folds a scalar at a space once its line passes the width (4096, report_yaml);
# texts shorter than this, at any depth a report has, never come near it.
_MAX_TEXT = 1024
# ruamel writes a long key as a complex key (`? key`): from 123 characters on (its limit
# of 128 counts the `!!str` tag too). Report keys are field names, far shorter.
_MAX_KEY = 100
_LINE_BREAKS = frozenset("\n\r\x85\u2028\u2029")
# Indentation past which the line could near the width: a document nested that deep
# (ruamel.yaml itself gives up on far less) is left to ruamel.yaml.
_MAX_INDENT = 1500


class _Beyond(Exception):
    """A document whose text this writer does not produce itself."""


class _Scalars:
    """How ruamel.yaml writes each distinct text, as a value and as a key."""

    LIMIT = 100_000

    def __init__(self, yaml: YAML) -> None:
        # The emitter asks its serializer which YAML version it writes (1.2: none given).
        yaml.Serializer = Serializer
        self._emitter = yaml.emitter
        self._resolver = yaml.resolver
        self.values: dict[str, str | None] = {}
        self.keys: dict[str, str | None] = {}

    def text(self, value: str, key: bool) -> str:
        known = self.keys if key else self.values
        written = known.get(value, "")
        if written == "":
            if len(known) > self.LIMIT:
                known.clear()
            written = known[value] = self._written(value, key)
        if written is None:
            raise _Beyond
        return written

    def _written(self, value: str, key: bool) -> str | None:
        if len(value) > (_MAX_KEY if key else _MAX_TEXT) or not _LINE_BREAKS.isdisjoint(value):
            return None
        analysis = self._emitter.analyze_scalar(value)
        if analysis.multiline:
            return None
        # ruamel's Emitter.choose_scalar_style for a str in block context, unstyled.
        plain_reads_back = self._resolver.resolve(ScalarNode, value, (True, False)) == _STR_TAG
        if (
            plain_reads_back
            and not (key and analysis.empty)
            and analysis.allow_block_plain
            and value != ""
        ):
            return value
        if value == "":
            return "''"
        if analysis.allow_double_quoted and "'" in value:
            return _double_quoted(value)
        if analysis.allow_single_quoted:
            return "'" + value.replace("'", "''") + "'"
        return _double_quoted(value)


def _double_quoted(value: str) -> str | None:
    # Only printable ASCII: anything else is escaped by rules not repeated here.
    if not value.isascii() or not value.isprintable():
        return None
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def report_yaml() -> YAML:
    """ruamel.yaml as reports have always been written with it."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    # Keep our stable, meaningful order (ruamel's stubs type this attribute as None).
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.width = 4096
    return yaml


def ruamel_text(document: Any) -> str:
    buffer = io.StringIO()
    report_yaml().dump(document, buffer)
    return buffer.getvalue()


_SCALARS: _Scalars | None = None


def _scalars() -> _Scalars:
    global _SCALARS
    if _SCALARS is None:
        _SCALARS = _Scalars(report_yaml())
    return _SCALARS


def yaml_text(document: Any) -> str | None:
    """The document as ruamel_text writes it, or None when it
    holds something this writer leaves to ruamel.yaml."""
    if type(document) is not dict:
        return None
    lines: list[str] = []
    try:
        if document:
            _mapping(document, "", "", lines, _scalars(), set())
        else:
            lines.append("{}")
    except (_Beyond, RecursionError):
        return None
    lines.append("")
    return "\n".join(lines)


def _scalar(value: Any, scalars: _Scalars) -> str:
    kind = type(value)
    if kind is str:
        return scalars.text(value, key=False)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    raise _Beyond


def _enter(container: dict[Any, Any] | list[Any], seen: set[int]) -> None:
    """ruamel.yaml writes one object met twice as an anchor and an alias: left to it."""
    if id(container) in seen:
        raise _Beyond
    seen.add(id(container))


def _mapping(
    mapping: dict[Any, Any],
    first: str,
    indent: str,
    lines: list[str],
    scalars: _Scalars,
    seen: set[int],
) -> None:
    """A non-empty mapping whose first line starts with `first` and the rest with
    `indent` (they differ for a mapping that is a list's item: `- key: ...`)."""
    _enter(mapping, seen)
    if len(indent) > _MAX_INDENT:
        raise _Beyond
    lead = first
    for key, value in mapping.items():
        if type(key) is not str:
            raise _Beyond
        head = lead + scalars.text(key, key=True) + ":"
        lead = indent
        kind = type(value)
        if kind is dict:
            if value:
                lines.append(head)
                _mapping(value, indent + "  ", indent + "  ", lines, scalars, seen)
            else:
                _enter(value, seen)
                lines.append(head + " {}")
        elif kind is list:
            if value:
                lines.append(head)
                # A list under a key is not indented further: its dashes line up with it.
                _sequence(value, indent, indent, lines, scalars, seen)
            else:
                _enter(value, seen)
                lines.append(head + " []")
        else:
            lines.append(head + " " + _scalar(value, scalars))


def _sequence(
    items: list[Any],
    first: str,
    indent: str,
    lines: list[str],
    scalars: _Scalars,
    seen: set[int],
) -> None:
    _enter(items, seen)
    lead = first
    for item in items:
        dash = lead + "- "
        lead = indent
        kind = type(item)
        if kind is dict and item:
            _mapping(item, dash, indent + "  ", lines, scalars, seen)
        elif kind is list and item:
            _sequence(item, dash, indent + "  ", lines, scalars, seen)
        elif kind is dict or kind is list:
            _enter(item, seen)
            lines.append(dash + ("{}" if kind is dict else "[]"))
        else:
            lines.append(dash + _scalar(item, scalars))
