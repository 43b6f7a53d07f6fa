"""Status documents on disk: one YAML file per object, rewritten only when it changes."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from reconciler.api import GROUP_VERSION, KINDS, ObjectId
from reconciler.findings import Finding, Rule
from reconciler.status.skipped import note as _note
from reconciler.status.skipped import noted, report_shape_problem
from reconciler.yamltext import LoadError, load_config_text, place_finding, policy_limits, too_large


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    # Keep our stable, meaningful order (ruamel's stubs type this attribute as None).
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.width = 4096
    return yaml


def status_path(root: Path, object_id: ObjectId) -> Path:
    plural = KINDS[object_id.kind].PLURAL if object_id.kind in KINDS else object_id.kind.lower()
    if object_id.namespace:
        return root / plural / object_id.namespace / f"{object_id.name}.yaml"
    return root / plural / f"{object_id.name}.yaml"


def status_document(
    object_id: ObjectId, status: Mapping[str, Any], created: str = ""
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": object_id.name}
    if object_id.namespace:
        metadata["namespace"] = object_id.namespace
    if created:
        metadata["creationTimestamp"] = created
    api_version = (
        KINDS[object_id.kind].API_VERSIONS[0] if object_id.kind in KINDS else GROUP_VERSION
    )
    return {
        "apiVersion": api_version,
        "kind": object_id.kind,
        "metadata": metadata,
        "status": dict(status),
    }


class _Memo:
    """What a daemon pass would otherwise redo for every object of a large fleet.

    Rendering with ruamel.yaml costs milliseconds per document, and so does parsing
    one back; a pass over a thousand unchanged reports must do neither, nor read them
    all again, several times (the reports kept, the stale ones, the README, the disks,
    the leases). Rendered and parsed documents are keyed by content, so they can never
    be stale. A file's text is kept with what the file system says of it (inode, size,
    modification and change times): a Git checkout or any write makes another file or
    moves the times, so a changed file is read again. The maps are emptied when they
    outgrow a few fleets' worth of reports.
    """

    LIMIT = 50_000

    def __init__(self) -> None:
        self.rendered: dict[str, str] = {}
        self.files: dict[str, tuple[FileSignature, str]] = {}
        # Path -> the text, its value, and why it cannot be used (then the value is None).
        self.parsed: dict[str, tuple[str, Any, Finding | None]] = {}
        # Text rendered here -> the JSON of the plain document it was rendered from.
        self.sources: dict[str, str] = {}

    def trim(self) -> None:
        for found in (self.rendered, self.files, self.parsed, self.sources):
            if len(found) > self.LIMIT:
                found.clear()


_MEMO = _Memo()


# Line breaks YAML knows beyond \n (as JSON escapes them): ruamel.yaml does not read a
# string holding one back as it was written (tests/status/test_documents_roundtrip.py).
_LOSSY = ("\\u0085", "\\u2028", "\\u2029")


def render(document: Mapping[str, Any]) -> str:
    try:
        key = json.dumps(document, separators=(",", ":"))
        plain = True
    except TypeError:
        key = json.dumps(document, separators=(",", ":"), default=str)
        plain = False
    text = _MEMO.rendered.get(key)
    if text is None:
        buffer = io.StringIO()
        _yaml().dump(dict(document), buffer)
        text = buffer.getvalue()
        _MEMO.trim()
        _MEMO.rendered[key] = text
    if plain and not any(character in key for character in _LOSSY):
        # A document of JSON's types reads back from its YAML as exactly those values:
        # read_document takes them from the JSON instead of parsing the YAML again.
        _MEMO.sources[text] = key
    return text


FileSignature = tuple[int, int, int, int]


def file_signature(path: Path) -> FileSignature | None:
    """What a file is as far as the file system says (inode, size, modification and
    change times); None when it is gone. A Git checkout or any write changes it."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def read_text(path: Path) -> str | None:
    """A report file's text; None when it is missing, unreadable or too large."""
    return _read(path)[0]


