"""`reconciler validate` against manifests that name host files (issue 12, rows 4 and 5):
images only from the allowed image directories (rule image-source), symlinks of the
repository only when they stay inside it (rule symlink), never echoing what lies
outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Cli, ManifestRepo, validate_json

# What a host file holds that must never reach a pull request's check: if it were read
# as a manifest, validate would quote it ("unknown kind 'S3CR3T-…'").
SECRET = "S3CR3T-d41d8cd98f00"
SECRET_FILE_TEXT = f"kind: {SECRET}\nmetadata: {{name: {SECRET}}}\n"


def image_yaml(url: str, name: str = "ubuntu") -> str:
    return (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
        "kind: ClusterVirtualImage\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n  dataSource:\n    type: HTTP\n    http:\n"
        f'      url: "{url}"\n'
    )


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A host file outside the repository and outside every allowed directory."""
    path = tmp_path / "host" / "shadow"
    path.parent.mkdir()
    path.write_text(SECRET_FILE_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    return folder


def image_findings(cli: Cli, repo: ManifestRepo, *extra: str) -> list[dict[str, object]]:
    _code, findings = validate_json(cli, repo, *extra)
    return [f for f in findings if f["rule"] == "image-source"]


# --- images ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/shadow",
        "file:///var/../etc/passwd",
        "/etc/passwd",
        "file:///var/lib/reconciler/images/../../../../etc/passwd",
        "file:///var/lib/reconciler/images/%2e%2e/%2e%2e/etc/passwd",
        "file://localhost/etc/shadow",
        "images/relative.qcow2",
        "file:///var/lib/reconciler/images/x%00.qcow2",
    ],
)
def test_an_image_outside_the_default_directories_is_an_image_source_finding(
    cli: Cli, repo: ManifestRepo, url: str
) -> None:
    repo.write("images/host-file.yaml", image_yaml(url))

    code, findings = validate_json(cli, repo)

    assert code == 1
    [finding] = findings
    assert finding["rule"] == "image-source"
    assert finding["object"] == "ClusterVirtualImage/ubuntu"
    assert (finding["path"], finding["line"]) == (
        "images/host-file.yaml",
        repo.line_of("images/host-file.yaml", "url:"),
    )
    assert "/var/lib/reconciler/images" in str(finding["message"])


def test_an_image_in_the_default_directory_passes_without_a_config(
    cli: Cli, repo: ManifestRepo
) -> None:
    repo.write("images/ubuntu.yaml", image_yaml("file:///var/lib/reconciler/images/u.qcow2"))

    assert validate_json(cli, repo) == (0, [])


def test_the_text_output_names_file_line_object_and_rule(cli: Cli, repo: ManifestRepo) -> None:
    repo.write("images/host-file.yaml", image_yaml("file:///etc/shadow"))

    run = cli("validate", repo.root)

    line, column = repo.where("images/host-file.yaml", "url:")
    assert (
        f"images/host-file.yaml:{line}:{column}: ClusterVirtualImage/ubuntu: image source"
        " file:///etc/shadow is not a file inside the allowed image directories"
    ) in run.out
    assert run.out.splitlines()[0].endswith("[image-source]")


def test_image_directory_options_allow_a_directory(
    cli: Cli, repo: ManifestRepo, images: Path
) -> None:
    repo.write("images/ubuntu.yaml", image_yaml(f"file://{images}/u.qcow2"))

    assert image_findings(cli, repo) != []
    assert image_findings(cli, repo, "--image-directory", str(images)) == []


def test_the_config_s_image_directories_replace_the_default(
    cli: Cli, repo: ManifestRepo, images: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"imageDirectories: [{images}]\n", encoding="utf-8")
    repo.write("images/mine.yaml", image_yaml(f"file://{images}/u.qcow2", "mine"))
    repo.write("images/default.yaml", image_yaml("file:///var/lib/reconciler/images/d.iso", "d"))

    findings = image_findings(cli, repo, "--config", str(config))

    assert [f["object"] for f in findings] == ["ClusterVirtualImage/d"]


def test_a_symlink_inside_an_allowed_directory_that_leads_out_is_refused(
    cli: Cli, repo: ManifestRepo, images: Path, secret_file: Path
) -> None:
    (images / "u.qcow2").symlink_to(secret_file)
    repo.write("images/ubuntu.yaml", image_yaml(f"file://{images}/u.qcow2"))

    findings = image_findings(cli, repo, "--image-directory", str(images))

    assert [f["object"] for f in findings] == ["ClusterVirtualImage/ubuntu"]


