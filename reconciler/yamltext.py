"""YAML text -> plain values, within limits, keeping every node's line and column.

Parsing uses libyaml's composer (through ruamel.yaml's C binding) and builds plain
values from the node tree itself: this keeps each node's line and column for error
messages at a fifth of the round-trip parser's cost.

Every text comes from outside (a pull request, a report another host pushed), so
loading has limits (policies/limits.yaml): a text's size, how deep it nests, how much
its aliases expand. Each is checked before the work it bounds is done.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Iterator
from typing import Any, Protocol

from pydantic import Field
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]  # libyaml, untyped
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tag import Tag

from reconciler.api.meta import Strict
from reconciler.findings import Finding, Rule


class Limits(Strict):
    """How much one YAML text (a manifests file, a status report) may ask of the loader.

    The operator's are policies/limits.yaml (`policies.load_limits`); this module only
    enforces the ones it is given.
    """

    max_file_bytes: int = Field(ge=1)
    # At most what the loader's own recursion can take with room to spare.
    max_depth: int = Field(ge=1, le=300)
    max_alias_expansion: int = Field(ge=0)


class NodeError(Exception):
    """A document that parses but cannot be turned into plain values; carries the node."""

    def __init__(self, message: str, node: Node) -> None:
        super().__init__(message)
        self.node = node


class DuplicateKeyError(NodeError):
    def __init__(self, key: str, node: Node) -> None:
        super().__init__(f"key {key!r} appears twice in one mapping", node)


_STRING_TAGS = frozenset(
    {"tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"}
)
_MERGE_TAG = "tag:yaml.org,2002:merge"
# The one tag instance of every untagged scalar the resolver leaves as text (nearly all
# keys and values): recognised by identity, without turning the tag into a string.
_TEXT_TAG = VersionedResolver.DEFAULT_SCALAR_TAG
# A constructor bound to a loader: it needs the resolver for implicit scalar tags.
_scalar_constructor: SafeConstructor = YAML(typ="safe", pure=True).constructor


def _scalar_value(node: ScalarNode) -> Any:
    try:
        # Not construct_object: that caches every node in the shared constructor,
        # which would grow for the life of the daemon.
        return _scalar_constructor.construct_non_recursive_object(node)
    except Exception as error:
        # An explicit tag the value does not fit, such as `!!int ten`. Besides
        # ValueError, ruamel's constructors raise IndexError or KeyError on an empty
        # `!!int` or `!!bool`, so every exception here means the same thing.
        tag = (node.tag or "").removeprefix("tag:yaml.org,2002:")
        raise NodeError(f"{node.value!r} is not a valid !!{tag}: {error}", node) from None


class Mark(Protocol):
    """A place in a text, 0-based: libyaml's marks and the pure parser's alike."""

    line: int
    column: int


class LimitExceeded(Exception):
    """A text that asks more of the loader than policies/limits.yaml allows."""

    def __init__(self, message: str, mark: Mark | None) -> None:
        super().__init__(message)
        self.mark = mark


class LoadError(ValueError):
    """A text that cannot be loaded; `finding` says where and why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding


def too_large(max_file_bytes: int) -> str:
    return f"larger than {max_file_bytes} bytes (maxFileBytes in policies/limits.yaml)"


def _too_deep(max_depth: int) -> str:
    return f"nested deeper than {max_depth} levels (maxDepth in policies/limits.yaml)"


def _plain_value(node: Node, depth: int, max_depth: int) -> Any:
    """Plain Python value of a composed node without aliases; duplicate keys are errors.
    `depth` is the node's nesting if it is a collection, 1 at the document's root.

    The path of nearly every file, written out (no call per key, no merge step when
    there is no merge key) to cost what the loader cost before it had limits.
    """
    if isinstance(node, ScalarNode):
        if node.ctag is _TEXT_TAG:
            return node.value
        tag = node.tag or ""
        if tag in _STRING_TAGS or not tag.startswith("tag:yaml.org,2002:"):
            return node.value
        return _scalar_value(node)
    if depth > max_depth:
        # Never, unless the check before composing let a text through that it should not.
        raise LimitExceeded(_too_deep(max_depth), node.start_mark)
    depth += 1
    if isinstance(node, SequenceNode):
        return [_plain_value(item, depth, max_depth) for item in node.value]
    if isinstance(node, MappingNode):
        mapping: dict[Any, Any] = {}
        merged: list[dict[Any, Any]] = []
        not_text = 0
        for key_node, value_node in node.value:
            if key_node.ctag is _TEXT_TAG:
                key = key_node.value
            elif key_node.tag == _MERGE_TAG:
                sources = _plain_value(value_node, depth, max_depth)
                merged.extend(_merge_sources(sources, value_node))
                continue
            else:
                key = _plain_value(key_node, depth, max_depth)
            if type(key) is not str:
                not_text += 1
                _check_key(mapping, key, key_node, not_text)
            elif key in mapping:
                raise DuplicateKeyError(key, key_node)
            mapping[key] = (
                value_node.value
                if value_node.ctag is _TEXT_TAG
                else _plain_value(value_node, depth, max_depth)
            )
        return _merged(mapping, merged) if merged else mapping
    raise TypeError(f"unexpected YAML node {node!r}")


