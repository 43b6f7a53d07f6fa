"""Host files a pull request names, through whole passes on libvirt's test driver (issue 12,
rows 4 and 5): an image outside the host's imageDirectories blocks only what uses it and
is never read; a symlink leading out of the repository is a finding, never read; and
nothing of either reaches the output or the status reports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.engine.reconcile import observe, with_image_sources
from reconciler.findings import Rule
from reconciler.libvirt.apply import Applier
from reconciler.libvirt.connection import open_connection
from reconciler.libvirt.observe import Observer
from reconciler.model.actions import EnsureImageVolume
from reconciler.model.errors import DeviceNotReady
from reconciler.reports.documents import read_document
from tests.hosts import CLASS, Host, host_options, vm_yaml
from tests.libvirt.conftest import HOST_XML
from tests.libvirt.test_disks import FROM_IMAGE, volumes

SECRET = "S3CR3T-7c9e6679f4"
# A size (6,218 bytes) that would show in a report were the file ever inspected.
SECRET_TEXT = f"kind: {SECRET}\nroot:{SECRET}:" + "x" * 6170 + "\n"
OUTSIDE = "is not inside the allowed image directories"

IMAGE = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: ClusterVirtualImage
metadata:
  name: {name}
spec:
  dataSource:
    type: HTTP
    http:
      url: {url}
"""


