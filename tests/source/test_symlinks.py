"""Symlinks committed to the manifests repository, through the Git source's clone and
ManifestCache (issue 12, row 5): git checks them out as symlinks; only those that stay
inside the work tree are read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.findings import Rule
from reconciler.source import ManifestCache, open_source
from reconciler.source.revision import SourceError
from tests.gitrepos import Remote, git
from tests.hosts import vm_yaml
from tests.source.conftest import VM_CLASS, repository

SECRET = "S3CR3T-5d41402abc"


def commit_symlink(remote: Remote, name: str, target: str | Path) -> None:
    link = remote.author / name
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    git(remote.author, "add", "--all")
    git(remote.author, "commit", "--quiet", "-m", f"link {name}")
    git(remote.author, "push", "--quiet", "origin", f"HEAD:{remote.branch}")


def host_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "host" / "deploy-key"
    secret.parent.mkdir()
    secret.write_text(f"kind: {SECRET}\nmetadata: {{name: {SECRET}}}\n", encoding="utf-8")
    return secret


def test_a_committed_symlink_out_of_the_repository_is_a_finding_without_its_target(
    remote: Remote, cache_dir: Path, tmp_path: Path
) -> None:
    secret = host_secret(tmp_path)
    remote.commit({"classes/generic.yaml": VM_CLASS, "vms/web.yaml": vm_yaml("web")})
    commit_symlink(remote, "vms/x.yaml", secret)
    revision = open_source(repository(remote.url), cache_dir, "status").update()
    assert (revision.root / "vms" / "x.yaml").is_symlink()  # git checked it out as one

    loaded = ManifestCache().load(revision)

    [finding] = loaded.findings
    assert (finding.path, finding.line, finding.object, finding.rule) == (
        "vms/x.yaml",
        1,
        "",
        Rule.SYMLINK,
    )
    assert SECRET not in str(finding) and str(secret.parent) not in str(finding)
    assert {o.id.name for o in loaded.objects} >= {"web"}


def test_a_committed_relative_symlink_climbing_out_is_a_finding(
    remote: Remote, cache_dir: Path
) -> None:
    remote.commit({"classes/generic.yaml": VM_CLASS})
    commit_symlink(remote, "vms/x.yaml", "../../../../../../../../etc/passwd")
    revision = open_source(repository(remote.url), cache_dir, "status").update()

    loaded = ManifestCache().load(revision)

    assert [(f.path, f.rule) for f in loaded.findings] == [("vms/x.yaml", Rule.SYMLINK)]
    assert "root:" not in str(loaded.findings[0])


def test_a_committed_symlink_inside_the_repository_is_loaded_and_follows_its_target(
    remote: Remote, cache_dir: Path
) -> None:
    remote.commit({"classes/generic.yaml": VM_CLASS, "shared/web.txt": vm_yaml("web")})
    commit_symlink(remote, "vms/web.yaml", "../shared/web.txt")
    source = open_source(repository(remote.url), cache_dir, "status")
    cache = ManifestCache()
    first = cache.load(source.update())
    assert first.findings == []
    assert {o.id.name for o in first.objects} == {"generic", "web", "web-root"}

    # The link's blob does not change; the text it leads to does.
    remote.commit({"shared/web.txt": vm_yaml("web", cores=2)})
    again = cache.load(source.update())

    web = next(o for o in again.objects if o.id.name == "web")
    assert web.model.spec.cpu.cores == 2  # type: ignore[attr-defined]


def test_a_sub_path_committed_as_a_symlink_is_no_folder_of_the_revision(
    remote: Remote, cache_dir: Path, tmp_path: Path
) -> None:
    secret = host_secret(tmp_path)
    remote.commit({"README.md": "manifests live under manifests/\n"})
    commit_symlink(remote, "manifests", secret.parent)
    source = open_source(repository(remote.url, subPath="manifests"), cache_dir, "status")

    with pytest.raises(SourceError, match="sub-path 'manifests' is missing") as raised:
        source.update()

    assert str(secret.parent) not in str(raised.value)


def test_a_local_sub_path_symlinked_out_of_the_directory_loads_nothing(
    cache_dir: Path, tmp_path: Path
) -> None:
    secret = host_secret(tmp_path)
    (secret.parent / "vm.yaml").write_text(vm_yaml("stolen"), encoding="utf-8")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "manifests").symlink_to(secret.parent)
    source = open_source(repository(str(checkout), subPath="manifests"), cache_dir, "status")

    loaded = ManifestCache().load(source.update())

    assert loaded.objects == []
    assert [(f.path, f.rule) for f in loaded.findings] == [("manifests", Rule.SYMLINK)]
    assert str(secret.parent) not in str(loaded.findings[0])