class Converter:
    """Plain values of the node trees of one text, within its limits.

    Aliases are allowed (merge keys `<<: *defaults` use them), but every node an alias
    adds counts against maxAliasExpansion, for the whole file: nine levels of ten
    aliases are a billion values from a kilobyte. An alias is the very node it names
    (libyaml's composer shares it), so a node met a second time is an expansion. A
    text without a `*` has no alias, and nothing needs remembering.
    """

    __slots__ = ("_alias", "_expansion_left", "_limits", "_seen")

    def __init__(self, limits: Limits, text: str) -> None:
        self._limits = limits
        self._expansion_left = limits.max_alias_expansion
        self._seen: set[int] | None = set() if "*" in text else None
        # The outermost node being expanded again: a finding about aliases points there.
        self._alias: Node | None = None

    def value(self, node: Node, depth: int = 1) -> Any:
        """_plain_value, counting what aliases add."""
        seen = self._seen
        max_depth = self._limits.max_depth
        if seen is None:
            return _plain_value(node, depth, max_depth)
        if id(node) in seen:
            return self._expanded(node, depth)
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            return _plain_value(node, depth, max_depth)
        if depth > max_depth:
            # Through aliases (a node may even hold an alias of itself): the text's own
            # nesting was checked before composing.
            raise LimitExceeded(_too_deep(max_depth), (self._alias or node).start_mark)
        if isinstance(node, SequenceNode):
            return [self.value(item, depth + 1) for item in node.value]
        if isinstance(node, MappingNode):
            return self._mapping(node, depth)
        raise TypeError(f"unexpected YAML node {node!r}")

    def _expanded(self, node: Node, depth: int) -> Any:
        self._expansion_left -= 1
        if self._expansion_left < 0:
            raise LimitExceeded(
                f"aliases expand to more than {self._limits.max_alias_expansion} values"
                " (maxAliasExpansion in policies/limits.yaml); the first that did not fit"
                " is an alias of this node",
                (self._alias or node).start_mark,
            )
        outermost = self._alias is None
        if outermost:
            self._alias = node
        seen = self._seen
        assert seen is not None
        # Converted again as if new; the nodes inside it are seen, so each one counts.
        seen.discard(id(node))
        try:
            return self.value(node, depth)
        finally:
            seen.add(id(node))
            if outermost:
                self._alias = None

    def _mapping(self, node: MappingNode, depth: int) -> dict[Any, Any]:
        mapping: dict[Any, Any] = {}
        merged: list[dict[Any, Any]] = []
        not_text = 0
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(_merge_sources(self.value(value_node, depth + 1), value_node))
                continue
            key = self.value(key_node, depth + 1)
            not_text += type(key) is not str
            _check_key(mapping, key, key_node, not_text)
            mapping[key] = self.value(value_node, depth + 1)
        return _merged(mapping, merged)


# Numbers (and true, false, null) as keys of one mapping. Unlike text, whose hashes
# Python randomizes, numbers can be chosen to share one hash: then every key added
# to the mapping is compared with all before it, and a 4 MiB file of such keys takes
# minutes. No manifest, report or configuration has even a few such keys.
MAX_KEYS_NOT_TEXT = 100


