"""The commit a checkout has checked out, read from its files as GitPython read it.

`reconciler plan` and `apply` name it in the node report (lastAppliedRevision). No git
runs: GitPython cost a one-shot command 0.15 s to import and start, and a `git` of the
checkout would read that checkout's configuration, which, in a checkout of another
owner, git refuses to trust (and a tool must not trust either). Only the HEAD file,
the ref it names and packed-refs are read; a repository they do not describe (a
reftable one, a broken one) has no known revision, as before.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REF_NAME = re.compile(r"refs/[A-Za-z0-9._/-]+")
# HEAD, a ref or a .git file are a line; anything larger is not one.
_SMALL = 4096
_MAX_SYMBOLIC = 5


def checked_out(directory: Path) -> str:
    """The commit of HEAD of the repository DIR is in (or under), "" when unknown."""
    git_dir = _git_dir(directory.resolve())
    if git_dir is None:
        return ""
    common = git_dir
    pointer = _line(git_dir / "commondir")  # a linked worktree's shared refs
    if pointer:
        common = (git_dir / pointer).resolve()
    text = _line(git_dir / "HEAD")
    for _ in range(_MAX_SYMBOLIC):
        if text is None:
            return ""
        if _COMMIT_ID.fullmatch(text):
            return text
        ref = text.removeprefix("ref: ").strip()
        if not text.startswith("ref: ") or not _REF_NAME.fullmatch(ref) or ".." in ref:
            return ""
        text = _ref(git_dir, common, ref)
    return ""


def _git_dir(directory: Path) -> Path | None:
    for folder in (directory, *directory.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            pointer = _line(dot_git)
            if pointer is None or not pointer.startswith("gitdir: "):
                return None
            return (folder / pointer.removeprefix("gitdir: ").strip()).resolve()
    return None


def _ref(git_dir: Path, common: Path, ref: str) -> str | None:
    for root in dict.fromkeys((git_dir, common)):
        loose = _line(root / ref)
        if loose is not None:
            return loose
    try:
        with open(common / "packed-refs", encoding="utf-8") as packed:
            for line in packed:
                commit, _, name = line.rstrip("\n").partition(" ")
                if name == ref:
                    return commit
    except (OSError, UnicodeDecodeError):
        pass
    return None


def _line(path: Path) -> str | None:
    """The first line of a small regular file; None when there is none."""
    try:
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as file:
            text = file.read(_SMALL)
    except (OSError, UnicodeDecodeError):
        return None
    return text.splitlines()[0].strip() if text.strip() else None
