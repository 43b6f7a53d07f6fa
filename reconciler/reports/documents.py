"""Status documents on disk: one YAML file per object, rewritten only when it changes."""

from __future__ import annotations

import functools
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler.api import GROUP_VERSION, KINDS, PLURALS, ObjectId
from reconciler.api.names import FILE_NAME_MAX, fitted
from reconciler.findings import Finding, Rule
from reconciler.loader import load_config_text
from reconciler.policies import load_limits
from reconciler.reports import known as known_reports
from reconciler.reports.skipped import note as _note
from reconciler.reports.skipped import noted, report_shape_problem
from reconciler.reports.status_index import (
    REPORT_FOLDERS,
    Entry,
    FileSignature,
    TreeIndex,
    index_of,
    lookup,
    signature_of,
)
from reconciler.reports.status_index import changed as tell_index
from reconciler.reports.yamlwriter import ruamel_text, yaml_text
from reconciler.yamltext import LoadError, place_finding, too_large

REPORT_SUFFIX = ".yaml"
# A report is written as NAME.yaml.tmp first (write_if_changed), and that must fit too.
_REPORT_STEM_MAX = FILE_NAME_MAX - len(REPORT_SUFFIX) - len(".tmp")


# Cached: a pass asks for every report's path and place several times, and pathlib's
# joins cost more than the rest of an unchanged report's handling.
@functools.lru_cache(maxsize=1 << 16)
def status_path(root: Path, object_id: ObjectId) -> Path:
    """`root/PLURAL/NAMESPACE/NAME.yaml`, or `root/PLURAL/NAME.yaml` for a cluster kind.

    Both NAMESPACE and NAME are fitted (api/names.py): a name of 253 characters would
    not fit a file name, and the name of an invalid manifest (which is reported too) may
    hold anything, `/` and `..` included; the path always stays under root.
    """
    plural = PLURALS.get(object_id.kind) or object_id.kind.lower()
    file_name = fitted(object_id.name, _REPORT_STEM_MAX) + REPORT_SUFFIX
    if object_id.namespace:
        return root / plural / fitted(object_id.namespace, _REPORT_STEM_MAX) / file_name
    return root / plural / file_name


def report_object_id(path: Path, kind: str, namespaced: bool) -> ObjectId | None:
    """The object whose report `path` is (a file under `PLURAL/`, found by a glob), or
    None for a file at which no report is ever written.

    The folder and file names are the object's namespace and name where they were kept
    as written; a fitted one is read from the report's metadata, which counts only when
    it leads to this very path: a report cannot claim another object's identity.
    """
    namespace = path.parent.name if namespaced else ""
    candidate = ObjectId(kind, namespace, path.stem)
    if _report_place(candidate) == _place(path, namespaced):
        return candidate
    document = read_document(path)
    metadata = document.get("metadata") if isinstance(document, dict) else None
    if not isinstance(metadata, dict):
        return None
    name, claimed_namespace = metadata.get("name"), metadata.get("namespace", "")
    if not isinstance(name, str) or not isinstance(claimed_namespace, str):
        return None
    claimed = ObjectId(kind, claimed_namespace if namespaced else "", name)
    return claimed if _report_place(claimed) == _place(path, namespaced) else None


@functools.lru_cache(maxsize=1 << 16)
def _report_place(object_id: ObjectId) -> tuple[str, str]:
    path = status_path(Path(), object_id)
    return (path.parent.name if object_id.namespace else "", path.name)


def _place(path: Path, namespaced: bool) -> tuple[str, str]:
    return (path.parent.name if namespaced else "", path.name)


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
        # JSON -> the text, and whether it reads back as exactly the JSON's values.
        self.rendered: dict[str, tuple[str, bool]] = {}
        self.files: dict[str, tuple[FileSignature, str]] = {}
        # Path -> the text, its value, and why it cannot be used (then the value is None).
        self.parsed: dict[str, tuple[str, Any, Finding | None]] = {}
        # Text rendered here -> the JSON of the plain document it was rendered from.
        self.sources: dict[str, str] = {}
        # Path -> the signature of the file when it was last read and found usable, read
        # kept or not: check_reports does not read it again.
        self.usable: dict[str, FileSignature] = {}
        # Every read kept, asked to or not (keep_every_read).
        self.keep_all = False

    def trim(self) -> None:
        for found in (self.rendered, self.files, self.parsed, self.sources, self.usable):
            if len(found) > self.LIMIT:
                found.clear()


