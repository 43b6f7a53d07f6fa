"""A plain directory (or a non-bare work tree) is read as it is on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.source import ManifestCache, SourceError, open_source
from reconciler.source.local import LocalDirectorySource
from tests.gitrepos import git
from tests.hosts import vm_yaml
from tests.source.conftest import VM_CLASS, repository


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    (root / "classes").mkdir(parents=True)
    (root / "vms").mkdir()
    (root / "classes" / "generic.yaml").write_text(VM_CLASS)
    (root / "vms" / "web.yaml").write_text(vm_yaml("web"))
    return root


def open_local(directory: Path, tmp_path: Path, **settings: object) -> LocalDirectorySource:
    source = open_source(repository(str(directory), **settings), tmp_path / "cache", "status")
    assert isinstance(source, LocalDirectorySource)
    return source


def test_plain_directory_is_watched_and_publishes_nothing(directory: Path, tmp_path: Path) -> None:
    source = open_local(directory, tmp_path)

    revision = source.update()

    assert not source.publishes_status
    assert source.local_path == directory
    assert revision.root == revision.repo_root == directory
    assert set(revision.blobs) == {"classes/generic.yaml", "vms/web.yaml"}


def test_editing_a_file_changes_the_key(directory: Path, tmp_path: Path) -> None:
    source = open_local(directory, tmp_path)
    first = source.update()

    web = directory / "vms" / "web.yaml"
    web.write_text(vm_yaml("web", cores=2))
    stat = web.stat()
    os.utime(web, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = source.update()

    assert second.manifests_key != first.manifests_key
    assert second.changed == frozenset({"vms/web.yaml"})


def test_status_reports_do_not_change_the_key(directory: Path, tmp_path: Path) -> None:
    source = open_local(directory, tmp_path)
    first = source.update()

    (directory / "status").mkdir()
    (directory / "status" / "README.md").write_text("# status\n")
    (directory / "status" / "web.yaml").write_text("status: {}\n")

    assert source.update().manifests_key == first.manifests_key


def test_work_tree_is_read_as_a_directory_not_as_git(directory: Path, tmp_path: Path) -> None:
    git(directory, "init", "--quiet")

    source = open_local(directory, tmp_path)

    assert isinstance(source, LocalDirectorySource)


def test_missing_sub_path_raises(directory: Path, tmp_path: Path) -> None:
    source = open_local(directory, tmp_path, sub_path="absent")

    with pytest.raises(SourceError, match="absent"):
        source.update()


def test_a_file_being_written_is_read_once_it_is_whole(directory: Path, tmp_path: Path) -> None:
    """A writer that truncates first and writes later must not be caught in between: read
    then, the VM would be gone from a complete revision and deleted with its disks."""
    import threading
    import time

    source = open_local(directory, tmp_path)
    source.update()
    web = directory / "vms" / "web.yaml"
    text = vm_yaml("web", cores=2)
    web.write_text("")  # the writer has truncated the file ...

    def finish() -> None:
        time.sleep(0.3)
        web.write_text(text)  # ... and writes it a moment later

    writer = threading.Thread(target=finish)
    writer.start()
    revision = source.update()
    writer.join()

    assert (revision.root / "vms" / "web.yaml").read_text() == text
    size = revision.blobs["vms/web.yaml"].partition(":")[0]
    assert int(size) == len(text.encode())


def test_a_file_truncated_without_a_new_mtime_is_read_once_it_is_whole(
    directory: Path, tmp_path: Path
) -> None:
    """Seen on ext4: a file emptied by a writer kept its old modification time, so it
    looked long settled while empty. The change itself (the size) is what is waited on."""
    import threading
    import time

    source = open_local(directory, tmp_path)
    web = directory / "vms" / "web.yaml"
    old = web.stat()
    source.update()
    text = vm_yaml("web", cores=2)
    web.write_text("")
    os.utime(web, ns=(old.st_atime_ns, old.st_mtime_ns))

    def finish() -> None:
        time.sleep(0.3)
        web.write_text(text)
        os.utime(web, ns=(old.st_atime_ns, old.st_mtime_ns))

    writer = threading.Thread(target=finish)
    writer.start()
    revision = source.update()
    writer.join()

    assert revision.blobs["vms/web.yaml"] == f"{len(text.encode())}:{old.st_mtime_ns}"


def test_a_file_cut_short_after_its_stamp_holds_the_revision_back(
    directory: Path, tmp_path: Path
) -> None:
    """The stamps are taken, then an editor truncates the file before rewriting it: read
    now, the revision would lack the VM and delete it. It is an unreadable file instead."""
    source = open_local(directory, tmp_path)
    cache = ManifestCache()
    revision = source.update()
    os.utime(directory / "vms" / "web.yaml", ns=(1, 1))  # an old stamp: no settling wait
    revision = source.update()

    (directory / "vms" / "web.yaml").write_text("")
    loaded = cache.load(revision)

    assert [obj.model.name for obj in loaded.objects] == ["generic"]
    assert [(f.path, f.object) for f in loaded.findings] == [("vms/web.yaml", "")]
    assert "changed while it was being read" in loaded.findings[0].message


def test_a_file_cut_short_is_read_again_once_whole(directory: Path, tmp_path: Path) -> None:
    source = open_local(directory, tmp_path)
    cache = ManifestCache()
    os.utime(directory / "vms" / "web.yaml", ns=(1, 1))
    revision = source.update()
    (directory / "vms" / "web.yaml").write_text("")
    cache.load(revision)

    (directory / "vms" / "web.yaml").write_text(vm_yaml("web"))
    os.utime(directory / "vms" / "web.yaml", ns=(2, 2))
    loaded = cache.load(source.update())

    assert "web" in {obj.model.name for obj in loaded.objects}
    assert not loaded.findings