def _read(path: Path) -> tuple[str | None, FileSignature | None, Finding | None]:
    """The file's text and signature, or None and why not (no reason when it is gone)."""
    name = os.fspath(path)
    signature = file_signature(path)
    if signature is None:
        _MEMO.files.pop(name, None)
        return None, None, None
    known = _MEMO.files.get(name)
    if known is not None and known[0] == signature:
        return known[1], signature, None
    limit = policy_limits().max_file_bytes
    if signature[1] > limit:
        # Not read at all: a report is a few hundred bytes.
        return None, signature, place_finding(name, None, too_large(limit), Rule.LIMITS)
    try:
        with open(name, encoding="utf-8") as file:
            text = file.read(limit + 1)  # grown since the stat, it is still read only so far
    except FileNotFoundError:
        return None, None, None
    except UnicodeDecodeError as error:
        return None, signature, place_finding(name, None, f"not UTF-8: {error}", Rule.YAML)
    except OSError as error:
        message = f"cannot be read: {error.strerror or error}"
        return None, signature, place_finding(name, None, message, Rule.YAML)
    # Changed between the stat and the read: the next stat differs, and reads it again.
    _MEMO.trim()
    _MEMO.files[name] = (signature, text)
    return text, signature, None


def read_document(path: Path) -> Any:
    """A report as plain values; None when it is missing, or cannot be used: then it is
    skipped, logged once and named by skipped_reports. Treat the result as read-only:
    it is shared with later readers of the same text."""
    text, signature, problem = _read(path)
    name = os.fspath(path)
    if text is None or signature is None:
        _note(name, signature, problem)
        return None
    known = _MEMO.parsed.get(name)
    if known is not None and known[0] == text:
        _note(name, signature, known[2])
        return known[1]
    source = _MEMO.sources.get(text)
    value: Any = None
    try:
        value = json.loads(source) if source is not None else load_config_text(text, name)
    except LoadError as error:
        problem = error.finding
    else:
        shape = report_shape_problem(value)
        if shape is not None:
            value, problem = None, place_finding(name, None, shape, Rule.SCHEMA)
    _note(name, signature, problem)
    _MEMO.trim()
    _MEMO.parsed[name] = (text, value, problem)
    return value


def skipped_reports(root: Path) -> list[str]:
    """Every report under root that was skipped as unusable and has not changed since:
    `ROOT/PATH:LINE:COLUMN: report skipped: why [rule]`, for the node report's lastError."""
    prefix = os.path.join(os.fspath(root), "")
    found = []
    for name, signature, problem in noted():
        if name.startswith(prefix) and file_signature(Path(name)) == signature:
            shown = replace(problem, path=f"{root.name}/{name.removeprefix(prefix)}")
            found.append(f"report skipped: {shown}")
    return found


def check_reports(root: Path) -> list[str]:
    """Read every report under root (those unchanged since the last read cost a stat)
    and return skipped_reports(root): a pass names every unusable report, also those
    only the README or another host's work would have read."""
    for directory, _subdirs, files in os.walk(root):
        for name in files:
            if name.endswith(".yaml"):
                read_document(Path(directory) / name)
    return skipped_reports(root)


def read_previous(root: Path, object_id: ObjectId) -> dict[str, Any] | None:
    """The `status:` of an earlier report, for carrying condition times over."""
    raw = read_document(status_path(root, object_id))
    status = raw.get("status") if isinstance(raw, dict) else None
    return status if isinstance(status, dict) else None


def write_if_changed(path: Path, text: str) -> bool:
    """Write only when the bytes differ, so an unchanged pass touches no file."""
    if read_text(path) == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    signature = file_signature(path)
    if signature is not None:
        _MEMO.files[os.fspath(path)] = (signature, text)
    return True


def carry_condition_times(
    status: dict[str, Any], previous: dict[str, Any] | None, now: str
) -> dict[str, Any]:
    """`status` with every condition's lastTransitionTime: the earlier one when the
    condition's status did not change, else `now`."""
    earlier = {
        c.get("type"): c
        for c in (previous or {}).get("conditions", [])
        if isinstance(c, dict) and c.get("lastTransitionTime")
    }
    conditions = []
    for condition in status.get("conditions", []):
        before = earlier.get(condition.get("type"))
        since = now
        if before and before.get("status") == condition.get("status"):
            since = str(before["lastTransitionTime"])
        conditions.append({**condition, "lastTransitionTime": since})
    if "conditions" in status:
        return {**status, "conditions": conditions}
    return dict(status)
