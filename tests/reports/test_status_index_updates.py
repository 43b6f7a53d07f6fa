"""An index kept current by the changes it is told of (status_index.TreeIndex.update) is
the index a fresh listing of the tree gives: whatever a Git checkout or a writer does to
files, namespace folders and symlinks, every reader sees the same files either way."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.reports import status_index
from reconciler.reports.scan import PerReport
from reconciler.reports.status_index import TreeIndex

KINDS = ("virtualmachines", "nodes", "notes")  # a nested kind, a flat one, no kind at all
NAMES = ("a.yaml", "b.yaml", "c.txt")
FOLDERS = ("default", "other")

# One change: (what, kind, folder, name).
change = st.tuples(
    st.sampled_from(("write", "remove", "link-file", "link-folder", "remove-folder", "deep")),
    st.sampled_from(KINDS),
    st.sampled_from(FOLDERS),
    st.sampled_from(NAMES),
)


def apply(root: Path, outside: Path, what: str, kind: str, folder: str, name: str) -> list[Path]:
    """Make the change; returns the paths a writer or `git diff-tree` would name."""
    return [*_apply(root, outside, what, kind, folder, name)]


def _apply(root: Path, outside: Path, what: str, kind: str, folder: str, name: str) -> list[Path]:
    base = root / kind / folder if kind != "nodes" else root / kind
    target = base / name
    if what == "write":
        told = [target]
        for above in (base.parent, base):
            if above != root and above.is_symlink():
                above.unlink()  # as write_if_changed replaces a symlinked folder, and says so
                told.append(above)
        base.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        if not target.is_dir():
            target.write_text(f"{what} {name}\n", encoding="utf-8")
        return told
    if what == "remove":
        if target.is_symlink() or target.is_file():
            target.unlink()
        return [target]
    if what == "link-file":
        if base.is_dir() and not base.is_symlink() and not target.exists():
            os.symlink(outside / "host.yaml", target)
        return [target]
    if what == "link-folder":
        if base.is_symlink():
            base.unlink()
        elif base.is_dir():
            shutil.rmtree(base)
        base.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(outside, base)
        return [base]
    if what == "remove-folder":
        if base.is_symlink():
            base.unlink()
        elif base.is_dir():
            shutil.rmtree(base)
        return [base]
    deep = base / "deeper" / name  # below where reports are, as os.walk still finds
    if base.is_dir() and not base.is_symlink():
        deep.parent.mkdir(exist_ok=True)
        deep.write_text("deep\n", encoding="utf-8")
    return [deep]


def seen(index: TreeIndex, root: Path) -> tuple[object, ...]:
    listings = tuple(
        tuple(index.listing(os.path.join(root, kind), nested))
        for kind in KINDS
        for nested in (True, False)
    )
    return (listings, sorted(index.walked()))


@settings(max_examples=60, deadline=None)
@given(st.lists(change, min_size=1, max_size=12))
def test_an_index_told_each_change_lists_what_a_fresh_listing_does(
    changes: list[tuple[str, str, str, str]],
) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "status"
        outside = Path(temporary) / "outside"
        (outside / "default").mkdir(parents=True)
        (outside / "host.yaml").write_text("host\n", encoding="utf-8")
        (outside / "default" / "host.yaml").write_text("host\n", encoding="utf-8")
        root.mkdir()
        (root / "virtualmachines" / "default").mkdir(parents=True)
        (root / "virtualmachines" / "default" / "a.yaml").write_text("a\n", encoding="utf-8")
        kept = TreeIndex(str(root))
        kept.scan()
        for what, kind, folder, name in changes:
            kept.update(str(path) for path in apply(root, outside, what, kind, folder, name))
        fresh = TreeIndex(str(root))
        fresh.scan()
        assert seen(kept, root) == seen(fresh, root)


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8") if not path.is_symlink() else None
    except OSError:
        return None


@settings(max_examples=40, deadline=None)
@given(st.lists(change, min_size=1, max_size=8))
def test_a_reader_following_the_told_changes_sees_what_a_fresh_reader_does(
    changes: list[tuple[str, str, str, str]],
) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "status"
        outside = Path(temporary) / "outside"
        (outside / "default").mkdir(parents=True)
        (outside / "host.yaml").write_text("host\n", encoding="utf-8")
        (root / "virtualmachines" / "default").mkdir(parents=True)
        (root / "virtualmachines" / "default" / "a.yaml").write_text("a\n", encoding="utf-8")
        followed = PerReport(_text)
        with status_index.reading():
            followed.over(root / "virtualmachines")
        for what, kind, folder, name in changes:
            status_index.changed(apply(root, outside, what, kind, folder, name))
            with status_index.reading(kept=[root]):
                seen = followed.over(root / "virtualmachines")
            assert seen == PerReport(_text).over(root / "virtualmachines")
