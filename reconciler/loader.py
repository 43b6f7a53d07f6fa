"""YAML files -> validated manifest objects that remember where they were written.

Parsing uses libyaml's composer (through ruamel.yaml's C binding) and builds
plain values from the node tree itself: this keeps each node's line and column
for error messages at a fifth of the round-trip parser's cost.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver

from reconciler.api import DEFAULT_NAMESPACE, KINDS, FieldError, Manifest, ObjectId
from reconciler.confined import SymlinkRefused, read_repository_link, repository_target
from reconciler.findings import Finding, Rule

YAML_SUFFIXES = (".yaml", ".yml")
SKIPPED_DIRS = frozenset({"status"})

Loc = tuple[str | int, ...]


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


def _merge_sources(node: Node) -> list[dict[Any, Any]]:
    merged = node_to_value(node)
    parts = merged if isinstance(merged, list) else [merged]
    if not all(isinstance(part, dict) for part in parts):
        raise NodeError("a merge key << takes a mapping or a list of mappings", node)
    return parts


def node_to_value(node: Node) -> Any:
    """Plain Python value of a composed node; duplicate keys are errors."""
    if isinstance(node, ScalarNode):
        tag = node.tag or ""
        if tag in _STRING_TAGS or not tag.startswith("tag:yaml.org,2002:"):
            return node.value
        return _scalar_value(node)
    if isinstance(node, SequenceNode):
        return [node_to_value(item) for item in node.value]
    if isinstance(node, MappingNode):
        mapping: dict[Any, Any] = {}
        merged: list[dict[Any, Any]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(_merge_sources(value_node))
                continue
            key = node_to_value(key_node)
            if not isinstance(key, Hashable):
                raise NodeError("a mapping key must be a plain value", key_node)
            if key in mapping:
                raise DuplicateKeyError(str(key), key_node)
            mapping[key] = node_to_value(value_node)
        # Explicit keys win over merged ones, earlier merge sources over later ones.
        for part in merged:
            for merged_key, merged_value in part.items():
                mapping.setdefault(merged_key, merged_value)
        return mapping
    raise TypeError(f"unexpected YAML node {node!r}")


@dataclass(frozen=True)
class SourceDocument:
    """One YAML document of one file, able to say where any of its fields is written.

    Only the text is kept: the node tree of a document is twenty times its size,
    and a daemon keeps every object of the repository loaded while lines are only
    needed for the rare finding. The tree is composed again on demand.
    """

    path: str
    text: str = field(repr=False)
    index: int = 0

    @property
    def node(self) -> Node:
        return _composed(self.text)[self.index]

    def locate(self, loc: Loc) -> tuple[int, int]:
        """1-based line and column of the deepest part of `loc` that exists.

        A missing field resolves to its parent, which is where it should be added.
        """
        node = self.node
        mark = node.start_mark
        for part in loc:
            if isinstance(node, MappingNode) and isinstance(part, str):
                for key_node, value_node in node.value:
                    if key_node.value == part:
                        mark, node = key_node.start_mark, value_node
                        break
                else:
                    break
            elif isinstance(node, SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    break
                node = node.value[part]
                mark = node.start_mark
            elif isinstance(part, str) and not isinstance(node, MappingNode | SequenceNode):
                break
        return mark.line + 1, mark.column + 1


@dataclass(frozen=True)
class LoadedObject:
    model: Manifest
    source: SourceDocument

    @cached_property
    def id(self) -> ObjectId:
        return self.model.id

    def finding(self, loc: Loc, message: str, rule: Rule) -> Finding:
        line, column = self.source.locate(loc)
        return Finding(self.source.path, line, column, str(self.id), message, rule)


@dataclass
class LoadResult:
    objects: list[LoadedObject] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # Objects whose kind and name are known but which failed to validate; rules
    # treat them as present so one broken file does not cascade into others.
    broken: dict[ObjectId, Finding] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def extend(self, other: LoadResult) -> None:
        self.objects.extend(other.objects)
        self.findings.extend(other.findings)
        self.broken.update(other.broken)
        self.files.extend(other.files)


def manifest_files(root: Path) -> Iterator[Path]:
    """Every YAML file under root, in a stable order, skipping status/ and dot-folders.

    Symlinked folders are not descended into: one that leads to a folder of the
    repository has its files read there; one that leads anywhere else is yielded
    itself, so that load_file reports it (rule symlink) instead of its manifests
    silently missing from the revision.
    """
    for directory, subdirs, files in os.walk(root):
        kept = []
        for name in sorted(subdirs):
            if name.startswith(".") or (name in SKIPPED_DIRS and Path(directory) == root):
                continue
            path = Path(directory) / name
            if not os.path.islink(path):
                kept.append(name)
            elif repository_target(path, root) is None:
                yield path
        subdirs[:] = kept
        for name in sorted(files):
            if name.endswith(YAML_SUFFIXES) and not name.startswith("."):
                yield Path(directory) / name


def load_directory(root: Path) -> LoadResult:
    result = LoadResult()
    # Parsing allocates millions of short-lived objects and no garbage cycles
    # worth collecting meanwhile; with the collector running, half of a large
    # repository's load time went to it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for path in manifest_files(root):
            result.extend(load_file(path, path.relative_to(root).as_posix(), root))
    finally:
        if collecting:
            gc.enable()
    return result


def load_file(path: Path, display_path: str, repository: Path | None = None) -> LoadResult:
    """The objects of one file. With `repository`, a symlink is read only when it leads
    to a file inside it (not under a dot-folder such as .git): any other is a finding
    (rule symlink) that says neither where it leads nor what is there."""
    try:
        if repository is not None and os.path.islink(path):
            text = read_repository_link(path, repository)
        else:
            text = path.read_text(encoding="utf-8")
    except SymlinkRefused as refusal:
        return _unreadable(display_path, str(refusal), Rule.SYMLINK)
    except OSError as error:
        return _unreadable(display_path, f"cannot read file: {error.strerror}", Rule.YAML)
    except UnicodeDecodeError as error:
        return _unreadable(display_path, f"cannot read file: {error}", Rule.YAML)
    return load_text(text, display_path)


def _unreadable(display_path: str, message: str, rule: Rule) -> LoadResult:
    # No object: the revision counts as incomplete, so nothing of it is deleted.
    result = LoadResult(files=[display_path])
    result.findings.append(Finding(display_path, 1, 1, "", message, rule))
    return result


def load_text(text: str, display_path: str) -> LoadResult:
    """Objects of every document in a YAML text; a syntax error loses only its own file."""
    result = LoadResult(files=[display_path])
    try:
        nodes = list(_compose_all(text))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = error.problem or error.context or "invalid YAML"
        result.findings.append(Finding(display_path, line, column, "", problem, Rule.YAML))
        return result
    except YAMLError as error:
        result.findings.append(Finding(display_path, 1, 1, "", str(error), Rule.YAML))
        return result
    for index, node in enumerate(nodes):
        _load_document(node, SourceDocument(display_path, text, index), result)
    return result


def load_config_text(text: str, display_path: str) -> Any:
    """A single-document YAML file as plain values; a syntax error raises ValueError."""
    try:
        node = _COMPOSER.compose(text)
        return node_to_value(node) if node is not None else None
    except (YAMLError, NodeError) as error:
        raise ValueError(f"{display_path}: {error}") from error


class _YAML12Resolver(VersionedResolver):
    """Resolves implicit tags by YAML 1.2 without asking the parser every time.

    The stock resolver looks the document's version up on each scalar through
    attribute probes that fail under the C parser: half of all parse time.
    Manifests are YAML 1.2 (Kubernetes' own reading).
    """

    @property
    def processing_version(self) -> tuple[int, int]:
        return (1, 2)


def _composer() -> YAML:
    yaml = YAML(typ="safe", pure=False)
    yaml.Resolver = _YAML12Resolver
    return yaml


# Built once: constructing a YAML instance scans for plug-ins on the disk.
_COMPOSER = _composer()


def _compose_all(text: str) -> list[Node]:
    nodes = [node for node in _COMPOSER.compose_all(text) if node is not None]
    _remember(text, nodes)
    return nodes


# The node trees of the last few texts: a file's findings are located right after
# it is composed, and then rarely again.
_RECENT: dict[str, list[Node]] = {}
_RECENT_LIMIT = 8


def _remember(text: str, nodes: list[Node]) -> None:
    _RECENT.pop(text, None)
    _RECENT[text] = nodes
    while len(_RECENT) > _RECENT_LIMIT:
        del _RECENT[next(iter(_RECENT))]


def _composed(text: str) -> list[Node]:
    nodes = _RECENT.get(text)
    return nodes if nodes is not None else _compose_all(text)


def _load_document(node: Node, source: SourceDocument, result: LoadResult) -> None:
    path = source.path
    line, column = source.locate(())
    try:
        raw = node_to_value(node)
    except NodeError as error:
        mark = error.node.start_mark
        result.findings.append(
            Finding(path, mark.line + 1, mark.column + 1, "", str(error), Rule.YAML)
        )
        return
    if raw is None:
        return
    if not isinstance(raw, dict):
        result.findings.append(
            Finding(path, line, column, "", "a manifest must be a mapping", Rule.SCHEMA)
        )
        return
    kind = raw.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(sorted(KINDS))
        line, column = source.locate(("kind",))
        message = (
            f"unknown kind {kind!r}; known kinds: {known}"
            if kind is not None
            else f"missing kind; known kinds: {known}"
        )
        result.findings.append(Finding(path, line, column, "", message, Rule.SCHEMA))
        return
    subject = _subject(model, raw)
    try:
        manifest = model.model_validate(raw)
    except ValidationError as error:
        findings = [
            _schema_finding(source, subject, detail) for detail in error.errors(include_url=False)
        ]
        result.findings.extend(findings)
        if subject is not None:
            result.broken.setdefault(subject, findings[0])
        return
    result.objects.append(LoadedObject(manifest, source))


def _subject(model: type[Manifest], raw: dict[str, Any]) -> ObjectId | None:
    metadata = raw.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace") if model.NAMESPACED else ""
    if model.NAMESPACED and not isinstance(namespace, str):
        namespace = DEFAULT_NAMESPACE
    return ObjectId(model.KIND, str(namespace), metadata["name"])


def _schema_finding(source: SourceDocument, subject: ObjectId | None, detail: Any) -> Finding:
    loc: Loc = tuple(detail["loc"])
    cause = (detail.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        loc = loc + cause.path
    line, column = source.locate(loc)
    return Finding(
        source.path, line, column, str(subject or ""), _describe(loc, detail), Rule.SCHEMA
    )


def _describe(loc: Loc, detail: Any) -> str:
    where = ".".join(str(part) for part in loc if not _is_internal(part))
    kind = detail["type"]
    if kind == "extra_forbidden":
        return f"unknown field {where}"
    if kind == "missing":
        return f"missing required field {where}"
    message = str(detail["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _is_internal(part: str | int) -> bool:
    # Pydantic adds validator names such as "function-after[...]" to some locations.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))