def _check_key(mapping: dict[Any, Any], key: Any, key_node: Node, not_text: int) -> None:
    """A key of `mapping` that may be added; `not_text` counts its keys that are not text,
    this one included."""
    if not isinstance(key, Hashable):
        raise NodeError("a mapping key must be a plain value", key_node)
    if not_text > MAX_KEYS_NOT_TEXT:
        raise LimitExceeded(
            f"more than {MAX_KEYS_NOT_TEXT} keys of one mapping are numbers or other"
            " values that are not text",
            key_node.start_mark,
        )
    if key in mapping:
        raise DuplicateKeyError(str(key), key_node)


def _merge_sources(merged: Any, node: Node) -> list[dict[Any, Any]]:
    parts = merged if isinstance(merged, list) else [merged]
    if not all(isinstance(part, dict) for part in parts):
        raise NodeError("a merge key << takes a mapping or a list of mappings", node)
    return parts


def _merged(mapping: dict[Any, Any], merged: list[dict[Any, Any]]) -> dict[Any, Any]:
    # Explicit keys win over merged ones, earlier merge sources over later ones.
    for part in merged:
        for merged_key, merged_value in part.items():
            mapping.setdefault(merged_key, merged_value)
    return mapping


def load_config_text(text: str, display_path: str, limits: Limits) -> Any:
    """A single-document YAML file as plain values. Raises LoadError (a ValueError) when
    it is not valid YAML or beyond the limits; no other exception."""
    try:
        check_size_and_depth(text, limits)
        node = compose_single(text)
        return Converter(limits, text).value(node) if node is not None else None
    except Exception as error:  # whatever it is, it is about this text only
        raise LoadError(failure_finding(display_path, error)) from error


def failure_finding(display_path: str, error: Exception) -> Finding:
    """What went wrong loading a text, as a finding at the place it names (if any)."""
    if isinstance(error, LimitExceeded):
        return place_finding(display_path, error.mark, str(error), Rule.LIMITS)
    if isinstance(error, MarkedYAMLError):
        problem = error.problem or error.context or "invalid YAML"
        mark = error.problem_mark or error.context_mark
        return place_finding(display_path, mark, problem, Rule.YAML)
    if isinstance(error, NodeError):
        return place_finding(display_path, error.node.start_mark, str(error), Rule.YAML)
    if isinstance(error, YAMLError):
        return place_finding(display_path, None, str(error), Rule.YAML)
    if isinstance(error, RecursionError | MemoryError):
        return place_finding(display_path, None, f"too complex to load: {error}", Rule.LIMITS)
    # A bug met by this text.
    message = f"cannot be loaded: {type(error).__name__}: {error}"
    return place_finding(display_path, None, message, Rule.YAML)


def place_finding(display_path: str, mark: Mark | None, message: str, rule: Rule) -> Finding:
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return Finding(display_path, line, column, "", message, rule)


def check_size_and_depth(text: str, limits: Limits) -> None:
    """Refuse, before composing, a text too large or too deeply nested.

    Depth must be known before composing: libyaml's composer recurses in C, and a text
    of some hundred kilobytes of `[` overflows the C stack (the process dies, no Python
    check ever runs). Parsing events only to count depth would cost a quarter of the
    load, so a bound from two string scans answers for every ordinary file, and only a
    file the bound cannot clear has its events counted.
    """
    # A character is at least one byte and at most four: encode only when in doubt.
    if len(text) * 4 > limits.max_file_bytes and (
        len(text) > limits.max_file_bytes
        or len(text.encode("utf-8", "surrogatepass")) > limits.max_file_bytes
    ):
        raise LimitExceeded(too_large(limits.max_file_bytes), None)
    if not within_depth_by_bound(text, limits.max_depth):
        _check_depth_by_events(text, limits)


