"""Report texts this host has written, kept across processes in its cache directory.

A one-shot `reconciler apply`, or a daemon's first pass, would otherwise render every
report again only to find the file already says the same, and parse every old report
back for its condition times. This file remembers, for each report file, the SHA-256
of the text last written or found there and the document that text was rendered from
(its canonical JSON):

- a report whose file still holds that text, and whose document the pass has now is
  that very document, is unchanged: it is neither rendered nor written
  (documents.write_report);
- an old report whose file still holds that text is read back from its JSON, not
  parsed.

It lives beside the host, not in the repository: the reports stay byte for byte what
they always were, so hosts of older and newer versions sharing a repository never
rewrite each other's files, and nobody who can push can plant an entry. The digest
decides, not the file's times: a fresh clone, a checkout or another host that wrote
the same bytes changes nothing, and a file edited by anyone is simply not known. A
missing, unreadable or foreign file is an empty memory: the reports are rendered and
parsed as they would be without it. One entry per report file: its size follows the
status tree, not the number of passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "known-reports.json"
_FORMAT = "vm-reconciler known reports 1"
# Some fleets' worth of report files (a few hundred bytes each): a few MiB at most.
LIMIT = 50_000
# The daemon's cache is saved at most this often (and when it stops).
SAVE_EVERY_S = 60.0


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
    """Report file -> the digest of its text and the JSON of the document it holds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.path: Path | None = None
        self._reports: dict[str, tuple[str, str]] = {}
        self._added = False
        self._clock = clock
        self._saved_at: float | None = None

    def use(self, path: Path | None) -> None:
        """Remember in `path` from now on (None: in this process only), starting from
        what it holds; the same path again keeps what is known."""
        if path == self.path:
            return
        self.path, self._reports, self._added = path, {}, False
        if path is not None:
            self._reports = _load(path)

    def source(self, name: str, text: str) -> str | None:
        """The JSON of the document whose rendering the file `name` holds as `text`."""
        known = self._reports.get(os.path.abspath(name))
        if known is None or known[0] != digest(text):
            return None
        return known[1]

    def add(self, name: str, text: str, source: str) -> None:
        """The file `name` holds `text`, rendered from the document whose JSON is `source`
        (a document whose YAML reads back as exactly these values)."""
        key = os.path.abspath(name)
        entry = (digest(text), source)
        if self._reports.get(key) != entry:
            self._reports.pop(key, None)  # last in the order: the last to be dropped
            self._reports[key] = entry
            self._added = True

    def save(self, lazily: bool = False) -> None:
        """Write what is known, when anything was added; a failure costs only speed.

        `lazily` (the daemon, after each pass): only when the last save is SAVE_EVERY_S
        old. The whole file is written each time, a twentieth of a push's pass at 1,000
        VMs, for a cache that only speeds up the next process; the daemon saves it
        for sure when it stops."""
        if self.path is None or not self._added:
            return
        now = self._clock()
        if lazily and self._saved_at is not None and now - self._saved_at < SAVE_EVERY_S:
            return
        if len(self._reports) > LIMIT:
            gone = [name for name in self._reports if not os.path.exists(name)]
            for name in gone:
                del self._reports[name]
            for name in list(self._reports)[: max(0, len(self._reports) - LIMIT)]:
                del self._reports[name]
        try:
            _store(self.path, self._reports)
        except OSError as error:
            log.debug("cannot keep known reports in %s: %s", self.path, error)
            return
        self._added = False
        self._saved_at = now


KNOWN = KnownReports()


def keep_known_reports(cache_dir: Path | None) -> None:
    """Remember report texts in default_file(cache_dir) from now on, across processes."""
    KNOWN.use(default_file(cache_dir))


def save_known_reports(lazily: bool = False) -> None:
    KNOWN.save(lazily)


def _load(path: Path) -> dict[str, tuple[str, str]]:
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
        name: (entry[0], entry[1])
        for name, entry in reports.items()
        if isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], str)
    }


def _store(path: Path, reports: dict[str, tuple[str, str]]) -> None:
    """Written whole or not at all: another process may read it at any time. Entry by
    entry: one string of the whole file (megabytes at thousands of reports) would be
    the daemon's peak of memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            # dumps per entry, not dump: json.dump encodes in pure Python, chunk by chunk.
            file.write('{"format":' + json.dumps(_FORMAT) + ',"reports":{')
            for index, (name, entry) in enumerate(reports.items()):
                comma = "," if index else ""
                file.write(f"{comma}{json.dumps(name)}:{json.dumps(entry, separators=(',', ':'))}")
            file.write("}}")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