_MEMO = _Memo()


# Line breaks YAML knows beyond \n (as JSON escapes them): ruamel.yaml does not read a
# string holding one back as it was written (tests/reports/test_documents_roundtrip.py).
_LOSSY = ("\\u0085", "\\u2028", "\\u2029")


def render(document: Mapping[str, Any]) -> str:
    return _render(document, *_document_key(document))[0]


def _document_key(document: Mapping[str, Any]) -> tuple[str, bool]:
    """The document's canonical JSON, and whether it is made of JSON's types only."""
    try:
        return json.dumps(document, separators=(",", ":")), True
    except TypeError:
        return json.dumps(document, separators=(",", ":"), default=str), False


def _render(document: Mapping[str, Any], key: str, plain: bool) -> tuple[str, bool]:
    """The document's text, and whether that text reads back as exactly its values."""
    rendered = _MEMO.rendered.get(key)
    if rendered is None:
        plain_document = dict(document)
        written = yaml_text(plain_document)
        # What the direct writer writes is text, integers, booleans and None under text
        # keys, no line breaks: its YAML reads back as exactly the JSON's values.
        rendered = (written, True) if written is not None else (ruamel_text(plain_document), False)
        _MEMO.trim()
        _MEMO.rendered[key] = rendered
    text = rendered[0]
    if plain and not any(character in key for character in _LOSSY):
        # A document of JSON's types reads back from its YAML as exactly those values:
        # read_document takes them from the JSON instead of parsing the YAML again.
        _MEMO.sources[text] = key
    return rendered


def write_report(path: Path, document: Mapping[str, Any]) -> bool:
    """write_if_changed of the rendered document, without rendering it when the file
    already holds the text rendered from this very document (here or in an earlier
    process: known.py). True when the file was written."""
    key, plain = _document_key(document)
    name = os.fspath(path)
    if plain:
        text = read_text(path)
        if text is not None and known_reports.KNOWN.source(name, text) == key:
            return False
        if text is not None and _MEMO.sources.get(text) == key:
            # Rendered in this process, for another file or before the cache was known.
            if _MEMO.rendered.get(key, ("", False))[1]:
                known_reports.KNOWN.add(name, text, key)
            return False
    text, exact = _render(document, key, plain)
    written = write_if_changed(path, text)
    if exact:
        known_reports.KNOWN.add(name, text, key)
    return written


