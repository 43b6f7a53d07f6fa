"""Report texts this host has written, kept across processes in its cache directory.

A one-shot `reconciler apply`, or a daemon's first pass, would otherwise render every
report again only to find the file already says the same, and parse every old report
back for its condition times. This file remembers, for each text rendered here, the
document it was rendered from (its canonical JSON), keyed by the text's SHA-256:

- a report whose file holds a known text, rendered from the very document the pass
  has now, is unchanged: it is neither rendered nor written (documents.write_report);
- an old report whose text is known is read back from its JSON, not parsed.

It lives beside the host, not in the repository: the reports stay byte for byte what
they always were, so hosts of older and newer versions sharing a repository never
rewrite each other's files, and nobody who can push can plant an entry. An entry is
keyed by content and so never stale: whoever wrote a file, a file whose text has the
digest is that text. A missing, unreadable or foreign file is an empty memory; the
reports are then rendered and parsed as they would be without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "known-reports.json"
_FORMAT = "vm-reconciler known reports 1"
# About ten fleets' worth of reports at a few hundred bytes each: a few MiB at most.
LIMIT = 50_000


def default_file(cache_dir: Path | None) -> Path:
    """The host's cache directory (the daemon's, or --config's), else the user's
    ($XDG_CACHE_HOME, ~/.cache) for a `reconciler apply` without a configuration."""
    if cache_dir is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        cache_dir = Path(base) / "vm-reconciler"
    return cache_dir / FILE_NAME


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class KnownReports:
    """Text digest -> the JSON of the document the text was rendered from."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._sources: dict[str, str] = {}
        self._used: set[str] = set()
        self._added = False

    def use(self, path: Path | None) -> None:
        """Remember in `path` from now on (None: in this process only), starting from
        what it holds; the same path again keeps what is known."""
        if path == self.path:
            return
        self.path, self._sources, self._used, self._added = path, {}, set(), False
        if path is not None:
            self._sources = _load(path)

    def source(self, text: str) -> str | None:
        if not self._sources:
            return None
        key = digest(text)
        found = self._sources.get(key)
        if found is not None:
            self._used.add(key)
        return found

    def add(self, text: str, source: str) -> None:
        key = digest(text)
        self._used.add(key)
        if self._sources.get(key) != source:
            self._sources[key] = source
            self._added = True

    def save(self) -> None:
        """Write what is known, when anything was added; a failure costs only speed."""
        if self.path is None or not self._added:
            return
        if len(self._sources) > LIMIT:
            # What this process met first, then whatever fits of the rest.
            kept = {key: self._sources[key] for key in self._used if key in self._sources}
            for key, source in self._sources.items():
                if len(kept) >= LIMIT:
                    break
                kept.setdefault(key, source)
            self._sources = kept
        try:
            _store(self.path, {"format": _FORMAT, "reports": self._sources})
        except OSError as error:
            log.debug("cannot keep known reports in %s: %s", self.path, error)
            return
        self._added = False


def _load(path: Path) -> dict[str, str]:
    try:
        with path.open(encoding="utf-8") as file:
            stored = json.load(file)
    except (OSError, ValueError) as error:
        if not isinstance(error, FileNotFoundError):
            log.debug("known reports in %s not used: %s", path, error)
        return {}
    if not isinstance(stored, dict) or stored.get("format") != _FORMAT:
        return {}
    reports = stored.get("reports")
    if not isinstance(reports, dict):
        return {}
    return {
        key: source
        for key, source in reports.items()
        if isinstance(key, str) and isinstance(source, str)
    }


def _store(path: Path, content: object) -> None:
    """Written whole or not at all: another process may read it at any time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(content, file, separators=(",", ":"))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
