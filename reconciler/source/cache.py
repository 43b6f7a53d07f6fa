"""Loading a revision's manifests, parsing again only the files that changed."""

from __future__ import annotations

import gc
from pathlib import Path

from reconciler.findings import Finding, Rule
from reconciler.loader import LoadResult, load_file, manifest_files
from reconciler.source.revision import Revision


class ManifestCache:
    """Per-file LoadResults keyed by blob id: an unchanged file is never parsed twice.

    Safe because a file's LoadResult depends only on its text and display path;
    cross-file rules (duplicates, references) run later on the combined result.
    """

    def __init__(self) -> None:
        self._files: dict[str, tuple[str, LoadResult]] = {}
        self.parsed_last = 0

    def load(self, revision: Revision) -> LoadResult:
        combined = LoadResult()
        files: dict[str, tuple[str, LoadResult]] = {}
        parsed = 0
        # As in load_directory: parsing makes many short-lived objects and no cycles.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for path in manifest_files(revision.root):
                display = path.relative_to(revision.root).as_posix()
                blob = revision.blobs.get(display)
                cached = self._files.get(display)
                if blob is not None and cached is not None and cached[0] == blob:
                    result = cached[1]
                else:
                    result = _load_guarded(path, display)
                    parsed += 1
                if blob is not None:
                    files[display] = (blob, result)
                combined.extend(result)
        finally:
            if collecting:
                gc.enable()
        # Only files of this revision are kept: deleted files do not accumulate.
        self._files = files
        self.parsed_last = parsed
        return combined


def _load_guarded(path: Path, display: str) -> LoadResult:
    """The file's LoadResult; a file whose loading raises (a parser's limit reached on
    hostile input, a bug of ours) is a finding of that file alone, so the daemon's
    pass goes on with every other file instead of failing whole (issue 12)."""
    try:
        return load_file(path, display)
    except Exception as error:  # anything: one file must never stop the revision
        result = LoadResult(files=[display])
        message = f"cannot be loaded: {type(error).__name__}: {error}"
        result.findings.append(Finding(display, 1, 1, "", message, Rule.YAML))
        return result
