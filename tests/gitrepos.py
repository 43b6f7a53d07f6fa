"""Real Git on disk for every test tier: a bare remote, an author's clone that pushes to it,
and operators' workspaces.

The one harness behind the source and status tests (tests/source/conftest.py,
tests/reports/conftest.py), the daemon and end-to-end tests and bench/latency.py (through
tests/daemonlab.py, which re-exports it). Git is the real `git`.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

# The identity of every commit the harness makes itself, set in the environment so that it
# holds in any clone, whatever the machine's git config says.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Operator",
    "GIT_AUTHOR_EMAIL": "operator@example.com",
    "GIT_COMMITTER_NAME": "Operator",
    "GIT_COMMITTER_EMAIL": "operator@example.com",
}


def run_git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in `cwd`, never prompting (a test would hang on a password prompt)."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_IDENTITY, "GIT_TERMINAL_PROMPT": "0"},
        capture_output=True,
        text=True,
        check=False,
    )


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """The stripped stdout of `git ARGS`; a failure fails the test with git's own message."""
    completed = run_git(cwd, *args)
    if check and completed.returncode:
        raise AssertionError(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout.strip()


@dataclass
class Remote:
    """A bare repository on disk: the `origin` every host and operator pushes to.

    Created with `author=`, it also has an author's clone, from which the source and status
    tests push their commits (`commit`, `push_manifest`).
    """

    path: Path
    branch: str = "main"
    author_clone: Path | None = None

    @classmethod
    def create(cls, path: Path, branch: str = "main", *, author: Path | None = None) -> Remote:
        path.mkdir(parents=True)
        git(path, "init", "--quiet", "--bare", f"--initial-branch={branch}")
        if author is not None:
            git(author.parent, "clone", "--quiet", str(path), str(author))
            git(author, "checkout", "--quiet", "-b", branch)
        return cls(path, branch, author)

    @property
    def bare(self) -> Path:
        """The bare repository (the source and status tests' name for `path`)."""
        return self.path

    @property
    def author(self) -> Path:
        """The author's clone; only a remote created with `author=` has one."""
        if self.author_clone is None:
            raise AssertionError(f"{self.path} was created without an author's clone")
        return self.author_clone

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def head(self, branch: str | None = None) -> str:
        """The branch's (by default the remote's branch's) head; "" before its first commit."""
        ref = f"refs/heads/{branch or self.branch}"
        return git(self.path, "rev-parse", "--verify", "--quiet", ref, check=False)

    def show(self, relative: str, revision: str | None = None) -> str | None:
        """A file's text at the branch head (or a revision or another branch), without its
        trailing newlines; None when absent."""
        completed = run_git(self.path, "show", f"{revision or self.branch}:{relative}")
        return completed.stdout.rstrip("\n") if completed.returncode == 0 else None

    def document(self, relative: str) -> dict[str, Any] | None:
        text = self.show(relative)
        return YAML(typ="safe", pure=True).load(text) if text else None

    def files(self, branch: str | None = None) -> list[str]:
        """Every file's path in the branch's (by default the remote's branch's) tree."""
        return git(self.path, "ls-tree", "-r", "--name-only", branch or self.branch).splitlines()

    def log(self, *args: str) -> list[str]:
        out = git(self.path, "log", "--format=%H %an|%s", *args, self.branch, check=False)
        return out.splitlines() if out else []

    def status_commits(self) -> list[str]:
        return [line for line in self.log() if "|status(" in line]

    def commit(
        self,
        files: Mapping[str, str | None],
        message: str = "change",
        config: Sequence[str] = (),
        *,
        ref: str | None = None,
    ) -> str:
        """Writes (or, for None, deletes) files in the author's clone, commits and pushes
        (to the branch, or to `ref`); returns the new sha. config: git options for the
        commit (`-c` pairs: a signing key)."""
        for name, text in files.items():
            path = self.author / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        git(self.author, "add", "--all")
        git(self.author, *config, "commit", "--quiet", "-m", message)
        git(self.author, "push", "--quiet", "origin", f"HEAD:{ref or self.branch}")
        return git(self.author, "rev-parse", "HEAD")

    def push_manifest(self, name: str, text: str) -> str:
        """Someone else's commit on the branch, pushed from the author's clone."""
        # Up to date first: the tests push this between publishes that moved the branch.
        git(self.author, "pull", "--quiet", "--ff-only")
        return self.commit({name: text}, f"add {name}")


@dataclass
class Workspace:
    """An operator's clone: edit, commit, push."""

    path: Path
    remote: Remote

    @classmethod
    def clone(cls, remote: Remote, path: Path) -> Workspace:
        git(path.parent, "clone", "--quiet", remote.url, path.name)
        git(path, "checkout", "--quiet", "-B", remote.branch)
        return cls(path, remote)

    def write(self, relative: str, text: str) -> Path:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
        return target

    def commit_and_push(self, message: str, config: Sequence[str] = ()) -> str:
        """config: git options for the commit and the rebase (`-c` pairs: a signing key)."""
        git(self.path, "add", "-A")
        git(self.path, *config, "commit", "--quiet", "-m", message)
        for _attempt in range(10):
            if self.remote.head():
                # The daemons push status commits meanwhile: take them in first, as
                # anyone would, and try again when one lands between pull and push.
                git(self.path, *config, "pull", "--quiet", "--rebase", "origin", self.remote.branch)
            pushed = run_git(self.path, "push", "--quiet", "origin", f"HEAD:{self.remote.branch}")
            if pushed.returncode == 0:
                return git(self.path, "rev-parse", "HEAD")
        raise AssertionError(f"git push kept failing: {pushed.stderr.strip()}")
