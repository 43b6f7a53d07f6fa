"""The loader's YAML 1.2 resolver and composer (reconciler/yamltext.py) type every scalar
as ruamel.yaml's own YAML 1.2 resolver does, and compose as its YAML.compose_all does:
`replicas: 010`, `enabled: yes` or `size: 1e3` mean to a manifest what they mean in the
YAML spec, however the lookup is done, and every node is where ruamel puts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler.policies import load_limits
from reconciler.yamltext import COMPOSER, Converter, compose_all

# The stock resolver, reading YAML 1.2 as the loader does (pure=True: it asks the
# parser for the version, which the pure parser answers).
SAMPLE_REPO = Path(__file__).resolve().parents[2] / "sample-repo"
STOCK = YAML(typ="safe", pure=True)
STOCK.version = (1, 2)

# Where YAML 1.1 and 1.2 part, and each tag's edge cases: the empty value, null, bools,
# octal, hex, binary, underscores, floats, infinities, merge, value and timestamps.
SCALARS = (
    "",
    "~",
    "null",
    "Null",
    "NULL",
    "nULL",
    "true",
    "True",
    "TRUE",
    "tRUE",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "0",
    "010",
    "0o17",
    "0x1F",
    "0b101",
    "-12",
    "+12",
    "1_000",
    "1:30",
    "1.5",
    "-.5",
    ".5",
    "1e3",
    "1.0e+3",
    "6.02e23",
    ".inf",
    "-.Inf",
    ".NaN",
    "<<",
    "=",
    "2024-06-10",
    "2024-06-10T12:30:00Z",
    "2024-06-10 12:30:00.5 +02:00",
    "10Gi",
    "50%",
    "vm-00001",
    "10.66.0.1",
    "0.5",
    "+",
    ".",
    "'010'",
    '"true"',
    "!!str 10",
    "!!int 10",
)


def tags_of(text: str, composer: YAML) -> list[str | None]:
    """The tag of every scalar of a one-document text, in document order."""
    tags: list[str | None] = []
    pending = [composer.compose(text)]
    while pending:
        node = pending.pop(0)
        if isinstance(node.value, list):
            for item in node.value:
                pending.extend(item if isinstance(item, tuple) else (item,))
        else:
            tags.append(node.tag)
    return tags


def document(scalars: list[str]) -> str:
    return "".join(f"key{index}: {scalar}\n" for index, scalar in enumerate(scalars))


@pytest.mark.parametrize("scalar", SCALARS)
def test_a_scalar_is_typed_as_yaml_1_2_types_it(scalar: str) -> None:
    text = document([scalar])

    assert tags_of(text, COMPOSER) == tags_of(text, STOCK)


def test_scalars_in_flow_style_are_typed_as_yaml_1_2_types_them() -> None:
    # A colon or an empty value would end a flow item early.
    items = ", ".join(s for s in SCALARS if s and ":" not in s)
    text = f"values: [{items}]\nmore: {{a: 010, b: yes, c: ~, d: 1e3}}\n"

    assert tags_of(text, COMPOSER) == tags_of(text, STOCK)


PLAIN_SCALARS = st.text(alphabet="0123456789-+._eExXoObBtTrRuUfFaAlLsSnNyY~<=:", max_size=12)


@settings(max_examples=300)
@given(st.lists(PLAIN_SCALARS, min_size=1, max_size=8))
def test_any_plain_scalar_is_typed_as_yaml_1_2_types_it(scalars: list[str]) -> None:
    text = document(scalars)
    try:
        expected: list[str | None] | YAMLError = tags_of(text, STOCK)
    except YAMLError as error:
        expected = error

    if isinstance(expected, YAMLError):
        with pytest.raises(YAMLError):
            tags_of(text, COMPOSER)
    else:
        assert tags_of(text, COMPOSER) == expected


def test_the_values_of_a_manifest_keep_their_yaml_types() -> None:
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels: {a: '1', b: x}\n"
        "data: {count: 010, on: yes, ratio: 1e3, none: ~, hex: 0x1F, text: plain}\n"
    )

    values: Any = Converter(load_limits(), text).value(COMPOSER.compose(text))

    assert values["data"] == {
        "count": 10,
        "on": "yes",
        "ratio": 1000.0,
        "none": None,
        "hex": 31,
        "text": "plain",
    }
    assert values["metadata"]["labels"] == {"a": "1", "b": "x"}


def shape(node: Any) -> Any:
    """A node tree as comparable values: type, tag, place, and the value or the children."""
    if node is None:
        return None
    place = (type(node).__name__, node.tag, node.start_mark.line, node.start_mark.column)
    if isinstance(node.value, list):
        return (
            *place,
            [shape(i) if not isinstance(i, tuple) else tuple(map(shape, i)) for i in node.value],
        )
    return (*place, node.value)


def test_every_file_of_the_sample_repository_composes_as_ruamel_composes_it() -> None:
    texts = [path.read_text() for path in sorted(SAMPLE_REPO.rglob("*.yaml"))]

    assert texts
    for text in texts:
        assert [shape(n) for n in compose_all(text)] == [
            shape(n) for n in COMPOSER.compose_all(text)
        ]
