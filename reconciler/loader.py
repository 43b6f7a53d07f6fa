"""YAML files -> validated manifest objects that remember where they were written.

The YAML itself is read by reconciler.yamltext, within the limits of
policies/limits.yaml. A file beyond them is a `limits` finding of its own, and
nothing that goes wrong loading one file is an exception to the caller: the file's
objects are lost, no other file's.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from reconciler import yamltext
from reconciler.api import DEFAULT_NAMESPACE, KINDS, FieldError, Manifest, ObjectId
from reconciler.confined import (
    NotARegularFile,
    SymlinkRefused,
    open_regular,
    open_repository_link,
    repository_target,
)
from reconciler.findings import Finding, Rule
from reconciler.policies import load_limits
from reconciler.yamltext import (
    Converter,
    Limits,
    NodeError,
    check_size_and_depth,
    compose_all,
    failure_finding,
    place_finding,
    too_large,
)

YAML_SUFFIXES = (".yaml", ".yml")
SKIPPED_DIRS = frozenset({"status"})

Loc = tuple[str | int, ...]


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
    # What checks have worked out from this object alone, kept with it (and gone with
    # it): between two revisions nearly every object is the very same one, and a rule
    # looks up what it read off the object instead of reading it again (rules/derived.py).
    derived: dict[object, Any] = field(default_factory=dict, compare=False, repr=False)

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
    # Set by the manifest cache when these objects are another load's but for some
    # replaced in place: that load's list of objects, and the places replaced. Lets the
    # Inventory of a pass after a push be made from the last one without comparing
    # 10,000 objects (rules/inventory.py).
    edited: tuple[list[LoadedObject], tuple[int, ...]] | None = field(
        default=None, compare=False, repr=False
    )

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


def load_directory(
    root: Path,
    kinds: Collection[str] | None = None,
    step: Callable[[str, int, int], None] | None = None,
) -> LoadResult:
    """Every manifest under root; with `kinds`, documents of other kinds are skipped
    unvalidated, so that listing one kind does not build every kind's validator.
    `step` hears how many files are read (reconciler.progress)."""
    result = LoadResult()
    # Parsing allocates millions of short-lived objects and no garbage cycles
    # worth collecting meanwhile; with the collector running, half of a large
    # repository's load time went to it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        paths = list(manifest_files(root))
        for done, path in enumerate(paths):
            if step is not None:
                step("files read", done, len(paths))
            result.extend(load_file(path, path.relative_to(root).as_posix(), root, kinds))
    finally:
        if collecting:
            gc.enable()
    return result


def load_config_text(text: str, display_path: str) -> Any:
    """A single-document YAML file (the configuration, a report) as plain values, within
    policies/limits.yaml. Raises LoadError (a ValueError) when it is not valid YAML or
    beyond the limits, PolicyError when limits.yaml itself cannot be used."""
    return yamltext.load_config_text(text, display_path, load_limits())


def load_file(
    path: Path,
    display_path: str,
    repository: Path | None = None,
    kinds: Collection[str] | None = None,
) -> LoadResult:
    """The objects of one file. With `repository`, a symlink is read only when it leads
    to a file inside it (not under a dot-folder such as .git): any other is a finding
    (rule symlink) that says neither where it leads nor what is there. At most one byte
    more than maxFileBytes is read: a file of gigabytes costs no memory."""
    limit = load_limits().max_file_bytes
    try:
        if repository is not None and os.path.islink(path):
            descriptor = open_repository_link(path, repository)
        else:
            descriptor = open_regular(path)
        with os.fdopen(descriptor, "rb") as file:
            data = file.read(limit + 1)
    except SymlinkRefused as refusal:
        return _unreadable(display_path, str(refusal), Rule.SYMLINK)
    except NotARegularFile:
        return _unreadable(display_path, "cannot read file: not a regular file", Rule.YAML)
    except OSError as error:
        return _unreadable(display_path, f"cannot read file: {error.strerror}", Rule.YAML)
    except Exception as error:  # a bug met by this file costs the file, never the pass
        return _refused(failure_finding(display_path, error))
    if len(data) > limit:
        return _unreadable(display_path, too_large(limit), Rule.LIMITS)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return _unreadable(display_path, f"cannot read file: {error}", Rule.YAML)
    # As a file read in text mode: every line break is \n.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return load_text(text, display_path, kinds=kinds)


def _unreadable(display_path: str, message: str, rule: Rule) -> LoadResult:
    # No object: the revision counts as incomplete, so nothing of it is deleted.
    return _refused(place_finding(display_path, None, message, rule))


def load_text(
    text: str,
    display_path: str,
    limits: Limits | None = None,
    kinds: Collection[str] | None = None,
) -> LoadResult:
    """Objects of every document in a YAML text. A text that is not valid YAML, is beyond
    the limits, or fails in any other way loses only its own file: never an exception."""
    limits = limits or load_limits()
    result = LoadResult(files=[display_path])
    try:
        check_size_and_depth(text, limits)
        nodes = _compose_all(text)
        converter = Converter(limits, text)
        for index, node in enumerate(nodes):
            _load_document(
                node, SourceDocument(display_path, text, index), result, converter, kinds
            )
    except Exception as error:  # a bug met by one file too costs that file, never the pass
        return _refused(failure_finding(display_path, error))
    return result


def _refused(finding: Finding) -> LoadResult:
    """A file none of whose objects are loaded, with the one finding that says why."""
    return LoadResult(findings=[finding], files=[finding.path])


def _compose_all(text: str) -> list[Node]:
    nodes = [node for node in compose_all(text) if node is not None]
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


def _load_document(
    node: Node,
    source: SourceDocument,
    result: LoadResult,
    converter: Converter,
    kinds: Collection[str] | None,
) -> None:
    path = source.path
    line, column = source.locate(())
    try:
        raw = converter.value(node)
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
    if kinds is not None and not (isinstance(kind, str) and kind in kinds):
        return
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