def file_signature(path: Path) -> FileSignature | None:
    """What a file is as far as the file system says (inode, size, modification and
    change times); None when it is gone. A Git checkout or any write changes it."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


_REPORT_FOLDERS = REPORT_FOLDERS


def _tree_folders(path: Path) -> list[Path]:
    """The folders of the status tree that hold a report (its kind's folder, and its
    namespace's): not the tree's root, which is the operator's choice (--status-dir) or
    the clone's."""
    folders = []
    folder = path.parent
    for _ in range(2):
        if folder.name not in _REPORT_FOLDERS and folder.parent.name not in _REPORT_FOLDERS:
            break
        folders.append(folder)
        folder = folder.parent
    return folders


def tree_folders_linked(path: Path) -> bool:
    """Whether a report folder above path (its kind's, its namespace's) is a symlink."""
    return any(os.path.islink(folder) for folder in _tree_folders(path))


def _report_signature(name: str) -> FileSignature | None:
    """file_signature of a report; None also when the report is a symlink.

    A pull request can commit symlinks under status/ as anywhere else; a report read
    through one would bring a host file's values into the pass and the reports. One
    lstat answers both (a regular file's is its stat): reports are read by the
    thousand in every pass.
    """
    try:
        info = os.lstat(name)
    except OSError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _read_report(name: str, limit: int) -> str:
    """The text of a regular file, at most `limit` + 1 characters of it; O_NOFOLLOW: a
    symlink swapped in since the check is not followed, O_NONBLOCK: a FIFO does not hang
    the pass."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    descriptor = os.open(name, flags)
    with os.fdopen(descriptor, encoding="utf-8") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(f"{name} is not a regular file")
        return file.read(limit + 1)  # grown since the stat, it is still read only so far


def read_text(path: Path) -> str | None:
    """A report file's text; None when it is missing, unreadable, too large, or reached
    through a symlink (treated as absent: never read)."""
    return _read(path)[0]


def _read(path: Path, keep: bool = True) -> tuple[str | None, FileSignature | None, Finding | None]:
    """The file's text and signature, or None and why not (no reason when it is gone or
    reached through a symlink); `keep`: the text is kept for the next read."""
    keep = keep or _MEMO.keep_all
    name = os.fspath(path)
    # The pass's index of the tree (status_index.py) says whether the file changed
    # since it was read: an unchanged one costs no system call.
    covered, entry = lookup(name)
    signature = entry.readable if entry is not None else None
    if not covered or signature is not None:
        known = _MEMO.files.get(name)
        if covered and known is not None and known[0] == signature:
            return known[1], signature, None
        # Read (or not) as the file is now, whatever the index says: a symlink is never
        # followed.
        signature = _report_signature(name)
    if signature is None or tree_folders_linked(path):
        _MEMO.files.pop(name, None)
        return None, None, None
    known = _MEMO.files.get(name)
    if known is not None and known[0] == signature:
        return known[1], signature, None
    limit = load_limits().max_file_bytes
    if signature[1] > limit:
        # Not read at all: a report is a few hundred bytes.
        return None, signature, place_finding(name, None, too_large(limit), Rule.LIMITS)
    try:
        text = _read_report(name, limit)
    except FileNotFoundError:
        return None, None, None
    except UnicodeDecodeError as error:
        return None, signature, place_finding(name, None, f"not UTF-8: {error}", Rule.YAML)
    except OSError as error:
        message = f"cannot be read: {error.strerror or error}"
        return None, signature, place_finding(name, None, message, Rule.YAML)
    # Changed between the stat and the read: the next stat differs, and reads it again.
    if keep:
        _MEMO.trim()
        _MEMO.files[name] = (signature, text)
    else:
        _MEMO.files.pop(name, None)
    return text, signature, None


def read_document(path: Path, keep: bool = True) -> Any:
    """A report as plain values; None when it is missing, or cannot be used: then it is
    skipped, logged once and named by skipped_reports. Treat the result as read-only:
    it is shared with later readers of the same text. Without `keep`, neither its text
    nor its values are kept for the next reader (scan.PerReport keeps what it needs)."""
    keep = keep or _MEMO.keep_all
    text, signature, problem = _read(path, keep)
    name = os.fspath(path)
    if text is None or signature is None:
        _note(name, signature, problem)
        return None
    known = _MEMO.parsed.get(name)
    if known is not None and known[0] == text:
        _note(name, signature, known[2])
        if known[1] is not None:
            _MEMO.usable[name] = signature
        return known[1]
    value = _from_source(_MEMO.sources.get(text) or known_reports.KNOWN.source(name, text))
    try:
        if value is None:
            value = load_config_text(text, name)
    except LoadError as error:
        problem = error.finding
    else:
        shape = report_shape_problem(value)
        if shape is not None:
            value, problem = None, place_finding(name, None, shape, Rule.SCHEMA)
    _note(name, signature, problem)
    if value is not None:
        _MEMO.usable[name] = signature
    else:
        _MEMO.usable.pop(name, None)
    if keep:
        _MEMO.trim()
        _MEMO.parsed[name] = (text, value, problem)
    else:
        _MEMO.parsed.pop(name, None)
    return value


def keep_every_read() -> None:
    """This process reads the status tree for one command and ends: every report it
    reads is kept for the command's next reader of it, as a daemon keeps only what its
    readers ask it to (they read a fleet's reports pass after pass, scan.py). An
    `apply` of 100 VMs would read each of its reports twice, and parse it twice."""
    _MEMO.keep_all = True


def _from_source(source: str | None) -> Any:
    """The values of a known text's document; None when unknown (or a damaged cache)."""
    if source is None:
        return None
    try:
        return json.loads(source)
    except (ValueError, RecursionError):
        return None


def skipped_reports(root: Path) -> list[str]:
    """Every report under root that was skipped as unusable and has not changed since:
    `ROOT/PATH:LINE:COLUMN: report skipped: why [rule]`, for the node report's lastError."""
    prefix = os.path.join(os.fspath(root), "")
    found = []
    for name, signature, problem in noted():
        if name.startswith(prefix) and signature_of(name) == signature:
            shown = replace(problem, path=f"{root.name}/{name.removeprefix(prefix)}")
            found.append(f"report skipped: {shown}")
    return found


def check_reports(root: Path) -> list[str]:
    """Read every report under root (those unchanged since the last read cost a stat)
    and return skipped_reports(root): a pass names every unusable report, also those
    only the README or another host's work would have read. At most NAMED_REPORTS are
    named, then how many more: anyone who can push can add thousands, and each name
    lands in the node report and /healthz (the log has them all, once each)."""
    key = os.fspath(root)
    index = index_of(root)
    last = _CHECKED_AT.get(key)
    usable = _CHECKED.get(key, {})
    if last is not None and last[:2] == (index.serial, index.epoch):
        # The same listing as the last check: only the files told changed since.
        told = index.journal[last[2] :]
        if not any(name.endswith(os.sep) for name in told):
            for name in told:
                if name.endswith(REPORT_SUFFIX):
                    usable.pop(name, None)
                    _check(name, index.lookup(name)[1], usable)
        else:  # a folder changed: check everything (unchanged files cost a comparison)
            usable = _check_all(index, usable)
    else:
        usable = _check_all(index, usable)
    _CHECKED[key] = usable
    _CHECKED_AT[key] = (index.serial, index.epoch, len(index.journal))
    skipped = sorted(skipped_reports(root))
    if len(skipped) > NAMED_REPORTS:
        skipped[NAMED_REPORTS:] = [f"and {len(skipped) - NAMED_REPORTS} more report(s) skipped"]
    return skipped


def _check_all(index: TreeIndex, checked: dict[str, FileSignature]) -> dict[str, FileSignature]:
    usable: dict[str, FileSignature] = {}
    for name, entry in index.walked():
        _check(name, entry, usable, checked.get(name))
    return usable


def _check(
    name: str,
    entry: Entry | None,
    usable: dict[str, FileSignature],
    checked: FileSignature | None = None,
) -> None:
    """Read the report at name (unless it was read and usable before, unchanged since),
    so that an unusable one is noted; a usable one goes into `usable`."""
    signature = entry.readable if entry is not None else None
    if entry is None or entry.linked or entry.mode == stat.S_IFDIR:
        return  # not there, or not a file os.walk would list
    if signature is None:
        read_document(Path(name), keep=False)  # a symlink: never read, its note cleared
        return
    read_before = signature in (checked, _MEMO.usable.get(name))
    if read_before or read_document(Path(name), keep=False) is not None:
        usable[name] = signature


NAMED_REPORTS = 5
# Per status root, the reports check_reports found usable, with their signatures: an
# unchanged one costs an lstat in the next pass, not a read (thousands of them per pass).
_CHECKED: dict[str, dict[str, FileSignature]] = {}
_CHECKED_AT: dict[str, tuple[int, int, int]] = {}


def read_previous(root: Path, object_id: ObjectId) -> dict[str, Any] | None:
    """The `status:` of an earlier report, for carrying condition times over."""
    raw = read_document(status_path(root, object_id))
    status = raw.get("status") if isinstance(raw, dict) else None
    return status if isinstance(status, dict) else None


def remove_report(path: Path) -> Path:
    """Remove a report file; returns what was removed. A report reached through a
    symlinked report folder is not followed: the symlink goes instead (as
    write_if_changed replaces it), never a host file named like a report where it
    leads."""
    for folder in reversed(_tree_folders(path)):
        if os.path.islink(folder):
            folder.unlink()
            tell_index([folder])
            return folder
    path.unlink(missing_ok=True)  # gone already: with a symlinked folder removed before
    tell_index([path])
    return path


def write_if_changed(path: Path, text: str) -> bool:
    """Write only when the bytes differ, so an unchanged pass touches no file."""
    if read_text(path) == text:
        return False
    # Symlinks committed into the tree are replaced, never written through: a report
    # goes where its name says, not into a folder or file elsewhere on the host.
    for folder in reversed(_tree_folders(path)):
        if os.path.islink(folder):
            folder.unlink()
            tell_index([folder])
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.unlink(missing_ok=True)
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    tell_index([path])
    signature = file_signature(path)
    if signature is not None:
        _MEMO.files[os.fspath(path)] = (signature, text)
    return True
