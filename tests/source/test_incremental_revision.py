"""A revision learnt from the one before and what changed equals one read whole.

GitSource patches the last tree with `git diff-tree` (source/tree_map.py), and
ManifestCache patches the last load with the changed files; both over random
sequences of commits (files written, deleted, renamed, turned into folders, symlinks,
reports, READMEs, dot-files) must give exactly what a fresh clone and a fresh load give.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.loader import LoadResult
from reconciler.rules.inventory import Inventory
from reconciler.source import ManifestCache, Revision, open_source
from reconciler.source.git_source import GitSource
from reconciler.source.revision import changed_manifests
from tests.gitrepos import Remote, git, run_git
from tests.hosts import vm_yaml
from tests.rules.test_recheck import indexes
from tests.source.conftest import VM_CLASS, repository

PATHS = [
    "vms/a.yaml",
    "vms/b.yaml",
    "vms/sub/c.yaml",
    "vms/sub",  # a file where a folder was, and back
    "vms/x.yml",
    "vms/.hidden.yaml",
    "d.yaml",
    "vms2/e.yaml",
    ".dot/f.yaml",
    "status/vms/default/a.yaml",
    "README.md",
]
TEXTS = [
    VM_CLASS,
    vm_yaml("web"),
    vm_yaml("web", cores=2),
    vm_yaml("db"),
    "kind: VirtualMachine\nmetadata: {name: broken}\nspec: [\n",
    "kind: Nonsense\n",
    "# nothing\n",
]
LINK_TARGETS = ["../d.yaml", "sub", "/etc", "a.yaml"]

OPERATION = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(PATHS), st.sampled_from(TEXTS)),
    st.tuples(st.just("delete"), st.sampled_from(PATHS), st.just("")),
    st.tuples(st.just("rename"), st.sampled_from(PATHS), st.sampled_from(PATHS)),
    st.tuples(st.just("link"), st.sampled_from(PATHS), st.sampled_from(LINK_TARGETS)),
)
# Most sequences without a symlink: those take the incremental paths all along.
COMMITS = st.lists(
    st.lists(OPERATION.filter(lambda op: op[0] != "link"), min_size=1, max_size=4)
    | st.lists(OPERATION, min_size=1, max_size=3),
    min_size=1,
    max_size=5,
)
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _clear(root: Path, relative: str) -> None:
    """Room for a file at `relative`: no file where a folder on its way is, no folder
    where it is."""
    parts = relative.split("/")
    for end in range(1, len(parts)):
        on_the_way = root.joinpath(*parts[:end])
        if on_the_way.is_symlink() or on_the_way.is_file():
            on_the_way.unlink()
    target = root / relative
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)


def _apply(root: Path, operation: tuple[str, str, str]) -> None:
    kind, path, argument = operation
    target = root / path
    if kind == "write":
        _clear(root, path)
        target.write_text(argument, encoding="utf-8")
    elif kind == "delete":
        if target.is_symlink() or target.is_file():
            target.unlink()
    elif kind == "rename":
        if (target.is_file() or target.is_symlink()) and argument != path:
            text = target.read_bytes() if not target.is_symlink() else None
            link = os.readlink(target) if target.is_symlink() else None
            target.unlink()
            _clear(root, argument)
            if link is not None:
                (root / argument).symlink_to(link)
            elif text is not None:
                (root / argument).write_bytes(text)
    elif kind == "link":
        _clear(root, path)
        target.symlink_to(argument)


def _commit(remote: Remote, operations: list[tuple[str, str, str]]) -> None:
    for operation in operations:
        _apply(remote.author, operation)
    git(remote.author, "add", "--all")
    git(remote.author, "commit", "--quiet", "--allow-empty", "-m", "change")
    git(remote.author, "push", "--quiet", "origin", f"HEAD:{remote.branch}")


def _fresh(remote: Remote, sub_path: str) -> tuple[Revision, tuple[object, ...]]:
    """The same head as a new source lists it and a new cache loads it, whole."""
    with tempfile.TemporaryDirectory() as cache:
        source = open_source(repository(remote.url, sub_path=sub_path), Path(cache), "status")
        assert isinstance(source, GitSource)
        revision = source.update()
        loaded = _whole(ManifestCache().load(revision))
        # Only what depends on the tree: the clone itself goes with the directory.
        return Revision(
            head=revision.head,
            sha=revision.sha,
            root=Path(),
            repo_root=Path(),
            manifests_key=revision.manifests_key,
            changed=None,
            blobs=dict(revision.blobs),
            tree_listing=revision.tree_listing,
        ), loaded


def _work_tree_files(root: Path, sparse: bool) -> dict[str, object]:
    found: dict[str, object] = {}
    for folder, folders, names in os.walk(root):
        folders[:] = [name for name in folders if name != ".git"]
        for name in names + [f for f in folders if Path(folder, f).is_symlink()]:
            path = Path(folder, name)
            relative = path.relative_to(root).as_posix()
            if sparse and relative.startswith("status/"):
                continue
            link = path.is_symlink()
            found[relative] = ("link", os.readlink(path)) if link else path.read_bytes()
    return found


def _head_files(remote: Remote, head: str, sparse: bool) -> dict[str, object]:
    listed = git(remote.bare, "ls-tree", "-r", "-z", head).split("\0")
    found: dict[str, object] = {}
    for record in filter(None, listed):
        meta, _, path = record.partition("\t")
        mode, _kind, blob = meta.split(" ")
        if sparse and path.startswith("status/"):
            continue
        content = run_git(remote.bare, "cat-file", "blob", blob).stdout.encode()
        found[path] = ("link", content.decode()) if mode == "120000" else content
    return found


def _whole(result: LoadResult) -> tuple[object, ...]:
    return (result.objects, result.findings, result.broken, result.files)


@SETTINGS
@given(commits=COMMITS, sub_path=st.sampled_from(["", "vms"]), sparse=st.booleans())
def test_patched_revisions_and_loads_equal_fresh_ones(
    commits: list[list[tuple[str, str, str]]], sub_path: str, sparse: bool
) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        remote = Remote.create(work / "remote.git", author=work / "author")
        # keep.txt: the sub-path "vms" never goes away (that is served stale instead).
        remote.commit({"vms/a.yaml": vm_yaml("web"), "vms/keep.txt": "", "d.yaml": VM_CLASS})
        source = open_source(repository(remote.url, sub_path=sub_path), work / "cache", "status")
        # sparse: the reports left out of the work tree, as the daemon asks when it
        # reads them from the publisher's clone (folders come and go beside them).
        source.leave_out_status(sparse)
        cache = ManifestCache()
        previous = source.update()
        cache.load(previous)
        for operations in commits:
            _commit(remote, operations)
            revision = source.update()
            loaded = cache.load(revision)

            fresh, fresh_load = _fresh(remote, sub_path)
            assert (revision.head, revision.sha) == (fresh.head, fresh.sha)
            assert dict(revision.blobs) == fresh.blobs
            assert revision.manifests_key == fresh.manifests_key
            assert revision.tree_listing == fresh.tree_listing
            status = "status" if not sub_path else None
            assert revision.changed == changed_manifests(previous.blobs, revision.blobs, status)
            assert revision.base == previous.head

            assert _whole(loaded) == _whole(ManifestCache().load(revision)) == fresh_load
            # The work tree holds the head's files, whether checked out or followed by
            # what changed (source/tree_follow.py).
            assert _work_tree_files(revision.repo_root, sparse) == _head_files(
                remote, revision.head, sparse
            )
            # The pass's inventory, made from the last one, is the one made whole.
            assert indexes(Inventory.of(loaded)) == indexes(Inventory(loaded))
            assert (revision.repo_root / "status").exists() == (
                not sparse and any(path.startswith("status/") for path in remote.files())
            )
            if revision.tree_listing and previous.tree_listing:
                assert revision.changed is not None
                # Patched: only the changed files still there were read.
                assert cache.parsed_last == len(revision.changed & revision.blobs.keys())
            # The same revision again (a pass for libvirt's events): the same load.
            again = cache.load(revision)
            assert _whole(again) == _whole(loaded)
            assert indexes(Inventory.of(again)) == indexes(Inventory(again))
            if revision.tree_listing:
                assert cache.parsed_last == 0
            previous = revision
