"""ManifestCache parses only the files whose blob changed, and loads what a full load loads."""

from __future__ import annotations

from pathlib import Path

from reconciler.loader import LoadResult, load_directory
from reconciler.rules import inventory as inventory_module
from reconciler.rules.inventory import Inventory
from reconciler.source import ManifestCache, open_source
from tests.gitrepos import Remote
from tests.hosts import vm_yaml
from tests.rules.test_recheck import indexes
from tests.source.conftest import VM_CLASS, repository

MANIFESTS = {
    "classes/generic.yaml": VM_CLASS,
    "vms/web.yaml": vm_yaml("web"),
    "vms/db.yaml": vm_yaml("db"),
    "vms/broken.yaml": "kind: VirtualMachine\nmetadata: {name: broken}\nspec: [\n",
}


def summary(result: LoadResult) -> tuple[object, ...]:
    return (
        [loaded.id for loaded in result.objects],
        result.findings,
        sorted(map(str, result.broken)),
        result.files,
    )


def test_first_load_parses_every_file_and_matches_a_full_load(
    remote: Remote, cache_dir: Path
) -> None:
    remote.commit(MANIFESTS)
    revision = open_source(repository(remote.url), cache_dir, "status").update()
    cache = ManifestCache()

    loaded = cache.load(revision)

    assert cache.parsed_last == len(MANIFESTS)
    # A class, and two VMs with their disks; the broken file has its finding.
    assert len(loaded.objects) == 5 and loaded.findings
    assert summary(loaded) == summary(load_directory(revision.root))


def test_one_changed_file_is_the_only_one_parsed_again(remote: Remote, cache_dir: Path) -> None:
    remote.commit(MANIFESTS)
    source = open_source(repository(remote.url), cache_dir, "status")
    cache = ManifestCache()
    cache.load(source.update())

    remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)})
    revision = source.update()
    loaded = cache.load(revision)

    assert cache.parsed_last == 1
    assert summary(loaded) == summary(load_directory(revision.root))
    web = next(o for o in loaded.objects if o.id.name == "web")
    assert web.model.spec.cpu.cores == 2  # type: ignore[attr-defined]


def test_edits_one_after_another_load_what_a_full_load_does(
    remote: Remote, cache_dir: Path
) -> None:
    # given a loaded revision, patched once by a push (a daemon's steady state)
    remote.commit(MANIFESTS)
    source = open_source(repository(remote.url), cache_dir, "status")
    cache = ManifestCache()
    cache.load(source.update())
    remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)})
    cache.load(source.update())
    # when further pushes edit VMs in place, then break one and add another
    for manifests in (
        {"vms/web.yaml": vm_yaml("web", cores=3), "vms/db.yaml": vm_yaml("db", cores=2)},
        {"vms/db.yaml": vm_yaml("db", cores=4)},
        {"vms/web.yaml": MANIFESTS["vms/broken.yaml"]},
        {"vms/web.yaml": vm_yaml("web", cores=5), "vms/new.yaml": vm_yaml("new")},
        {"vms/new.yaml": vm_yaml("new", cores=2)},
    ):
        remote.commit(manifests)
        revision = source.update()
        loaded = cache.load(revision)
        # then each load is the whole revision as it is, every object as edited
        assert cache.parsed_last == len(manifests)
        assert summary(loaded) == summary(load_directory(revision.root))
        assert loaded.objects == load_directory(revision.root).objects
        # and the pass's inventory, made from the last one where the load says it
        # replaced objects, is the one made whole, knowing what replaced what
        before = inventory_module._LAST_MADE[0][4] if inventory_module._LAST_MADE else None
        made, whole = Inventory.of(loaded), Inventory(loaded)
        assert indexes(made) == indexes(whole)
        if before is not None:
            assert made.replaced_since(before) == whole.replaced_since(before)
        again = cache.load(revision)  # the same revision again
        assert again.objects == loaded.objects
        assert indexes(Inventory.of(again)) == indexes(Inventory(again))


def test_status_only_commit_parses_nothing(remote: Remote, cache_dir: Path) -> None:
    remote.commit(MANIFESTS)
    source = open_source(repository(remote.url), cache_dir, "status")
    cache = ManifestCache()
    first = cache.load(source.update())

    remote.commit({"status/virtualmachines/default/web.yaml": "status: {}\n"})
    loaded = cache.load(source.update())

    assert cache.parsed_last == 0
    assert summary(loaded) == summary(first)


def test_added_and_deleted_files_follow_the_revision(remote: Remote, cache_dir: Path) -> None:
    remote.commit(MANIFESTS)
    source = open_source(repository(remote.url), cache_dir, "status")
    cache = ManifestCache()
    cache.load(source.update())

    remote.commit({"vms/db.yaml": None, "vms/app.yaml": vm_yaml("app")})
    revision = source.update()
    loaded = cache.load(revision)

    assert cache.parsed_last == 1
    assert summary(loaded) == summary(load_directory(revision.root))
    assert "vms/db.yaml" not in loaded.files


def test_local_directory_edit_is_parsed_again(tmp_path: Path) -> None:
    directory = tmp_path / "fleet"
    (directory / "vms").mkdir(parents=True)
    (directory / "vms" / "web.yaml").write_text(vm_yaml("web"))
    (directory / "vms" / "db.yaml").write_text(vm_yaml("db"))
    source = open_source(repository(str(directory)), tmp_path / "cache", "status")
    cache = ManifestCache()
    cache.load(source.update())

    (directory / "vms" / "web.yaml").write_text(vm_yaml("web", cores=4))
    revision = source.update()
    loaded = cache.load(revision)

    assert cache.parsed_last == 1
    assert summary(loaded) == summary(load_directory(revision.root))


def test_a_file_too_deep_to_load_loses_only_itself(remote: Remote, cache_dir: Path) -> None:
    # Given a revision with a 10,000-deep list beside valid manifests (issue 12, row 1)
    remote.commit({**MANIFESTS, "deep.yaml": "a: " + "[" * 10_000 + "]" * 10_000 + "\n"})
    revision = open_source(repository(remote.url), cache_dir, "status").update()

    # When the daemon's cache loads it
    loaded = ManifestCache().load(revision)

    # Then the deep file is a finding of its own, without an object, and the rest loads
    deep = [finding for finding in loaded.findings if finding.path == "deep.yaml"]
    assert deep and all(not finding.object for finding in deep)
    assert len(loaded.objects) == 5