def within_depth_by_bound(text: str, max_depth: int) -> bool:
    """True when the text surely nests no deeper than max_depth, False when unsure.

    Flow nesting is at most the count of `[` and `{`. A block collection starts at the
    column of its first key, `-` or `?` (or of the anchor or tag before it), which lies
    within its line's run of indentation and `-`, `?`, `:` indicators, and a collection
    inside another starts further right, but for a sequence under a key (which may
    start at the key's column): block nesting is at most twice the number of columns
    such a run spans.
    """
    block = max_depth - text.count("[") - text.count("{")
    if block < 2:
        return False
    for line_break in _OTHER_LINE_BREAKS:
        if line_break in text:
            # libyaml breaks lines at these too; the pattern knows only \n.
            text = text.replace(line_break, "\n")
    return not _indented(block // 2).search(text)


_OTHER_LINE_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


@functools.cache
def _indented(width: int) -> re.Pattern[str]:
    """A line that begins with `width` or more blanks and block indicators."""
    return re.compile(rf"^[ \t?:-]{{{width},}}", re.MULTILINE)


def _check_depth_by_events(text: str, limits: Limits) -> None:
    depth = 0
    # Stops at the first event past the limit: libyaml parses only as far as asked.
    for event in COMPOSER.parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > limits.max_depth:
                raise LimitExceeded(_too_deep(limits.max_depth), event.start_mark)
        elif isinstance(event, CollectionEndEvent):
            depth -= 1


class _YAML12Resolver(VersionedResolver):
    """Resolves implicit tags by YAML 1.2 without asking the parser every time.

    The stock resolver looks the document's version up on each scalar through
    attribute probes that fail under the C parser: half of all parse time.
    Manifests are YAML 1.2 (Kubernetes' own reading).
    """

    @property
    def processing_version(self) -> tuple[int, int]:
        return (1, 2)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """VersionedResolver.resolve for YAML 1.2, with its table looked up once: the
        parser calls it for every scalar, and a plain one is a fifth of parse time.
        A resolved tag is one shared instance, as the default tags already are."""
        if kind is ScalarNode and implicit[0] and not self.yaml_path_resolvers:
            for tag, pattern in _IMPLICIT_1_2.get(value[:1], _IMPLICIT_ANY):
                if pattern.match(value):
                    return tag
            return self.DEFAULT_SCALAR_TAG
        return super().resolve(kind, value, implicit)


_Candidates = tuple[tuple[Tag, re.Pattern[str]], ...]


def _implicit_resolvers() -> tuple[dict[str, _Candidates], _Candidates]:
    """YAML 1.2's implicit resolvers by a plain scalar's first character ("" for the
    empty scalar) as VersionedResolver keeps them, each tag made once, and those for
    any first character (None), which resolve() tries after them. ruamel's patterns
    are proxies that compile on first use and pass every attribute through a Python
    call: the compiled patterns themselves are kept."""

    def resolvers(pairs: list[tuple[str, Any]]) -> _Candidates:
        return tuple((Tag(suffix=tag), re.compile(p.pattern, p.flags)) for tag, p in pairs)

    table = _YAML12Resolver().versioned_resolver
    anywhere = resolvers(table.get(None, []))
    by_first = {
        first: resolvers(pairs) + anywhere for first, pairs in table.items() if first is not None
    }
    return by_first, anywhere


_IMPLICIT_1_2, _IMPLICIT_ANY = _implicit_resolvers()


def _composer() -> YAML:
    yaml = YAML(typ="safe", pure=False)
    yaml.Resolver = _YAML12Resolver
    return yaml


class _TextComposer(CParser, _YAML12Resolver):  # type: ignore[misc]  # CParser is untyped
    """libyaml's composer over one text, resolving by YAML 1.2: what COMPOSER's
    compose_all runs, made of a class defined once. YAML.compose_all defines its loader
    class anew for every text, a sixth of the time a manifests file takes to load."""

    def __init__(self, text: str) -> None:
        CParser.__init__(self, text)
        _YAML12Resolver.__init__(self, loadumper=self)


def compose_all(text: str) -> Iterator[Node | None]:
    """The node tree of every document of text, as COMPOSER.compose_all yields them."""
    composer = _TextComposer(text)
    try:
        while composer.check_node():
            yield composer.get_node()
    finally:
        composer.dispose()
        # The composer is its own resolver and loader (_resolver, loadumper): left in
        # place, that cycle keeps every file's composer, libyaml's buffers of some 16 KiB
        # with it, until a collection, which the loaders hold off while they parse. A
        # repository of 10,000 files then peaked at twice the memory of its objects.
        composer.loadumper = composer._resolver = None


def compose_single(text: str) -> Node | None:
    """The node tree of text's one document, as COMPOSER.compose gives it (an error when
    there are more), without defining a loader class for each text: a host of a fleet
    reads every other host's changed reports in each pass, where that was most of the
    time a report took."""
    composer = _TextComposer(text)
    try:
        node: Node | None = composer.get_single_node()
        return node
    finally:
        composer.dispose()
        composer.loadumper = composer._resolver = None  # the cycle, as in compose_all


# Built once: constructing a YAML instance scans for plug-ins on the disk.
COMPOSER = _composer()
