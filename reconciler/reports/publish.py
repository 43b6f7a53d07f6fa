"""Status reports into Git: commit as the host's own identity, push, and on a lost race
start over from the remote's new head.

Several hosts push to one branch at once. A rejected push is never forced and never
cherry-picked: the clone is reset to what the remote now holds and the reports are
written again on top of it, so every host's files survive (each host writes only
its own reports). A clone left half-done by a killed daemon is reset the same way.
In a fleet, a host that lost a race leaves its commit in a mailbox of its own on the
remote, and the next host's push carries its reports (carry.py): one landing takes every
report waiting, so a fleet-wide change lands in a few commits however many hosts there
are. Where mailboxes cannot be used, the hosts that lost take turns, in an order each
reads from the branch's history (`_turn`), so that each loses about once.

Every push holds a lease on the head it was built on: it lands only while the
remote's branch is still exactly there. A branch deleted on the remote is therefore
never recreated holding nothing but status/ (issue 12); only a status branch of its
own, which holds nothing else, is started when missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from git import Git
from git.exc import GitCommandError

from reconciler.model.errors import RetryableError
from reconciler.reports import status_index
from reconciler.reports.carry import (
    NOTHING,
    PENDING_FETCHED,
    PENDING_ON_REMOTE,
    Carried,
    carry,
    fetched_mailboxes,
)
from reconciler.reports.tree_commit import TreeCommits, Unfit
from reconciler.source.gitcli import (
    NETWORK_TIMEOUT_SECONDS,
    GitFailed,
    Redactor,
    batch_mktree,
    redact_url,
    run_git,
    run_git_bytes,
)
from reconciler.source.tree_follow import follow

log = logging.getLogger(__name__)

# git's words for "someone else pushed first" (client side) or "someone else is
# updating the ref right now" (server side). A bare "rejected" is not enough: a hook
# or a protected branch declines with "[remote rejected]" too, and retrying that
# only delays the error.
_REJECTED = (
    "fetch first",
    "non-fast-forward",
    "failed to update ref",
    "cannot lock ref",
    "incorrect old value",
    "stale info",
)
_NO_BRANCH = ("couldn't find remote ref", "not found in upstream")
# The local name of a status branch that does not exist on the remote yet.
_NEW_BRANCH = "vmr-new-status-branch"
# The lease of a push that starts a branch: the remote must not have it yet.
_ABSENT = ""
# The author of a host's status commits, before its node name: who has pushed is read
# back from the branch's history (_turn).
_AUTHOR_PREFIX = "vm-reconciler on "
# The trailer naming each host whose reports a status commit carries (carry.py).
_CARRIED_TRAILER = "Carried-for"
# A turn's slot and the longest wait for a turn: an attempt's Git part (fetch, commit,
# push) takes a fraction of a second on a quiet remote; a waiting host never sleeps longer
# than a daemon's usual interval.
_SLOT_SECONDS = 2.0
_TURN_SECONDS = 60.0


# More paths changed than this at once: the status tree is listed anew instead.
_MOST_PATHS_TOLD = 2000
# How long the clone is followed by what Git says changed (tree_follow.py) before
# `git status` looks at every file of it again: whatever else touched the clone
# (a person, a bug of ours) is undone within this.
_TRUSTED_SECONDS = 300.0


@dataclass(frozen=True)
class _CloneState:
    branch: str | None  # the ref HEAD names
    head: str | None  # the commit it holds
    dirty: list[str] | None  # the paths that differ from that commit
    untracked: bool = True  # whether some of them are not tracked (left over, ignored)

    def holds(self, branch: str, head: str) -> bool:
        """Whether the clone is the branch at `head` exactly: nothing changed, staged,
        added or left over, as checkout -f and clean -fdx leave it."""
        return self.branch == f"refs/heads/{branch}" and self.head == head and self.dirty == []


class _Turn:
    """A host's wait for its turn after a lost race, across the looks it takes at the
    branch (each attempt's fetch): it waits the slots of the hosts still ahead of it,
    and goes when none are left, when nobody landed while it slept (the hosts ahead are
    slow, or down), or when it has waited long enough."""

    def __init__(self, slot: float) -> None:
        self.slot = slot
        self.waited = 0.0
        self.history: str | None = None

    def again(self, look: tuple[int, str] | None) -> float:
        """The seconds to sleep before the next look; 0: go now."""
        if look is None:
            return 0.0
        rank, history = look
        if rank == 0 or history == self.history or self.waited >= _TURN_SECONDS:
            return 0.0
        self.history = history
        pause = min(rank * self.slot + _jitter(self.slot), _TURN_SECONDS - self.waited)
        self.waited += pause
        return pause


class _Waiting:
    """A host whose commit waits in its mailbox for the next host's push to carry it
    (carry.py). The hosts waiting are ordered by a hash of the revision and their names,
    as turns are: the first pushes after a slot (an attempt's time), carrying them all;
    the others look every two slots (at the remote's refs alone), since the next landing
    most likely carries them. A host pushes its own when it is first, when nobody landed for
    four slots (the first is slow, or down), or when it has waited long enough."""

    def __init__(
        self, slot: float, node: str, fleet: Sequence[str], revision: str, head: str
    ) -> None:
        self.slot = slot
        self.node = node
        self.fleet = frozenset(fleet)
        self.revision = revision
        self.head = head  # the branch as it last looked
        self.quiet = 0.0  # since the branch last moved
        self.waited = 0.0

    def first(self, others: Mapping[str, str]) -> float:
        """The pause right after it left its commit in its mailbox: the first waits a slot,
        as long as the others that lost to the same push take to leave theirs."""
        return self._pause(1 if self.leads(others) else 2)

    def again(self, head: str, others: Mapping[str, str]) -> float:
        """The seconds to wait before the next look; 0: push now."""
        if head != self.head:
            self.head, self.quiet = head, 0.0
        if self.leads(others) or self.quiet >= 4 * self.slot or self.waited >= _TURN_SECONDS:
            return 0.0
        return self._pause(2)

    def leads(self, others: Mapping[str, str]) -> bool:
        # Only the fleet's hosts count: a mailbox anyone else left is never carried.
        mine = _rank(self.revision, self.node)
        return all(mine < _rank(self.revision, node) for node in others if node in self.fleet)

    def _pause(self, slots: float) -> float:
        pause = min(slots * self.slot + _jitter(self.slot), _TURN_SECONDS - self.waited)
        self.waited += pause
        self.quiet += pause
        return pause


class PublishError(RetryableError):
    """The reports could not be pushed; the message is redacted and says why."""


@dataclass(frozen=True)
class PublishResult:
    committed: bool
    commit: str | None = None
    attempts: int = 1


Write = Callable[[Path], list[Path]]


class StatusPublisher:
    def __init__(
        self,
        url: str,
        branch: str,
        status_path: str,
        node_name: str,
        work_dir: Path,
        *,
        git_env: Mapping[str, str] | None = None,
        environment: Callable[[], dict[str, str]] | None = None,
        attempts: int = 8,
        create_missing_branch: bool = False,
        signing_key: Path | None = None,
        borrowed_objects: Path | None = None,
    ) -> None:
        """git_env: fixed variables for git (credentials); environment: a callable asked
        before every publish instead, so a rotated token file is picked up.
        create_missing_branch: only for a status branch of its own; the branch the hosts
        follow is never created (its manifests would be gone). signing_key: the host's SSH
        private key that signs every status commit, so that hosts verifying history
        (repository.verify) accept it; None: unsigned. borrowed_objects: the object store
        of the source's clone of the same remote, which fetched the same branch moments
        before: the clone borrows its objects (`objects/info/alternates`) instead of
        fetching them once more (_borrow)."""
        self.url = url
        self.branch = branch
        self.status_path = status_path.strip("/") or "status"
        self.node_name = node_name
        self.work_dir = work_dir
        self.attempts = attempts
        self.last_commit: str | None = None
        # Pushes another host's push beat since this publisher was made: the daemon
        # exports it (reconciler_status_push_rejections), contention made visible.
        self.rejections = 0
        # The Git part (fetch, commit, push) of its last attempts.
        self._recent_attempts: deque[float] = deque(maxlen=8)
        self._git_env = dict(git_env or {})
        self._environment = environment or dict
        self._redact = Redactor(url)
        self.create_missing_branch = create_missing_branch
        # The remote head the clone was last reset to: the lease of the next push.
        self._fetched_head = _ABSENT
        self.signing_key = signing_key
        # Whether the clone's remote was set to `url` by this publisher already.
        self._remote_set = False
        # The commit whose status folder the clone's files are, exactly, as far as this
        # process made them so (None: not known; `git status` looks). HEAD and the index
        # may be older: only a checkout moves them (_checked_out).
        self._holds: str | None = None
        self._checked_out: str | None = None
        self._looked_at = 0.0  # when `git status` last looked at every file
        self._trees = TreeCommits(self._git_bytes)
        self.borrowed_objects = borrowed_objects
        # The store borrowed from now (None: none): the objects of a commit made from
        # trees on a head it holds are written there too (_into_lender).
        self._lender: Path | None = None
        self._lending = False  # this commit's objects go into the lender's store
        # How it waits after a lost race (a test looks at the branch meanwhile).
        self._sleep: Callable[[float], None] = time.sleep
        # The remote refused a mailbox (carry.py): lost races wait their turn instead.
        self._carrying_refused = False
        # Whether fetches bring the mailboxes: the last publish could carry.
        self._fetch_mailboxes = False

    @property
    def status_root(self) -> Path:
        """The fleet's reports as last fetched."""
        return self.work_dir / self.status_path

    def _env(self) -> dict[str, str]:
        return {
            **self._git_env,
            **self._environment(),
            # Never wait for a password: the daemon has no terminal.
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": f"{_AUTHOR_PREFIX}{self.node_name}",
            "GIT_AUTHOR_EMAIL": f"vm-reconciler@{self.node_name}",
            "GIT_COMMITTER_NAME": f"{_AUTHOR_PREFIX}{self.node_name}",
            "GIT_COMMITTER_EMAIL": f"vm-reconciler@{self.node_name}",
        }

    def refresh(self) -> bool:
        """The clone at the remote's head now, so a pass plans from the other hosts'
        latest reports: otherwise it reads the tree its own last publish left, and a VM
        two hosts claim would be written over by each in turn, neither seeing the other
        (engine/fleet/strays.py). False when it could not be fetched: the pass reads the
        reports as last fetched, and its publish says what failed."""
        try:
            self._sync(self._env())
        except PublishError:
            return False
        return True

    def publish(
        self, write: Write, summary: str, *, fleet: Sequence[str] = (), revision: str = ""
    ) -> PublishResult:
        """fleet: the names of the hosts that push to the branch (the fleet's Nodes);
        revision: the commit of the branch this host applied (empty when the reports go
        to a branch of their own). Every host writes its Node report after every push to
        the branch, so after each push all of them publish at once and only one lands
        per round: a host that loses the race leaves its commit in its mailbox and waits
        for the next push to carry it (`_Waiting`, carry.py), or, without mailboxes,
        takes a turn (`_turn`) instead of a random few seconds that would bring the
        losers back together (docs/engine.md, "Many hosts on one repository")."""
        env = self._env()
        message = f"status({self.node_name}): {summary} [skip ci]"
        attempts = max(self.attempts, 3 * len(fleet))
        turn: _Turn | None = None  # this host's place in the order, after a lost race
        carrying = self._fetch_mailboxes = self._carries(fleet, revision)
        posted = False  # this publish left its commit in its mailbox (carry.py)
        waiting: _Waiting | None = None  # for another host to carry it, after a lost race
        for attempt in range(1, attempts + 1):
            began = time.monotonic()
            # Fetched again even right after refresh(): in a fleet the other hosts land
            # while this one plans, and a push on the head it planned on would only
            # lose a race and wait a turn (the fetch moves no object the source has).
            if waiting is not None:
                carried_in = self._wait_to_be_carried(env, waiting)
                waiting = None
                if carried_in is not None:
                    self.last_commit = carried_in
                    return PublishResult(committed=True, commit=carried_in, attempts=attempt)
                began = time.monotonic()
            self._sync(env)
            mailboxes, own = self._mailboxes(carrying, fleet)
            if carrying and posted and own is None:
                # Another host's push carried this host's reports, and deleted its mailbox.
                self.last_commit = self._fetched_head
                return PublishResult(committed=True, commit=self._fetched_head, attempts=attempt)
            while turn is not None and (pause := turn.again(self._turn(env, fleet, revision))):
                # Not its turn yet: the hosts ahead are still landing.
                self._sleep(pause)
                began = time.monotonic()
                self._sync(env)
            turn = None
            writing = time.monotonic()
            carried = self._carry(env, mailboxes)
            commit, carried, written = self._write_and_commit(env, write, message, carried)
            # A turn's slot is the Git part of an attempt: the others redo their writes
            # from reports they have rendered already, which is quick.
            began += time.monotonic() - writing
            if commit is None:
                if own is not None:  # what it left there is no longer what it would write
                    self._delete_mailbox(env, own)
                return PublishResult(committed=False, attempts=attempt)
            failure = self._push(env, commit, carried, own)
            if failure is not None:
                if not any(word in failure for word in _REJECTED):
                    raise self._failed("push to", failure)
                self.rejections += 1
                cycle = time.monotonic() - began
                self._recent_attempts.append(cycle)
                if attempt < attempts:
                    # Another host pushed first. The slot: this attempt's Git part, but
                    # at most twice the quickest recent one (an attempt made while every
                    # host of the fleet runs its pass is slower than the ones after).
                    cycle = min(cycle, 2 * min(self._recent_attempts), _SLOT_SECONDS)
                    left = (
                        self._leave_in_mailbox(env, commit, carried, written, message, own, posted)
                        if carrying
                        else None
                    )
                    if left == "held":
                        return PublishResult(committed=False, attempts=attempt)
                    if left == "again":
                        self._sleep(_jitter(cycle))
                        continue
                    if left == "left":
                        # Left for the next host's push to carry: wait about as long as
                        # that takes, then look (and push, when nobody did). Its slot: this
                        # attempt's whole Git part, what another host's attempt takes now.
                        posted = True
                        slot = min(self._recent_attempts[-1], _SLOT_SECONDS)
                        waiting = _Waiting(
                            slot, self.node_name, fleet, revision, self._fetched_head
                        )
                        self._sleep(waiting.first(mailboxes))
                        if waiting.leads(mailboxes):
                            waiting = None  # it pushes next: its fetch says if it was carried
                        continue
                    carrying = carrying and not self._carrying_refused
                    # Without mailboxes: wait for this host's turn, then redo the
                    # reports on the head the others left.
                    turn = self._wait_for_turn(env, fleet, revision, cycle)
                    if turn is None:
                        self._sleep(_backoff_seconds(attempt))
                continue
            self._recent_attempts.append(time.monotonic() - began)
            self.last_commit = commit
            if self._lending:
                self._tell_lender(commit)
            if carried.mailboxes:
                log.info("status: carried the reports of %s", ", ".join(sorted(carried.mailboxes)))
            return PublishResult(committed=True, commit=commit, attempts=attempt)
        raise PublishError(
            f"{redact_url(self.url)} ({self.branch}): the push was rejected"
            f" {attempts} times in a row; giving up until the next pass"
        )

    # ------------------------------------------------------------------ carrying

    def _mailboxes(self, carrying: bool, fleet: Sequence[str]) -> tuple[dict[str, str], str | None]:
        """The mailboxes of the fleet's other hosts as fetched (node -> commit), and this
        host's own. A mailbox of no Node (a host gone from the fleet) is never carried."""
        if not carrying:
            return {}, None
        mailboxes = fetched_mailboxes(self._git_bytes)
        own = mailboxes.pop(self.node_name, None)
        return {node: commit for node, commit in mailboxes.items() if node in fleet}, own

    def _remote_refs(self, env: dict[str, str]) -> tuple[str, dict[str, str]] | None:
        """The branch's head on the remote and its mailboxes (node -> commit), from the
        remote's refs alone (nothing is fetched); None when they cannot be read."""
        branch = f"refs/heads/{self.branch}"
        try:
            listed = self._git(
                env,
                "ls-remote",
                "origin",
                branch,
                f"{PENDING_ON_REMOTE}*",
                timeout=NETWORK_TIMEOUT_SECONDS,
            )
        except PublishError:
            return None
        refs = dict(line.split("\t", 1)[::-1] for line in listed.splitlines() if "\t" in line)
        mailboxes = {
            ref.removeprefix(PENDING_ON_REMOTE): commit
            for ref, commit in refs.items()
            if ref.startswith(PENDING_ON_REMOTE)
        }
        return refs.get(branch, ""), mailboxes

    def _wait_to_be_carried(self, env: dict[str, str], waiting: _Waiting) -> str | None:
        """Look at the remote's refs (not a fetch: nothing of it is needed yet) until this
        host's mailbox is gone, carried by another host's push: then the branch's head,
        which holds its reports; None when it is to push them itself (_Waiting), or the
        remote cannot be read (the fetch that follows says why)."""
        while True:
            refs = self._remote_refs(env)
            if refs is None:
                return None
            head, others = refs
            if others.pop(self.node_name, None) is None:
                return head or None
            pause = waiting.again(head, others)
            if not pause:
                return None
            # Hosts are landing: the next most likely carries this one's reports.
            self._sleep(pause)

    def _carries(self, fleet: Sequence[str], revision: str) -> bool:
        """Whether a lost race leaves the commit in a mailbox for the next host to carry
        (carry.py): in a fleet of three hosts or more pushing to the branch it follows
        (in a fleet of two, the other host is the one that just landed: nobody would
        carry it), while the remote takes mailboxes. Not with signed commits: a host
        would sign reports it did not write, from a ref anyone who may push can write."""
        fleet_size = len(set(fleet))
        return bool(revision) and self.node_name in fleet and fleet_size > 2 and self._may_carry()

    def _may_carry(self) -> bool:
        return self.signing_key is None and not self._carrying_refused

    def _carry(self, env: dict[str, str], mailboxes: dict[str, str]) -> Carried:
        """The other hosts' waiting reports written into the clone (carry.py), which holds
        the fetched head; whatever goes wrong, nothing is carried."""
        if not mailboxes or self._holds != self._fetched_head:
            return NOTHING
        try:
            carried = carry(
                self._git_bytes, self.work_dir, self.status_path, self._fetched_head, mailboxes
            )
        except PublishError as error:
            log.info("status: the other hosts' waiting reports are not carried: %s", error)
            carried = None
        if carried is None:
            # Written halfway: the head is checked out again.
            self._holds = None
            status_index.distrust(self.status_root)
            self._sync(env, fetch=False)
            return NOTHING
        status_index.changed(carried.paths)
        return carried

    def _push(
        self, env: dict[str, str], commit: str, carried: Carried, own: str | None
    ) -> str | None:
        """Push the commit to the branch with a lease on the fetched head, and delete, in
        the same atomic push, the mailboxes whose reports it carries and this host's own,
        each with a lease on the commit read from it: all of it lands, or none."""
        ref = f"refs/heads/{self.branch}"
        leases = [f"--force-with-lease={ref}:{self._fetched_head}"]
        refspecs = [f"{commit}:{ref}"]
        emptied = dict(carried.mailboxes)
        if own is not None:
            emptied[self.node_name] = own
        for node, mailbox in sorted(emptied.items()):
            leases.append(f"--force-with-lease={PENDING_ON_REMOTE}{node}:{mailbox}")
            refspecs.append(f":{PENDING_ON_REMOTE}{node}")
        atomic = ["--atomic"] if len(refspecs) > 1 else []
        return self._network(env, "push", "--quiet", *atomic, *leases, "origin", *refspecs)

    def _leave_in_mailbox(
        self,
        env: dict[str, str],
        commit: str,
        carried: Carried,
        written: list[Path],
        message: str,
        own: str | None,
        posted: bool,
    ) -> str | None:
        """After a lost race, this host's reports left in its mailbox for the next host's
        push to carry: "left" when they are there (what this publish left there before,
        still there, is left as it is, so that the leases the others' pushes hold on it
        stay good); "again" when what it left there before was carried meanwhile, or its
        part cannot be made from trees: it pushes again; "held" when the head holds its
        reports already; None when the remote takes no mailbox (it takes turns)."""
        if posted and own is not None:
            return "left"
        mine = self._own_part(env, commit, carried, written, message)
        if mine == "":
            if own is not None:  # what it left there is no longer what it would write
                self._delete_mailbox(env, own)
            return "held"
        if mine is None:
            return "again"
        placed = self._post(env, mine, own)
        if placed is None:
            return None
        return "left" if placed else "again"

    def _own_part(
        self, env: dict[str, str], commit: str, carried: Carried, written: list[Path], message: str
    ) -> str | None:
        """What goes into this host's mailbox: the commit itself, or, when it carried other
        hosts' reports, a commit on the same head of its own reports alone. Carried along
        once more, their reports would land without their mailboxes being emptied, and
        their hosts would wait on. "": the head holds this host's reports already; None:
        it cannot be made (through the index next time)."""
        if not carried.files:
            return commit
        try:
            return self._from_trees(env, written, message) or ""
        except Unfit:
            return None

    def _post(self, env: dict[str, str], commit: str, own: str | None) -> bool | None:
        """The commit into this host's mailbox (with a lease on what it held): True when
        it is there; False when the mailbox changed since it was read (another host
        carried what was in it); None when the remote takes no mailbox (a forge that
        refuses the ref): from then on this publisher takes turns."""
        ref = f"{PENDING_ON_REMOTE}{self.node_name}"
        failure = self._network(
            env,
            "push",
            "--quiet",
            f"--force-with-lease={ref}:{own or _ABSENT}",
            "origin",
            f"{commit}:{ref}",
        )
        if failure is None:
            return True
        if any(word in failure for word in _REJECTED):
            return False
        log.warning(
            "status: the remote takes no mailbox (%s): lost races wait their turn instead",
            _reason(failure),
        )
        self._carrying_refused = True
        self._fetch_mailboxes = False
        return None

    def _delete_mailbox(self, env: dict[str, str], own: str) -> None:
        """This host's mailbox emptied, when what is in it is outdated; a failure leaves
        it to the hosts, which carry it only onto the very files it saw."""
        ref = f"{PENDING_ON_REMOTE}{self.node_name}"
        self._network(
            env, "push", "--quiet", f"--force-with-lease={ref}:{own}", "origin", f":{ref}"
        )

    def _write_and_commit(
        self, env: dict[str, str], write: Write, message: str, carried: Carried
    ) -> tuple[str | None, Carried, list[Path]]:
        """Write the reports and commit them, with the reports carried (already in the
        files), on the fetched head; the commit, or None when they changed nothing, and
        what it carries, and the files it wrote. The clone's files hold the commit
        afterwards (or the head, when nothing changed), pushed or not.

        The written files are committed from trees (tree_commit.py): this is the serial
        part of a fleet's turns, and it looks at the files written, not at every file of
        the clone. What that cannot commit (a symlink replaced, a branch not started yet)
        goes through the index, on a checkout of the head."""
        base = self._fetched_head
        self._lending = False
        if carried.mailboxes:
            message += "\n\n" + "".join(
                f"{_CARRIED_TRAILER}: {node}\n" for node in sorted(carried.mailboxes)
            )
        unlinked = _unlink_symlinked_folders(self.work_dir, self.status_path)
        try:
            written = write(self.status_root)
        except BaseException:
            self._holds = None  # half written: `git status` looks at the next attempt
            raise
        if not unlinked and base != _ABSENT and self._holds == base:
            self._lending = self._lender_holds(base)
            try:
                commit = self._from_trees(env, [*written, *carried.files], message)
            except Unfit as unfit:
                log.info("status: committed through the index: %s", unfit)
            except BaseException:
                self._holds = None
                raise
            else:
                if commit is not None:
                    self._holds = commit
                return commit, carried, written
        self._holds = None
        if self._checked_out != base or carried.files:
            # HEAD and the index are older than the files, or hold what was carried
            # (a commit through the index carries nothing: its mailbox, should it lose,
            # holds this host's reports alone): check the head out, write again on it.
            self._sync(env, fetch=False)
            _unlink_symlinked_folders(self.work_dir, self.status_path)
            written = write(self.status_root)
            carried = NOTHING
        committed = self._commit(env, message, bool(written))
        head = self._git(env, "rev-parse", "HEAD").strip() if committed else None
        self._holds = self._checked_out = head if committed else base
        return head, carried, written

    def _from_trees(self, env: dict[str, str], paths: list[Path], message: str) -> str | None:
        """The commit on the fetched head of these paths as the clone's files hold them,
        made from trees (tree_commit.py); None when they change nothing; Unfit when that
        cannot hold them."""
        return self._trees.commit(
            self._fetched_head,
            self.work_dir,
            paths,
            lambda tree, parent: self._commit_tree(env, tree, parent, message),
            lambda: batch_mktree(
                self.work_dir, {**self._env(), **self._into_lender()}, self._redact
            ),
        )

    def _commit_tree(self, env: dict[str, str], tree: str, parent: str, message: str) -> str:
        signing = ("-S",) if self.signing_key is not None else ()
        return self._git(
            {**env, **self._into_lender()},
            *self._signing(),
            *("commit-tree", tree, "-p", parent, *signing, "-m", message),
        ).strip()

    def _lender_holds(self, head: str) -> bool:
        """Whether the lender's store has `head` itself, and so everything it needs (its
        objects come from whole fetches of the branch and from commits made on what it
        holds). A head this clone fetched beyond what the source did is only here:
        a commit on it written there would leave the lender a commit whose parent it
        lacks, and its ref would tell the remote the lender has what it has not."""
        if self._lender is None:
            return False
        try:
            run_git_bytes(
                self.work_dir,
                ["cat-file", "-e", f"{head}^{{commit}}"],
                {**self._env(), "GIT_OBJECT_DIRECTORY": str(self._lender)},
                self._redact,
            )
        except GitFailed:
            return False
        return True

    def _into_lender(self) -> dict[str, str]:
        """Git's environment for writing the objects of a commit made from trees into the
        borrowed store (reading from both), when the head it is made on is there
        (_lender_holds): the source's next fetch then has them, and with the ref
        _tell_lender sets, tells the remote so, instead of fetching this host's own
        commit back."""
        if self._lender is None or not self._lending:
            return {}
        own = (self.work_dir / ".git" / "objects").resolve()
        return {
            "GIT_OBJECT_DIRECTORY": str(self._lender),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(own),
        }

    def _tell_lender(self, commit: str) -> None:
        """A ref in the lender's repository at the commit just pushed: its next fetch
        offers it to the remote as one it has. Only a saving: a failure (the commit was
        made through the index, in this clone's own store) changes nothing."""
        if self._lender is None:
            return
        # Only this publisher writes that ref: a lock left by a git it ran, killed, is
        # stale, and would keep the ref from moving for good.
        (self._lender.parent / f"{_PUSHED_REF}.lock").unlink(missing_ok=True)
        with contextlib.suppress(GitFailed):
            run_git_bytes(
                self.work_dir,
                ["--git-dir", str(self._lender.parent), "update-ref", _PUSHED_REF, commit],
                self._env(),
                self._redact,
            )

    def _commit(self, env: dict[str, str], message: str, written: bool) -> bool:
        """Commit the status tree as it now is, through the index; False when it holds
        nothing new. When the write says it changed nothing, the tree is asked, as the
        write may not know what an earlier attempt left."""
        if not written:
            changed = self._git(env, "status", "--porcelain", "--", self.status_path)
            if not changed.strip():
                return False
        self._git(env, "add", "-A", "--", self.status_path)
        try:
            self._git(env, *self._signing(), "commit", "--quiet", "--no-verify", "-m", message)
        except PublishError as failed:
            # A file written again with the text it had is no change: nothing staged.
            try:
                self._git(env, "diff", "--cached", "--quiet", "--", self.status_path)
            except PublishError:
                raise failed from None  # staged, yet not committed: the commit's error
            return False
        return True

    def _wait_for_turn(
        self, env: dict[str, str], fleet: Sequence[str], revision: str, cycle: float
    ) -> _Turn | None:
        """Sleep until this host's turn (`_turn`); None when it has none (then a
        random backoff). The turn goes on into the next attempt: the branch it fetches is
        read again (`_Turn.again`), and while hosts ahead in the order are still landing
        the host sleeps again instead of losing one more race."""
        look = self._turn(env, fleet, revision, fetch=True)
        if look is None:
            return None
        # The slot is bounded: one too short costs one more lost race, one too long
        # leaves the branch idle.
        turn = _Turn(min(cycle, _SLOT_SECONDS))
        self._sleep(turn.again(look) or _jitter(turn.slot))
        return turn

    def _turn(
        self, env: dict[str, str], fleet: Sequence[str], revision: str, *, fetch: bool = False
    ) -> tuple[int, str] | None:
        """This host's rank among the hosts of the fleet still to push for `revision`,
        and the history it read it from (the authors since the revision), from the
        branch as fetched (first fetched again with `fetch`); None when there is no
        fleet, its history cannot say, or this host has pushed already: then a random
        backoff. The hosts that have not yet pushed a status commit since `revision`
        (the branch's history says who has) are ranked by a hash of the revision and
        their name, the same order on every host and a different one for each revision
        (no host is always last); each waits its rank times one slot (`_Turn`), what
        the Git part of an attempt takes (fetch, commit, push). So the hosts land one
        after the other, each after about one lost race, in about as many rounds as
        there are hosts."""
        if not revision or self.node_name not in fleet:
            return None
        remote_ref = f"refs/remotes/origin/{self.branch}"
        refspec = f"+refs/heads/{self.branch}:{remote_ref}"
        if fetch and self._network(env, "fetch", "--quiet", "--no-tags", "origin", refspec):
            return None
        try:
            # Bounded: a rewritten branch the revision is no longer on lists no more.
            authors = self._git(
                env,
                "log",
                f"--max-count={4 * len(fleet) + 64}",
                f"--format=%an%x1f%(trailers:key={_CARRIED_TRAILER},valueonly,separator=%x1f)",
                f"{revision}..{remote_ref}",
            )
        except PublishError:
            return None
        landed: set[str] = set()
        for line in authors.splitlines():
            author, *carried = line.split("\x1f")
            if author.startswith(_AUTHOR_PREFIX):  # a host's commit, and those it carried
                landed.update([author.removeprefix(_AUTHOR_PREFIX), *carried])
        waiting = sorted(
            (node for node in set(fleet) if node not in landed),
            key=lambda node: _rank(revision, node),
        )
        if self.node_name not in waiting:
            return None  # a second publish for the revision: no turn of its own
        return waiting.index(self.node_name), authors

    # ----------------------------------------------------------------------- clone

    def _sync(self, env: dict[str, str], *, fetch: bool = True) -> None:
        """The clone at the remote's head (fetched first, or as last fetched), with
        nothing of an earlier attempt left; the index of the status tree
        (status_index.py) hears what that changed, or is no longer trusted when Git
        cannot say."""
        try:
            self._sync_clone(env, fetch=fetch)
        except BaseException:
            status_index.distrust(self.status_root)
            self._holds = None
            raise

    def _sync_clone(self, env: dict[str, str], *, fetch: bool = True) -> None:
        if fetch:
            self._fetch(env)
            if self._fetched_head == _ABSENT:
                return
        if self._follow():
            return
        self._check_out(env)

    def _follow(self) -> bool:
        """The files brought to the fetched head by what Git says differs from the commit
        they hold (tree_follow.py), while that is known and recent enough; False when
        a checkout must do it."""
        holds, head = self._holds, self._fetched_head
        if holds is None or time.monotonic() - self._looked_at > _TRUSTED_SECONDS:
            return False
        if holds == head:
            return True
        self._holds = None  # until it is done
        changed = follow(self._git_bytes, self.work_dir, [self.status_path], holds, head)
        if changed is None:
            return False
        self._holds = head
        status_index.changed(changed)
        return True

    def _fetch(self, env: dict[str, str]) -> None:
        """The remote's head into refs/remotes/origin (and `_fetched_head`); a status
        branch of its own not started yet leaves an empty branch checked out."""
        lender = _store_identity(self.borrowed_objects) if self.borrowed_objects else None
        self._leave_a_changed_lender(lender)
        if not (self.work_dir / ".git").is_dir():
            status_index.distrust(self.status_root)
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self._git(env, "init", "--quiet")
            self._git(env, "remote", "add", "origin", self.url)
        else:
            _remove_stale_locks(self.work_dir / ".git")
            if not self._remote_set:
                # A reloaded configuration may point the same work dir at another remote
                # (with a publisher of its own: once per publisher is enough).
                self._git(env, "remote", "set-url", "origin", self.url)
        if not self._remote_set:
            self._check_out_status_only(env)
        self._remote_set = True
        self._borrow(lender)
        failure = self._network(
            env,
            "fetch",
            "--quiet",
            "--no-tags",
            *(["--prune"] if self._fetch_mailboxes else []),
            "origin",
            f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}",
            *([f"+{PENDING_ON_REMOTE}*:{PENDING_FETCHED}*"] if self._fetch_mailboxes else []),
        )
        if failure is not None:
            if not any(words in failure for words in _NO_BRANCH):
                raise self._failed("fetch", failure)
            if not self.create_missing_branch:
                raise PublishError(
                    f"{redact_url(self.url)} ({self.branch}): the branch is not on the remote;"
                    " nothing is pushed until it is back (the hosts never recreate the branch"
                    " they follow)"
                )
            # A status branch of its own that nobody has pushed yet: start it empty.
            status_index.distrust(self.status_root)
            self._fetched_head = _ABSENT
            self._holds = None
            self._git(env, "update-ref", "-d", f"refs/heads/{_NEW_BRANCH}")
            self._git(env, "symbolic-ref", "HEAD", f"refs/heads/{_NEW_BRANCH}")
            self._git(env, "rm", "-r", "-q", "--cached", "--ignore-unmatch", ".")
            self._git(env, "clean", "-q", "-fdx")
            self._checked_out = _ABSENT
            return
        fetched = self._git(env, "rev-parse", f"refs/remotes/origin/{self.branch}")
        self._fetched_head = fetched.strip()

    def _borrow(self, lender: str | None) -> None:
        """Borrow the objects of the source's clone: every object of the branch's head is
        there already (the source fetched it in this pass), so the fetch only reads the
        remote's refs. The clone notes whose store it borrows (`vmr-borrowed`): objects
        fetched since are not copied, so a store made anew is never borrowed from
        unnoticed (_leave_a_changed_lender). The commits this clone makes from trees go
        into that store too (_into_lender). lender: the store's id (_store_identity),
        None when nothing is borrowed."""
        self._lender = None
        if self.borrowed_objects is None or lender is None:
            return
        git_dir = self.work_dir / ".git"
        self._lender = self.borrowed_objects.resolve() if lender else None
        if _read(git_dir / _BORROWED) == lender:
            return
        alternates = git_dir / "objects" / "info" / "alternates"
        alternates.parent.mkdir(parents=True, exist_ok=True)
        alternates.write_text(
            f"{self.borrowed_objects.resolve()}\n" if lender else "", encoding="utf-8"
        )
        (git_dir / _BORROWED).write_text(lender, encoding="utf-8")

    def _leave_a_changed_lender(self, lender: str | None) -> None:
        """A clone that borrowed from a store since removed or made anew (the source
        cloned again: another URL, a wiped cache) may lack objects its history needs:
        it is made anew, as a cache is. One that borrowed nothing yet holds all of its
        own."""
        if lender is None:
            return
        had = _read(self.work_dir / ".git" / _BORROWED)
        if not had or had == lender:
            return
        log.info("status: the source's clone was made anew; the status clone is too")
        shutil.rmtree(self.work_dir, ignore_errors=True)
        status_index.distrust(self.status_root)
        self._holds = self._checked_out = None
        self._remote_set = False
        self._lender = None

    def _check_out(self, env: dict[str, str]) -> None:
        """The clone at the fetched head, its files, HEAD and index, with nothing of an
        earlier attempt left, as `git status` finds it."""
        self._holds = None
        clone = self._clone_state(env)
        if not clone.holds(self.branch, self._fetched_head):
            # -f: whatever an earlier attempt left in the tree and the index is discarded.
            self._git(env, "checkout", "--quiet", "-f", "-B", self.branch, self._fetched_head)
            if clone.untracked:
                # Only files Git does not track outlive a checkout -f: none, no clean (a
                # process less in each attempt, the serial part of a fleet's turns).
                self._git(env, "clean", "-q", "-fdx")
            self._tell_index(env, clone, self._fetched_head)
        self._holds = self._checked_out = self._fetched_head
        self._looked_at = time.monotonic()

    def _check_out_status_only(self, env: dict[str, str]) -> None:
        """The clone's tree holds the status folder (and the files of the folders above
        it), not the manifests: nothing here reads them, and a push that changes every
        VM would otherwise have each host write every manifest once more, and look at
        them in every attempt. A Git too old for it checks out everything, as before."""
        with contextlib.suppress(PublishError):
            self._git(env, "sparse-checkout", "set", "--cone", "--", self.status_path)

    def _clone_state(self, env: dict[str, str]) -> _CloneState:
        """The clone's branch, commit and the paths that differ from that commit
        (changed, staged, added, left over; ignored files too, as clean -fdx removes
        them), from one `git status`; what cannot be read is None (detached, no commit
        yet: a new clone)."""
        try:
            changes = self._git(
                env,
                "status",
                "--porcelain=v2",
                "--branch",
                "-z",
                "--no-renames",
                "--untracked-files=all",
                "--ignored=matching",
            )
        except PublishError:
            return _CloneState(None, None, None)
        return _parse_status(changes)

    def _tell_index(self, env: dict[str, str], clone: _CloneState, head: str) -> None:
        """The paths the checkout and clean changed: those that differ between the
        commit the clone held and the new one, and those that differed from that commit
        (what an earlier attempt left). Git says both exactly; when it cannot, or says a
        great many, the index is listed anew instead."""
        if clone.head is None or clone.dirty is None:
            status_index.distrust(self.status_root)
            return
        paths = list(clone.dirty)
        if clone.head != head:
            try:
                between = self._git(
                    env,
                    "diff-tree",
                    "-r",
                    "-z",
                    "--name-only",
                    "--no-renames",
                    clone.head,
                    head,
                    "--",
                    self.status_path,
                )
            except PublishError:
                status_index.distrust(self.status_root)
                return
            paths.extend(path for path in between.split("\0") if path)
        if len(paths) > _MOST_PATHS_TOLD or any("\ufffd" in path for path in paths):
            # Listing the tree is cheaper than that many updates; a name that did not
            # decode cannot be found again.
            status_index.distrust(self.status_root)
            return
        status_index.changed(self.work_dir / path.rstrip("/") for path in paths)

    def _signing(self) -> tuple[str, ...]:
        """git options that sign the commit with the host's key (ssh-keygen -Y sign), or
        that keep it unsigned whatever a global git configuration says."""
        if self.signing_key is None:
            return ("-c", "commit.gpgsign=false")
        return (
            *("-c", "gpg.format=ssh"),
            *("-c", f"user.signingkey={self.signing_key}"),
            *("-c", "commit.gpgsign=true"),
        )

    def _git(self, env: dict[str, str], *args: str, timeout: float | None = None) -> str:
        try:
            return run_git(self.work_dir, list(args), env, self._redact, timeout)
        except GitFailed as error:
            raise PublishError(f"{redact_url(self.url)} ({self.branch}): {error}") from None

    def _git_bytes(self, args: list[str], stdin: bytes | None) -> bytes:
        """A local git command on bytes (names, object contents): no credentials. The
        files hashed go where the commit's other objects go (_into_lender)."""
        env = self._env()
        if args[0] == "hash-object":
            env.update(self._into_lender())
        elif args[0] == "diff-tree":
            # Two trees, no index: git 2.39 would still read the index (30,000 entries).
            env["GIT_INDEX_FILE"] = str(self.work_dir / ".git" / "vmr-no-index")
        try:
            return run_git_bytes(self.work_dir, args, env, self._redact, stdin)
        except GitFailed as error:
            raise PublishError(f"{redact_url(self.url)} ({self.branch}): {error}") from None

    def _network(self, env: dict[str, str], *args: str) -> str | None:
        """A fetch or push: None when it worked, else git's whole (redacted) stderr, which
        tells a lost race or a missing branch apart from a real failure."""
        try:
            Git(str(self.work_dir)).execute(
                ["git", *args], env=env, kill_after_timeout=NETWORK_TIMEOUT_SECONDS
            )
        except GitCommandError as error:
            stderr = error.stderr if isinstance(error.stderr, str) else str(error.stderr or "")
            return self._redact(stderr) or f"git exited with status {error.status}"
        return None

    def _failed(self, what: str, stderr: str) -> PublishError:
        reason = _reason(stderr)
        return PublishError(f"cannot {what} {redact_url(self.url)} ({self.branch}): {reason}")


def _parse_status(changes: str) -> _CloneState:
    """`git status --porcelain=v2 --branch -z`: the `# branch.oid` and `# branch.head`
    headers, then one record per path that differs (`1 XY sub mH mI mW hH hI PATH`,
    `u ...` with three more fields for a conflict, `? PATH` untracked, `! PATH`
    ignored). A record this does not know (a rename) makes the paths unknown."""
    branch: str | None = None
    head: str | None = None
    dirty: list[str] | None = []
    untracked = False
    for record in changes.split("\0"):
        if record.startswith("# branch.head "):
            name = record.removeprefix("# branch.head ")
            branch = None if name == "(detached)" else f"refs/heads/{name}"
        elif record.startswith("# branch.oid "):
            oid = record.removeprefix("# branch.oid ")
            head = None if oid == "(initial)" else oid
        elif record.startswith("#") or not record:
            continue
        elif record.startswith(("? ", "! ")):
            untracked = True
            if dirty is not None:
                dirty.append(record[2:])
        elif record.startswith(("1 ", "u ")) and dirty is not None:
            fields = 8 if record.startswith("1 ") else 10
            parts = record.split(" ", fields)
            if len(parts) <= fields:
                dirty = None
            else:
                dirty.append(parts[fields])
        else:
            dirty = None
    if head is None:
        return _CloneState(branch, None, None)
    return _CloneState(branch, head, dirty, untracked or dirty is None)


def _unlink_symlinked_folders(work_dir: Path, status_path: str) -> bool:
    """A status folder (or a folder above it) committed as a symlink is removed, so the
    reports replace it instead of being read and written wherever it leads; True when
    one was."""
    folder = work_dir
    for part in Path(status_path).parts:
        folder = folder / part
        if folder.is_symlink():
            folder.unlink()
            status_index.distrust(work_dir / status_path)
            return True
    return False


_BORROWED = "vmr-borrowed"
_STORE_ID = "vmr-store-id"
# In the lender's repository: the last status commit pushed from trees.
_PUSHED_REF = "refs/vmr/status-pushed"


def _store_identity(objects: Path) -> str:
    """Which object store is at `objects`: an id kept beside it, made by the first clone
    that borrows from it. A store made anew at the same path (a new clone) has none
    until then, so it is never taken for the one borrowed before; "" when there is no
    store."""
    if not objects.is_dir():
        return ""
    kept = objects.parent / _STORE_ID
    found = _read(kept)
    if found:
        return found.strip()
    made = uuid.uuid4().hex
    kept.write_text(made, encoding="utf-8")
    return made


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _rank(revision: str, node: str) -> bytes:
    """A host's place among the fleet's hosts for a revision (turns, mailbox waits): the
    same on every host, a different order for each revision, so no host is always last."""
    return hashlib.sha256(f"{revision}/{node}".encode()).digest()


def _jitter(slot: float) -> float:
    """A turn's random part: two hosts that read the branch at different heads may
    compute the same rank."""
    return random.uniform(0.0, max(0.05, slot / 4))


def _backoff_seconds(attempt: int) -> float:
    """0.1 s doubling per lost race, capped at 3 s, spread by a random factor."""
    return min(3.0, 0.1 * 2.0 ** (attempt - 1)) * (0.5 + random.random())


def _remove_stale_locks(git_dir: Path) -> None:
    """A git killed mid-command (SIGKILL of the daemon, a network timeout) leaves its
    lock files behind, and every later command would refuse to run. The work dir is
    this publisher's alone and no git of ours runs now, so any lock is stale."""
    for lock in (git_dir / "index.lock", git_dir / "HEAD.lock", git_dir / "shallow.lock"):
        lock.unlink(missing_ok=True)
    refs = git_dir / "refs"
    if refs.is_dir():
        for lock in refs.rglob("*.lock"):
            lock.unlink(missing_ok=True)


def _reason(stderr: str) -> str:
    """One line out of git's stderr: the ref git says was refused (`! [remote rejected]
    HEAD -> main (pre-receive hook declined)`) or the fatal error, plus what the server
    itself printed, which is often the only useful part (a protected branch, a quota)."""
    lines = [
        line.strip().removeprefix("stderr: ").strip("'").strip() for line in stderr.splitlines()
    ]
    refused = next((line for line in lines if line.startswith("! [")), "")
    fatal = next((line for line in lines if line.startswith(("fatal", "error", "ssh"))), "")
    reason = refused or fatal or next((line for line in lines if line), "unknown error")
    said = [line[len("remote:") :].strip() for line in lines if line.startswith("remote:")]
    said = [line for line in said if line][:3]
    return f"{reason} (remote: {'; '.join(said)})" if said else reason
