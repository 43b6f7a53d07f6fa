"""A Git repository as the source of manifests: a private clone, fetched and hard-reset.

The clone lives in `cache_dir/worktree` and belongs to the daemon: what a push changed
is written at each update (source/tree_follow.py), and the whole clone is reset and
cleaned at start and every few minutes, so anything local is discarded and what is
applied is what the branch holds (the manifests are read by blob, source/cache.py).
When the remote cannot be reached, the last good revision keeps being served
(with `stale_error` set) so that an outage never looks like "every manifest was
deleted" (SPEC §10: an unreadable revision deletes nothing).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path

from reconciler.config import RepositoryConfig
from reconciler.source.gitcli import (
    NETWORK_TIMEOUT_SECONDS,
    Credentials,
    GitFailed,
    Redactor,
    is_remote_url,
    redact_url,
    run_git,
    run_git_bytes,
)
from reconciler.source.revision import (
    Revision,
    SourceError,
    changed_manifests,
    clean_relative,
    status_inside,
)
from reconciler.source.sparse import PATTERNS, cone_folders
from reconciler.source.tree_follow import follow
from reconciler.source.tree_map import TreeMap, listing_follows_tree
from reconciler.source.verified import HistoryVerifier, UnverifiedHistory

log = logging.getLogger(__name__)

# How long the work tree is followed by what Git says changed (tree_follow.py) before
# `reset --hard` and `clean` look at every file of it again: whatever else touched the
# clone is undone within this.
_TRUSTED_SECONDS = 300.0


class GitSource:
    """Fetches one branch of a remote repository into a private clone."""

    publishes_status = True
    local_path: Path | None = None

    def __init__(self, repository: RepositoryConfig, cache_dir: Path, status_path: str) -> None:
        url = repository.url
        # A bare repository given as a path: absolute, because git runs elsewhere.
        self.url = url if is_remote_url(url) else str(Path(url).expanduser().resolve())
        self.branch = repository.branch
        self.sub_path = clean_relative(repository.sub_path)
        self.status_path = clean_relative(status_path)
        self._status_relative = status_inside(self.sub_path, self.status_path)
        self.cache_dir = cache_dir
        # Not cache_dir itself: `git clean -fdx` would delete known_hosts beside it.
        self.work_tree = cache_dir / "worktree"
        self._credentials = Credentials(
            self.url, repository.ssh_key_file, repository.token_file, cache_dir / "known_hosts"
        )
        self._previous: Revision | None = None
        # The tree last listed or patched: the next revision's is this one patched.
        self._tree: TreeMap | None = None
        self.network_timeout = NETWORK_TIMEOUT_SECONDS
        self._clone_checked = False
        # Whether the clone's work tree leaves the status folder out, and whether it should
        # (leave_out_status); None: not known yet for this clone.
        self._status_left_out: bool | None = None
        self._leave_out_status = False
        self._sparse_unavailable = False  # git refused it once: not asked again
        self._sparse_shape: tuple[str, ...] | str | None = None  # as last set; None: unknown
        # The commit whose files the work tree holds exactly, as far as this process made
        # it so (None: not known); HEAD and the index may be older (_follow).
        self._holds: str | None = None
        self._looked_at = 0.0  # when reset --hard and clean last looked at every file
        # repository.verify: only a head whose history verifies is checked out.
        self.verifier = (
            HistoryVerifier(repository.verify, cache_dir, self.work_tree, self.status_path)
            if repository.verify is not None
            else None
        )

    def leave_out_status(self, leave_out: bool) -> None:
        """Whether the clone's work tree may go without the status folder, from the next
        update on. The daemon reads the fleet's reports from the status publisher's own
        clone; a copy here only costs a checkout of every report file after each status
        commit (seconds, for thousands of them). The daemon asks for the copy again
        whenever it has no other (a new publisher clone), so the reports are never out
        of reach. Manifests and the revision's tree entries are unaffected."""
        self._leave_out_status = (
            leave_out
            and not self._sparse_unavailable
            and bool(self.status_path)
            and _plain(self.status_path)
        )

    def describe(self) -> str:
        return f"{redact_url(self.url)} ({self.branch})"

    @property
    def object_store(self) -> Path:
        """Where the clone keeps its objects: the status publisher borrows them."""
        return self.work_tree / ".git" / "objects"

    def git_env(self) -> dict[str, str]:
        """Environment for other git commands against this remote (the status publisher)."""
        try:
            return self._credentials.environment(self._credentials.read_token())
        except GitFailed as error:
            raise SourceError(f"{self.describe()}: {error}") from None

    # ------------------------------------------------------------------ update

    def update(self) -> Revision:
        try:
            token = self._credentials.read_token()
        except GitFailed as error:
            reason = f"cannot fetch {self.describe()}: {error}"
            return self._serve_previous(reason, self._credentials.environment(""), Redactor(""))
        env = self._credentials.environment(token)
        redact = Redactor(self.url, token)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            head = self._fetch(env, redact)
        except GitFailed as error:
            reason = f"cannot fetch {redact_url(self.url)} ({self.branch}): {error}"
            return self._serve_previous(reason, env, redact)
        if self.verifier is not None:
            refused = self.verifier.check(head, env, redact).refused
            if refused:
                return self._serve_verified(refused, env, redact)
        tree = self._tree_at(head, env, redact)
        if tree is None:
            reason = f"sub-path {self.sub_path!r} is missing at {head}"
            return self._serve_previous(reason, env, redact)
        return self._checkout(tree, env, redact, stale_error="")

    def _serve_previous(self, reason: str, env: dict[str, str], redact: Redactor) -> Revision:
        """The last good revision marked stale, or SourceError when there is none."""
        head = self._previous.head if self._previous is not None else self._cached_head(env, redact)
        tree = self._tree_at(head, env, redact) if head else None
        if tree is None:
            raise SourceError(f"{reason}; no earlier revision to serve")
        # Still refused, if it was: the fetch that failed brought nothing newer.
        unverified = self._previous.unverified if self._previous is not None else ""
        return self._checkout(tree, env, redact, reason, unverified)

    def _serve_verified(self, refused: str, env: dict[str, str], redact: Redactor) -> Revision:
        """The last verified revision, with why the head is not applied; UnverifiedHistory
        when no revision has verified yet."""
        assert self.verifier is not None
        last = self.verifier.last_verified()
        tree = self._tree_at(last, env, redact) if last else None
        if tree is None:
            raise UnverifiedHistory(f"{self.describe()}: {refused}; no verified revision to serve")
        return self._checkout(tree, env, redact, stale_error="", unverified=refused)

    # --------------------------------------------------------------- the clone

    def _fetch(self, env: dict[str, str], redact: Redactor) -> str:
        """Clones or fetches the branch; returns the sha of its head."""
        if self._is_our_clone(env, redact):
            refspec = f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}"
            run_git(
                self.work_tree,
                # No submodules here: fetch need not read the index to look for them.
                ["fetch", "--no-tags", "--no-recurse-submodules", "--quiet", "origin", refspec],
                env,
                redact,
                timeout=self.network_timeout,
            )
        else:
            self._clone(env, redact)
        ref = f"refs/remotes/origin/{self.branch}^{{commit}}"
        return run_git(self.work_tree, ["rev-parse", "--verify", ref], env, redact).strip()

    def _is_our_clone(self, env: dict[str, str], redact: Redactor) -> bool:
        if not (self.work_tree / ".git").is_dir():
            return False
        if self._clone_checked:
            return True  # checked once per source object: one git call less per update
        try:
            origin = run_git(self.work_tree, ["config", "--get", "remote.origin.url"], env, redact)
        except GitFailed:
            origin = ""
        if origin.strip() == self.url:
            self._clone_checked = True
            return True
        # The configuration now names another repository: its old clone is useless.
        self._holds = None  # the files change beyond what a diff says
        shutil.rmtree(self.work_tree)
        return False

    def _clone(self, env: dict[str, str], redact: Redactor) -> None:
        # Cloned beside and renamed, so an interrupted clone never looks like a good one.
        partial = self.cache_dir / "worktree.partial"
        shutil.rmtree(partial, ignore_errors=True)
        if self.work_tree.exists():
            self._holds = None  # the files change beyond what a diff says
            shutil.rmtree(self.work_tree)
        command = ["clone", "--quiet", "--no-tags", "--single-branch", "--branch", self.branch]
        try:
            run_git(
                self.cache_dir,
                [*command, "--", self.url, partial.name],
                env,
                redact,
                timeout=self.network_timeout,
            )
        except GitFailed:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        self._holds = None  # the files change beyond what a diff says
        partial.rename(self.work_tree)
        self._status_left_out = False  # a new clone checks out everything

    def _cached_head(self, env: dict[str, str], redact: Redactor) -> str | None:
        """HEAD of a clone left by an earlier run of the daemon, if any."""
        if not (self.work_tree / ".git").is_dir():
            return None
        try:
            output = run_git(
                self.work_tree, ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], env, redact
            )
        except GitFailed:
            return None
        return output.strip() or None

    # ---------------------------------------------------------- one revision

    def _tree_at(self, head: str, env: dict[str, str], redact: Redactor) -> TreeMap | None:
        """The tree under the sub-path at head: the last one patched with what changed
        since (one git call, output in proportion to the change), else listed whole;
        None if the sub-path is absent at head."""
        known = self._tree
        if known is not None and known.head == head:
            return known
        tree: TreeMap | None = None
        if known is not None:
            try:
                output = run_git(
                    self.work_tree,
                    [
                        "diff-tree",
                        "-r",
                        "-t",
                        "-z",
                        "--no-renames",
                        "--no-abbrev",
                        f"{known.head}:{self.sub_path}",
                        f"{head}:{self.sub_path}",
                    ],
                    # Two trees, no index: git 2.39 would still read the index, and
                    # expand a sparse one (tens of ms for thousands of reports).
                    {**env, "GIT_INDEX_FILE": str(self.cache_dir / "no-index")},
                    redact,
                )
                tree = known.patched(head, output, self._status_relative)
            except GitFailed:
                tree = None  # the sub-path is missing at one of them: listed below
        if tree is None:
            tree = self._list_tree(head, env, redact)
        self._tree = tree if tree is not None else known
        return tree

    def _list_tree(self, head: str, env: dict[str, str], redact: Redactor) -> TreeMap | None:
        """Every tree and blob under the sub-path at head (one git call); None if absent."""
        try:
            output = run_git(
                self.work_tree,
                ["ls-tree", "-r", "-t", "-z", f"{head}:{self.sub_path}"],
                env,
                redact,
            )
        except GitFailed:
            return None
        return TreeMap.listed(head, output, self._status_relative)

    def _checkout(
        self,
        tree: TreeMap,
        env: dict[str, str],
        redact: Redactor,
        stale_error: str,
        unverified: str = "",
    ) -> Revision:
        head = tree.head
        try:
            self._shape_work_tree(tree, env, redact)
            if not self._follow(head, env, redact):
                self._holds = None
                run_git(self.work_tree, ["reset", "--hard", "--quiet", head], env, redact)
                run_git(self.work_tree, ["clean", "-fdxq"], env, redact)
                self._holds, self._looked_at = head, time.monotonic()
            sha = self._applied_sha(head, env, redact)
        except GitFailed as error:
            self._holds = None
            raise SourceError(f"{self.describe()}: cannot check out {head}: {error}") from None
        previous = self._previous
        revision = Revision(
            head=head,
            sha=sha,
            root=self.work_tree / self.sub_path if self.sub_path else self.work_tree,
            repo_root=self.work_tree,
            manifests_key=tree.manifests_key,
            changed=self._changed_since(previous, tree),
            stale_error=stale_error,
            unverified=unverified,
            blobs=tree.blobs,
            base=previous.head if previous is not None else None,
            tree_listing=listing_follows_tree(tree.links, self._status_relative),
        )
        self._previous = revision
        return revision

    def _follow(self, head: str, env: dict[str, str], redact: Redactor) -> bool:
        """The work tree brought to `head` by what differs from the commit it holds
        (tree_follow.py): the files a push changed, not every file of the repository
        (reset --hard and clean look at all of them: a fifth of a pass at 10,000 VMs).
        False when reset --hard must do it."""
        holds = self._holds
        if holds is None or time.monotonic() - self._looked_at > _TRUSTED_SECONDS:
            return False
        if holds == head:
            return True
        self._holds = None  # until it is done
        pathspecs = ["."]
        if self._status_left_out and self.status_path:
            pathspecs.append(f":(exclude){self.status_path}")

        # The diff of two trees needs no index (git 2.39 would still read it).
        no_index = {**env, "GIT_INDEX_FILE": str(self.cache_dir / "no-index")}

        def run(args: list[str], stdin: bytes | None) -> bytes:
            return run_git_bytes(self.work_tree, args, no_index, redact, stdin)

        if follow(run, self.work_tree, pathspecs, holds, head) is None:
            return False
        # HEAD names the files' commit (the index alone lags): a restart with the
        # remote out of reach serves this revision, not the last one reset to.
        run_git(self.work_tree, ["update-ref", "HEAD", head], env, redact)
        self._holds = head
        return True

    def _changed_since(self, previous: Revision | None, tree: TreeMap) -> frozenset[str] | None:
        """The manifest files changed since the revision served last: known from the
        patch when the tree was patched from it, else by comparing the blob maps."""
        if previous is None:
            return None
        if previous.head == tree.head:
            return frozenset()
        if tree.base == previous.head:
            return tree.changed
        return changed_manifests(previous.blobs, tree.blobs, self._status_relative)

    def _shape_work_tree(self, tree: TreeMap, env: dict[str, str], redact: Redactor) -> None:
        """Leave the status folder out of the work tree, or bring it back (sparse checkout:
        everything but that one folder).

        In cone mode with a sparse index, the index holds the status folder as one
        entry, so `reset --hard` at every update does not go through each of the
        fleet's thousands of reports. The cones are every folder beside the status
        folder and beside each folder on the way to it, at the revision about to be
        checked out (a folder new in it is checked out too); when one of their names
        cannot be given as a cone, patterns say the same."""
        if self._status_left_out is None:
            try:
                found = run_git(
                    self.work_tree, ["config", "--bool", "core.sparseCheckout"], env, redact
                )
            except GitFailed:
                found = ""  # not set
            self._status_left_out = found.strip() == "true"
        if not self._leave_out_status:
            if self._status_left_out:
                self._holds = None  # the files change beyond what a diff says
                run_git(self.work_tree, ["sparse-checkout", "disable"], env, redact)
            self._status_left_out, self._sparse_shape = False, None
            return
        cones = cone_folders(
            self.status_path, lambda folder: self._folders(tree, folder, env, redact)
        )
        shape = cones if cones is not None else PATTERNS
        if self._status_left_out and shape == self._sparse_shape:
            return
        shapes = [shape, PATTERNS] if shape != PATTERNS else [PATTERNS]
        for tried in shapes:
            try:
                self._holds = None  # the files change beyond what a diff says
                run_git(self.work_tree, self._sparse_command(tried), env, redact)
            except GitFailed as error:
                failure = error
                continue
            self._status_left_out, self._sparse_shape = True, tried
            return
        # Only a saving: the whole tree is checked out as before.
        log.warning("the status folder stays in the source clone: %s", failure)
        self._sparse_unavailable = True
        self._leave_out_status = False
        with contextlib.suppress(GitFailed):
            self._holds = None  # the files change beyond what a diff says
            run_git(self.work_tree, ["sparse-checkout", "disable"], env, redact)
        self._status_left_out, self._sparse_shape = None, None  # read again from the clone

    def _sparse_command(self, shape: tuple[str, ...] | str) -> list[str]:
        if isinstance(shape, tuple):
            return ["sparse-checkout", "set", "--cone", "--sparse-index", "--", *shape]
        patterns = ["/*", f"!/{self.status_path}/"]
        return ["sparse-checkout", "set", "--no-cone", "--no-sparse-index", *patterns]

    def _folders(
        self, tree: TreeMap, folder: str, env: dict[str, str], redact: Redactor
    ) -> list[str]:
        """The names of the folders in a folder of the repository at the tree's head: from
        the tree's own entries when the manifests root is the repository's (they hold the
        root and the folders on the way to the status folder), else from git."""
        if not self.sub_path:
            return tree.folders_in(folder)
        try:
            output = run_git(
                self.work_tree, ["ls-tree", "-z", f"{tree.head}:{folder}"], env, redact
            )
        except GitFailed:
            return []  # no such folder at head: nothing in it to check out
        return [
            record.partition("\t")[2]
            for record in output.split("\0")
            if record and record.split(" ")[1] == "tree"
        ]

    def _applied_sha(self, head: str, env: dict[str, str], redact: Redactor) -> str:
        """The newest commit that changed the manifests: the daemon's own status
        commits must not look like a new revision to apply."""
        pathspecs = [self.sub_path or "."]
        if self.status_path:
            pathspecs.append(f":(exclude){self.status_path}")
        output = run_git(
            self.work_tree, ["log", "-1", "--format=%H", head, "--", *pathspecs], env, redact
        )
        return output.strip() or head


def _plain(path: str) -> bool:
    """A path that means itself as a sparse-checkout pattern."""
    return not any(character in path for character in "*?[]!\\#") and not path.startswith(" ")
