"""Property tests of the loader's limits: whatever a pull request puts into a file
(deep structures, aliases, odd scalars, random bytes, random unicode), loading it
returns, within bounded time and memory, with the file loaded or with findings."""

from __future__ import annotations

import io
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

from reconciler.findings import Rule
from reconciler.loader import LoadResult, load_directory, load_text, manifest_files
from reconciler.policies import load_limits
from reconciler.yamltext import COMPOSER, within_depth_by_bound
from tests.hostile_yaml import alias_bomb, deep_mapping, deep_sequence
from tests.rules.test_properties import YAMLISH, mutated_manifests

SHIPPED = load_limits()
# Far above what any of these inputs needs when the limits hold (the worst, an alias
# bomb cut off at 100,000 values, peaks near 2 MiB), far below what one that escaped
# them would take (gigabytes).
MEMORY_BOUND = 64 * 2**20
# Generous: what it guards against is a file that loads for minutes.
HOSTILE = settings(
    max_examples=150,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ODD_SCALARS = st.sampled_from(
    [
        "!!int " + "9" * 5000,
        "9" * 5000,
        "!!float 1e99999",
        ".nan",
        "-.inf",
        "0x_",
        "0o9",
        "2001-13-45",
        "!!timestamp not-a-time",
        "!!binary '###'",
        "!!bool maybe",
        "!!null x",
        "!!set {a}",
        "!!omap [a: 1]",
        "!custom x",
        "'\\u2028'",
        '"\\ud800"',
        "\u202e\u0000",
        "~",
    ]
)


@st.composite
def deep_texts(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 20_000))
    return draw(st.sampled_from([deep_sequence, deep_mapping]))(depth)


@st.composite
def alias_texts(draw: st.DrawFn) -> str:
    bomb = alias_bomb(draw(st.integers(1, 10)), draw(st.integers(1, 12)))
    if draw(st.booleans()):
        # The same bomb reached through merge keys.
        bomb = bomb.replace("[*", "{<<: [*").replace("]\n", "]}\n").replace("a0: &a0 {<<:", "a0:")
    return bomb


@st.composite
def odd_scalar_texts(draw: st.DrawFn) -> str:
    scalars = draw(st.lists(ODD_SCALARS, min_size=1, max_size=4))
    return "kind: VirtualDisk\n" + "".join(f"k{n}: {s}\n" for n, s in enumerate(scalars))


HOSTILE_TEXT = (
    deep_texts()
    | alias_texts()
    | odd_scalar_texts()
    | YAMLISH
    | mutated_manifests()
    | st.text(max_size=300)
    | st.binary(max_size=300).map(lambda raw: raw.decode("utf-8", "replace"))
)


def _documents(text: str) -> int:
    """Documents that are not empty (an empty one, `---` alone, is no object and no error)."""
    return sum(
        1
        for node in COMPOSER.compose_all(text)
        if node is not None and node.tag != "tag:yaml.org,2002:null"
    )


def _load_bounded(load: Any, *args: Any) -> LoadResult:
    tracemalloc.start()
    try:
        result: LoadResult = load(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB"
    return result


@HOSTILE
@given(HOSTILE_TEXT)
def test_any_text_is_loaded_or_has_findings_within_bounded_memory(text: str) -> None:
    result = _load_bounded(load_text, text, "hostile.yaml")

    for finding in result.findings:
        assert finding.path == "hostile.yaml" and finding.line >= 1 and finding.message
    if result.findings:
        return
    # Without a finding, the file was within the limits: each document is an object.
    assert len(result.objects) == _documents(text)


@settings(max_examples=40, deadline=timedelta(seconds=10))
@given(st.lists(st.binary(max_size=2000) | HOSTILE_TEXT.map(str.encode), min_size=1, max_size=3))
def test_any_bytes_on_disk_are_loaded_or_have_findings(tmp_path_factory: Any, files: Any) -> None:
    root: Path = tmp_path_factory.mktemp("hostile")
    for index, raw in enumerate(files):
        (root / f"f{index}.yaml").write_bytes(raw)

    result = _load_bounded(load_directory, root)

    assert sorted(result.files) == [f"f{index}.yaml" for index in range(len(files))]
    assert {f.path for f in result.findings} <= set(result.files)


# Nested values as a YAML writer lays them out, in every style and indentation.
NESTED = st.recursive(
    st.sampled_from(["x", 1, None, ""]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "bb", "-c", "? d"]), children, max_size=3)
    ),
    max_leaves=30,
)


@st.composite
def nested_texts(draw: st.DrawFn) -> str:
    mapping, sequence, offset = draw(
        st.tuples(st.integers(2, 6), st.integers(2, 6), st.integers(0, 4))
    )
    writer = YAML(typ="safe", pure=True)
    writer.default_flow_style = draw(st.sampled_from([None, True, False]))
    writer.indent(mapping=mapping, sequence=max(sequence, offset + 2), offset=offset)
    buffer = io.StringIO()
    writer.dump({"kind": "X", "v": draw(NESTED)}, buffer)
    line_break = draw(st.sampled_from(["\n", "\r\n", "\r", "\u2028"]))
    return buffer.getvalue().replace("\n", line_break)


def _depth(text: str) -> int:
    depth = deepest = 0
    for event in COMPOSER.parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    return deepest


# Nesting that a writer does not produce but a person may: compact sequences and
# explicit keys on one line, sequences at their key's column.
HAND_WRITTEN = [
    "- - - - - a\n",
    "? - ? - ? - a\n        : b\n    : c\n: d\n",
    "- ? - a\n  : - b\n",
    "a:\n- b:\n  - c:\n    - d:\n      - e\n",
    "- &x a:\n  - !t b:\n    - c\n",
    "--- \n- - - [a, {b: [c]}]\n",
]


@settings(max_examples=300, deadline=None)
@given(text=nested_texts() | st.sampled_from(HAND_WRITTEN), max_depth=st.integers(1, 10))
def test_the_check_before_composing_never_clears_a_text_deeper_than_the_limit(
    text: str, max_depth: int
) -> None:
    # What keeps libyaml's recursive composer from a text too deep for the C stack.
    if within_depth_by_bound(text, max_depth):
        assert _depth(text) <= max_depth


@settings(max_examples=300, deadline=None)
@given(text=nested_texts() | st.sampled_from(HAND_WRITTEN), max_depth=st.integers(1, 10))
def test_a_text_is_refused_exactly_when_it_nests_deeper_than_the_limit(
    text: str, max_depth: int
) -> None:
    limits = SHIPPED.model_copy(update={"max_depth": max_depth})

    result = load_text(text, "nested.yaml", limits)

    refused = any(f.rule is Rule.LIMITS for f in result.findings)
    assert refused == (_depth(text) > max_depth)


def test_every_file_of_the_sample_repository_clears_the_check_without_parsing_twice() -> None:
    # The check's cheap path is what keeps the limits off a large repository's load time.
    files = list(manifest_files(Path(__file__).parents[2] / "sample-repo"))

    assert files
    for path in files:
        assert within_depth_by_bound(path.read_text(encoding="utf-8"), SHIPPED.max_depth), path