def test_a_symlink_between_allowed_files_is_allowed(
    cli: Cli, repo: ManifestRepo, images: Path
) -> None:
    (images / "ubuntu-24.04.qcow2").write_bytes(b"QFI\xfb")
    (images / "ubuntu.qcow2").symlink_to(images / "ubuntu-24.04.qcow2")
    repo.write("images/ubuntu.yaml", image_yaml(f"file://{images}/ubuntu.qcow2"))

    assert image_findings(cli, repo, "--image-directory", str(images)) == []


def test_an_image_by_object_ref_is_not_an_image_source_finding(
    cli: Cli, repo: ManifestRepo
) -> None:
    repo.write("images/outside.yaml", image_yaml("file:///etc/shadow", "outside"))
    repo.write(
        "images/copy.yaml",
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\n"
        "metadata:\n  name: copy\nspec:\n  dataSource:\n    type: ObjectRef\n"
        "    objectRef: {kind: ClusterVirtualImage, name: outside}\n",
    )

    findings = image_findings(cli, repo)

    assert [f["object"] for f in findings] == ["ClusterVirtualImage/outside"]


# --- symlinks of the repository ------------------------------------------------------


def assert_secret_is_nowhere(cli: Cli, repo: ManifestRepo, secret_file: Path) -> None:
    for fmt in ("text", "json", "github"):
        run = cli("validate", repo.root, "--format", fmt)
        assert run.code == 1
        for output in (run.out, run.err):
            assert SECRET not in output
            assert str(secret_file) not in output
            assert secret_file.name not in output


def test_a_symlink_to_a_host_file_is_a_finding_that_echoes_nothing_of_it(
    cli: Cli, repo: ManifestRepo, secret_file: Path
) -> None:
    (repo.root / "vms").mkdir()
    (repo.root / "vms" / "x.yaml").symlink_to(secret_file)

    code, findings = validate_json(cli, repo)

    assert code == 1
    assert findings == [
        {
            "path": "vms/x.yaml",
            "line": 1,
            "column": 1,
            "object": "",
            "message": "is a symbolic link that leads outside the repository; it is not read",
            "rule": "symlink",
        }
    ]
    assert_secret_is_nowhere(cli, repo, secret_file)


def test_a_relative_symlink_climbing_out_of_the_repository_is_a_finding(
    cli: Cli, repo: ManifestRepo, secret_file: Path
) -> None:
    link = repo.root / "vms" / "x.yaml"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(secret_file, link.parent))

    _code, findings = validate_json(cli, repo)

    assert [(f["path"], f["rule"]) for f in findings] == [("vms/x.yaml", "symlink")]
    assert_secret_is_nowhere(cli, repo, secret_file)


def test_a_symlink_to_a_file_of_the_repository_is_loaded(cli: Cli, repo: ManifestRepo) -> None:
    # Not a .yaml itself, so the manifest is read through the link only.
    repo.write("shared/image.txt", image_yaml("file:///var/lib/reconciler/images/u.qcow2"))
    (repo.root / "images").mkdir()
    (repo.root / "images" / "ubuntu.yaml").symlink_to("../shared/image.txt")

    run = cli("validate", repo.root)

    assert (run.code, run.out.strip()) == (0, "ok: 1 objects in 1 files")


def test_a_dangling_symlink_is_a_finding(cli: Cli, repo: ManifestRepo) -> None:
    (repo.root / "gone.yaml").symlink_to(repo.root / "nothing-here.yaml")

    _code, findings = validate_json(cli, repo)

    assert [(f["path"], f["line"], f["rule"]) for f in findings] == [("gone.yaml", 1, "symlink")]


def test_a_symlink_into_the_git_folder_is_a_finding(cli: Cli, repo: ManifestRepo) -> None:
    (repo.root / ".git").mkdir()
    (repo.root / ".git" / "config").write_text(f"url = https://{SECRET}@example\n")
    (repo.root / "config.yaml").symlink_to(".git/config")

    run = cli("validate", repo.root, "--format", "json")

    assert [(f["path"], f["rule"]) for f in run.json()] == [("config.yaml", "symlink")]
    assert SECRET not in run.out


def test_a_symlinked_folder_leading_out_of_the_repository_is_a_finding(
    cli: Cli, repo: ManifestRepo, secret_file: Path
) -> None:
    (secret_file.parent / "vm.yaml").write_text(SECRET_FILE_TEXT, encoding="utf-8")
    (repo.root / "vms").symlink_to(secret_file.parent)

    _code, findings = validate_json(cli, repo)

    assert [(f["path"], f["rule"]) for f in findings] == [("vms", "symlink")]
    assert_secret_is_nowhere(cli, repo, secret_file)


def test_a_symlinked_folder_inside_the_repository_is_read_once_where_it_is(
    cli: Cli, repo: ManifestRepo
) -> None:
    repo.write("shared/image.yaml", image_yaml("file:///var/lib/reconciler/images/u.qcow2"))
    (repo.root / "images").symlink_to("shared")

    assert validate_json(cli, repo) == (0, [])