def vm_from(name: str, image: str) -> str:
    """A VM whose root disk is a copy of the ClusterVirtualImage `image`."""
    disk = FROM_IMAGE.format(name=name).replace("name: ubuntu", f"name: {image}")
    return vm_yaml(name=name).split("---")[0] + "---" + disk


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "ubuntu.raw").write_bytes(b"\1" * 4096)
    return folder


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "shadow"
    path.parent.mkdir()
    path.write_text(SECRET_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def confined(host: Host, images: Path) -> Host:
    """The host allows only `images`: the secret file beside it is outside."""
    host.image_directories = (str(images),)
    return host


def status_texts(root: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path, path.read_text(encoding="utf-8")


def assert_nothing_of(secret_file: Path, *texts: str) -> None:
    """Neither the file's content nor its size; an image's URL is the manifest's own
    text and may be quoted, a symlink's target is not."""
    size = str(secret_file.stat().st_size)
    for text in texts:
        assert SECRET not in text
        assert size not in text


def assert_target_unnamed(secret_file: Path, *texts: str) -> None:
    for text in texts:
        assert str(secret_file) not in text and str(secret_file.parent) not in text


def condition(host: Host, vm: str, kind: str) -> dict[str, str]:
    report = read_document(host.repo / f"status/virtualmachines/default/{vm}.yaml")
    [found] = [c for c in report["status"]["conditions"] if c["type"] == kind]
    return dict(found)


# --- images ---------------------------------------------------------------------------


def test_a_vm_from_an_image_outside_the_allowed_directories_waits_and_the_others_run(
    confined: Host, images: Path, secret_file: Path
) -> None:
    host = confined
    host.write("images.yaml", IMAGE.format(name="ubuntu", url=f"file://{images}/ubuntu.raw"))
    host.write("shadow.yaml", IMAGE.format(name="shadow", url=f"file://{secret_file}"))
    host.write("a.yaml", vm_from("a", "ubuntu"))
    host.write("b.yaml", vm_from("b", "shadow"))
    host.write("c.yaml", vm_yaml(name="c"))

    result, _ = host.reconcile()
    host.write_statuses(result)

    assert [(f.object, f.rule) for f in result.findings] == [
        ("ClusterVirtualImage/shadow", Rule.IMAGE_SOURCE)
    ]
    domains = {d.name() for d in host.connection.listAllDomains(0)}
    assert {"a.default", "c.default"} <= domains and "b.default" not in domains
    assert not any(name.startswith("cvi-shadow-") for name in volumes(host))
    assert "vd-default-b-root.qcow2" not in volumes(host)
    assert any(name.startswith("cvi-ubuntu-") for name in volumes(host)), "still imported"
    blocked = condition(host, "b", "BlockDevicesReady")
    assert blocked["status"] == "False"
    assert "not a file inside the allowed image directories" in blocked["message"]
    assert str(images) in blocked["message"]


def vm_attaching(name: str, image: str) -> str:
    """A VM with the ClusterVirtualImage `image` as its only block device."""
    vm = vm_yaml(name=name).split("---")[0]
    return vm.replace(
        f"kind: VirtualDisk\n      name: {name}-root",
        f"kind: ClusterVirtualImage\n      name: {image}",
    )


def test_the_status_reports_say_nothing_of_a_refused_file(
    confined: Host, secret_file: Path
) -> None:
    host = confined
    host.write("shadow.yaml", IMAGE.format(name="shadow", url=f"file://{secret_file}"))
    host.write("b.yaml", vm_from("b", "shadow"))
    host.write("d.yaml", vm_attaching("d", "shadow"))

    result, _ = host.reconcile()
    host.write_statuses(result)

    reports = dict(status_texts(host.repo / "status"))
    assert reports
    assert_nothing_of(secret_file, *reports.values())
    disk = read_document(host.repo / "status/virtualdisks/default/b-root.yaml")["status"]
    assert "capacity" not in disk
    for vm in ("b", "d"):
        status = read_document(host.repo / f"status/virtualmachines/default/{vm}.yaml")["status"]
        assert all("size" not in ref for ref in status.get("blockDeviceRefs", []))
        assert status["phase"] == "Pending"


def test_a_refused_image_file_is_never_inspected(confined: Host, secret_file: Path) -> None:
    host = confined
    host.write("shadow.yaml", IMAGE.format(name="shadow", url=f"file://{secret_file}"))
    host.write("b.yaml", vm_from("b", "shadow"))
    result, _ = host.reconcile(apply=False)
    observer = Observer(host.connection)

    observation = with_image_sources(observer, result.context, observe(observer, host.context))
    facts = observer.image_source(str(secret_file), host.context.image_directories)

    assert str(secret_file) not in observation.image_sources
    assert (facts.format, facts.virtual_bytes) == (None, 0)
    assert OUTSIDE in facts.problem


def test_an_image_swapped_for_a_symlink_after_planning_is_refused_when_opened(
    confined: Host, images: Path, secret_file: Path
) -> None:
    host = confined
    host.write("images.yaml", IMAGE.format(name="ubuntu", url=f"file://{images}/ubuntu.raw"))
    host.write("a.yaml", vm_from("a", "ubuntu"))
    planned, _ = host.reconcile(apply=False)
    [importing] = [a for a in planned.plan.actions if isinstance(a, EnsureImageVolume)]
    source = images / "ubuntu.raw"
    source.unlink()
    source.symlink_to(secret_file)

    with pytest.raises(DeviceNotReady) as refused:
        Applier(host.connection).run(importing)

    error = str(refused.value)
    assert OUTSIDE in error
    assert_nothing_of(secret_file, error)
    assert not any(name.startswith("cvi-ubuntu-") for name in volumes(host))


def test_a_folder_swapped_for_a_symlink_after_planning_is_refused_when_opened(
    confined: Host, images: Path, secret_file: Path
) -> None:
    host = confined
    release = images / "release"
    release.mkdir()
    (release / "shadow").write_bytes(b"\1" * 512)
    host.write("images.yaml", IMAGE.format(name="ubuntu", url=f"file://{release}/shadow"))
    host.write("a.yaml", vm_from("a", "ubuntu"))
    planned, _ = host.reconcile(apply=False)
    [importing] = [a for a in planned.plan.actions if isinstance(a, EnsureImageVolume)]
    (release / "shadow").unlink()
    release.rmdir()
    release.symlink_to(secret_file.parent)

    with pytest.raises(DeviceNotReady) as refused:
        Applier(host.connection).run(importing)

    assert OUTSIDE in str(refused.value)
    assert not any(name.startswith("cvi-ubuntu-") for name in volumes(host))


# --- symlinks of the repository ------------------------------------------------------


def test_a_symlink_out_of_the_repository_is_a_finding_and_the_rest_is_applied(
    host: Host, secret_file: Path
) -> None:
    host.write("a.yaml", vm_yaml(name="a"))
    (host.repo / "vms").mkdir()
    (host.repo / "vms" / "x.yaml").symlink_to(secret_file)

    result, _ = host.reconcile()
    host.write_statuses(result)

    [finding] = [f for f in result.findings if f.rule is Rule.SYMLINK]
    assert (finding.path, finding.line, finding.object) == ("vms/x.yaml", 1, "")
    assert "a.default" in {d.name() for d in host.connection.listAllDomains(0)}
    messages = [str(f) for f in result.findings]
    reports = list(dict(status_texts(host.repo / "status")).values())
    assert_nothing_of(secret_file, *messages, *reports)
    assert_target_unnamed(secret_file, *messages, *reports)


def test_a_symlink_out_of_the_repository_holds_the_revision_s_deletions_back(
    host: Host, secret_file: Path
) -> None:
    host.write("a.yaml", vm_yaml(name="a"))
    host.write("b.yaml", vm_yaml(name="b"))
    first, _ = host.reconcile()
    host.write_statuses(first)

    host.remove("b.yaml")
    (host.repo / "x.yaml").symlink_to(secret_file)
    result, _ = host.reconcile()

    assert "b.default" in {d.name() for d in host.connection.listAllDomains(0)}
    assert "vd-default-b-root.qcow2" in volumes(host)
    assert any("none is deleted" in note for note in result.plan.notes)


def test_a_symlink_to_a_manifest_of_the_repository_is_applied(host: Host) -> None:
    host.write("shared/a.txt", vm_yaml(name="a"))
    (host.repo / "a.yaml").symlink_to("shared/a.txt")

    result, _ = host.reconcile()

    assert result.findings == []
    assert "a.default" in {d.name() for d in host.connection.listAllDomains(0)}


# --- reconciler apply -----------------------------------------------------------------

HOST_OPTIONS = host_options(f"test://{HOST_XML}", "hv1")


def test_apply_takes_the_allowed_directories_as_options_and_reports_nothing_refused(
    tmp_path: Path,
    images: Path,
    secret_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "class.yaml").write_text(CLASS, encoding="utf-8")
    (repo / "images.yaml").write_text(
        IMAGE.format(name="ubuntu", url=f"file://{images}/ubuntu.raw")
        + "---"
        + IMAGE.format(name="shadow", url=f"file://{secret_file}")
    )
    (repo / "a.yaml").write_text(vm_from("a", "ubuntu"), encoding="utf-8")
    (repo / "b.yaml").write_text(vm_from("b", "shadow"), encoding="utf-8")
    deploy_key = tmp_path / "keys" / "deploy"
    deploy_key.parent.mkdir()
    deploy_key.write_text(SECRET_TEXT, encoding="utf-8")
    (repo / "x.yaml").symlink_to(deploy_key)
    out = tmp_path / "status"
    connection = open_connection(f"test://{HOST_XML}")  # kept open: the driver's host lives

    options = ["--image-directory", str(images), "--status-dir", str(out)]

    code = main(["apply", str(repo), *HOST_OPTIONS, *options])

    captured = capsys.readouterr()
    connection.close()
    assert code == 0
    assert "a: " in captured.out or "default/a" in captured.out
    assert OUTSIDE not in captured.err
    b_line = next(line for line in captured.out.splitlines() if "/b:" in line or "/b " in line)
    assert "blocked" in b_line or "not applied" in captured.out
    reports = list(dict(status_texts(out)).values())
    assert_nothing_of(secret_file, captured.out, captured.err, *reports)
    assert_target_unnamed(deploy_key, captured.out, captured.err, *reports)
    report = read_document(out / "virtualmachines/default/b.yaml")["status"]
    messages = " ".join(c["message"] for c in report["conditions"] if "message" in c)
    assert "not a file inside the allowed image directories" in messages
