"""Which revision of the branch may be applied: the newest whose history verifies.

Every commit between the last verified revision and the new head is checked
(`signatures.check_commits`). The last verified revision is kept in the cache
directory, so a restart does not trust what arrived while the daemon was down.

Two decisions, documented in docs/install.md ("Signed history"):

- An unverified commit does not block for ever once it is undone: when every file it
  changed is, at the head, as the last verified revision had it (a signed revert, or the
  operator's signed commit restoring the files), nothing of it is applied.
- Without a verified revision that the head contains (the first start, or history
  rewritten by a force-push) there is no range to walk: the newest commit that changed
  anything outside the status folder (on the first-parent line) is the anchor and must
  be signed by an allowed signer; the commits after it are checked as usual. Older
  history is trusted through that signature, as a signed tag vouches for its tree.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.config import VerifyConfig
from reconciler.source.gitcli import GitFailed, Redactor, run_git
from reconciler.source.revision import SourceError
from reconciler.source.signatures import (
    CommitCheck,
    Signers,
    Verdict,
    check_commits,
    prepare_gnupg_home,
)

# A bad commit that changed more files than this is not looked at file by file.
_MAX_UNDONE_PATHS = 1000


class UnverifiedHistory(SourceError):
    """The head's history does not verify and no verified revision is there to serve."""


@dataclass(frozen=True)
class RangeCheck:
    """The outcome of one head's check: refused ("" when the head may be applied)."""

    refused: str
    checked: int


class HistoryVerifier:
    """Checks heads of one clone against repository.verify; remembers the last good one."""

    def __init__(
        self, verify: VerifyConfig, cache_dir: Path, work_tree: Path, status_path: str
    ) -> None:
        self.verify = verify
        self.work_tree = work_tree
        self.status_path = status_path
        self._record = cache_dir / "verified-revision"
        self._gnupg_home = cache_dir / "gnupg"

    def last_verified(self) -> str | None:
        try:
            text = self._record.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return (
            text if len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text) else None
        )

    def _remember(self, sha: str) -> None:
        partial = self._record.with_name(self._record.name + ".partial")
        partial.write_text(sha + "\n", encoding="ascii")
        os.replace(partial, self._record)

    def check(self, head: str, env: dict[str, str], redact: Redactor) -> RangeCheck:
        """Whether head may be applied; when it may, it becomes the last verified."""
        last = self.last_verified()
        if last == head:
            return RangeCheck("", 0)
        try:
            signers = Signers(
                self.verify.allowed_signers,
                self.verify.host_signers,
                prepare_gnupg_home(self._gnupg_home, self.verify.gpg_keyring),
            )
            if last is not None and self._contains(head, last, env, redact):
                outcome = self._check_range(last, head, signers, env, redact)
            else:
                outcome = self._check_anchor(head, last, signers, env, redact)
        except GitFailed as error:
            outcome = RangeCheck(f"cannot verify {head[:12]}: {error}", 0)
        if not outcome.refused:
            self._remember(head)
        return outcome

    # ------------------------------------------------------------------ the range

    def _contains(self, head: str, last: str, env: dict[str, str], redact: Redactor) -> bool:
        try:
            run_git(self.work_tree, ["merge-base", "--is-ancestor", last, head], env, redact)
        except GitFailed:
            return False  # not an ancestor, or gone with the rewritten history
        return True

    def _commits(self, revisions: list[str], env: dict[str, str], redact: Redactor) -> list[str]:
        """The range's commits, oldest first, refused beyond maxCommits."""
        count = int(
            run_git(self.work_tree, ["rev-list", "--count", *revisions], env, redact).strip() or 0
        )
        if count > self.verify.max_commits:
            raise _TooMany(count)
        return run_git(self.work_tree, ["rev-list", "--reverse", *revisions], env, redact).split()

    def _check_range(
        self, last: str, head: str, signers: Signers, env: dict[str, str], redact: Redactor
    ) -> RangeCheck:
        try:
            shas = self._commits([f"{last}..{head}"], env, redact)
        except _TooMany as many:
            return RangeCheck(
                f"{many.count} commits since the last verified revision {last[:12]}, more than"
                f" repository.verify.maxCommits ({self.verify.max_commits}) verified at once;"
                f" nothing after {last[:12]} is applied",
                0,
            )
        checks = check_commits(self.work_tree, shas, self.status_path, signers, env, redact)
        bad = self._first_kept(checks, last, head, env, redact)
        if bad is not None:
            return RangeCheck(f"{bad.describe()}; serving {last[:12]}", len(checks))
        return RangeCheck("", len(checks))

    def _check_anchor(
        self,
        head: str,
        last: str | None,
        signers: Signers,
        env: dict[str, str],
        redact: Redactor,
    ) -> RangeCheck:
        why = (
            "first verification on this host"
            if last is None
            else f"the branch no longer contains the last verified revision {last[:12]}"
            " (history rewritten)"
        )
        pathspecs = ["."]
        if self.status_path:
            pathspecs.append(f":(exclude){self.status_path}")
        anchor = (
            run_git(
                self.work_tree,
                ["log", "-1", "--first-parent", "--format=%H", head, "--", *pathspecs],
                env,
                redact,
            ).strip()
            or head
        )
        (checked,) = check_commits(self.work_tree, [anchor], "", signers, env, redact)
        if checked.verdict is not Verdict.OK:
            return RangeCheck(
                f"{why}: {checked.describe()}, as the newest commit outside the status"
                " folder that the history is anchored to",
                1,
            )
        try:
            shas = self._commits([f"{anchor}..{head}"], env, redact)
        except _TooMany as many:
            return RangeCheck(
                f"{why}: {many.count} commits after {anchor[:12]}, more than"
                f" repository.verify.maxCommits ({self.verify.max_commits})",
                1,
            )
        checks = check_commits(self.work_tree, shas, self.status_path, signers, env, redact)
        bad = self._first_kept(checks, anchor, head, env, redact)
        if bad is not None:
            return RangeCheck(f"{why}: {bad.describe()}", len(checks) + 1)
        return RangeCheck("", len(checks) + 1)

    def _first_kept(
        self,
        checks: list[CommitCheck],
        base: str,
        head: str,
        env: dict[str, str],
        redact: Redactor,
    ) -> CommitCheck | None:
        """The oldest refused commit whose change is still there at head."""
        for check in checks:
            if check.verdict is not Verdict.OK and not self._undone(check, base, head, env, redact):
                return check
        return None

    def _undone(
        self, check: CommitCheck, base: str, head: str, env: dict[str, str], redact: Redactor
    ) -> bool:
        if not check.paths or check.merge or len(check.paths) > _MAX_UNDONE_PATHS:
            return False
        literal = [f":(literal){path}" for path in check.paths]
        with contextlib.suppress(GitFailed):
            differing = run_git(
                self.work_tree, ["diff", "--name-only", base, head, "--", *literal], env, redact
            )
            return not differing.strip()
        return False


class _TooMany(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count
