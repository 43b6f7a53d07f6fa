"""The longest name of every kind through whole passes: `reconciler apply` and the engine.

Issue 12, row 7: a VirtualDisk name of 253 characters validated, then `apply` ended
in `OSError: File name too long` with half a status tree written.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from reconciler.api import ObjectId
from reconciler.api.names import FILE_NAME_MAX
from reconciler.cli import main
from reconciler.model.names import disk_volume_name
from tests import longest_names as longest
from tests.hosts import Host, host_options
from tests.libvirt.conftest import HOST_XML


def apply_command(repo: Path, status: Path) -> list[str]:
    return [
        "apply",
        str(repo),
        *host_options(f"test://{HOST_XML}", longest.NODE),
        "--cidr",
        longest.CIDR,
        "--status-dir",
        str(status),
        "--image-directory",
        str(repo.parent),
    ]


def longest_names_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "longest"
    repo.mkdir()
    image = longest.write_image(tmp_path / "image.raw")
    (repo / "all.yaml").write_text(longest.manifests(image), encoding="utf-8")
    return repo


def test_longest_names_of_every_kind_validate(tmp_path: Path) -> None:
    repo = longest_names_repo(tmp_path)

    assert main(["validate", str(repo), "--image-directory", str(tmp_path)]) == 0


def test_apply_writes_a_report_for_every_object_with_the_longest_names(tmp_path: Path) -> None:
    repo = longest_names_repo(tmp_path)
    status = tmp_path / "status"

    code = main(apply_command(repo, status))

    assert code == 0
    assert set(longest.reports(status)) >= longest.REPORTED


def test_apply_again_keeps_every_report_of_a_fitted_name(tmp_path: Path) -> None:
    repo = longest_names_repo(tmp_path)
    status = tmp_path / "status"
    main(apply_command(repo, status))
    written = {p: p.read_bytes() for p in status.rglob("*") if p.is_file()}

    code = main(apply_command(repo, status))

    assert code == 0
    survivors = {p: p.read_bytes() for p in status.rglob("*") if p.is_file()}
    assert set(survivors) == set(written), "no report is removed as stale and written again"


def test_volumes_of_the_longest_names_fit_a_file_name(host: Host, tmp_path: Path) -> None:
    image = longest.write_image(tmp_path / "image.raw")
    host.write("all.yaml", longest.manifests(image))
    host.node_name = longest.NODE
    host.cidrs = (ipaddress.IPv4Network(longest.CIDR),)

    result, _ = host.reconcile()

    assert result.errors == []
    pool = host.connection.storagePoolLookupByName(host.storage_pool)
    names = {volume.name() for volume in pool.listAllVolumes(0)}
    disk = disk_volume_name(ObjectId("VirtualDisk", longest.NAMESPACE, longest.ROOT_DISK))
    assert disk in names
    assert [n for n in names if len(n.encode()) > FILE_NAME_MAX] == []
    assert host.domain(f"{longest.VM}.{longest.NAMESPACE}").isActive()


HOSTILE = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: ../../../escaped-vm
  namespace: ../../ns
spec:
  virtualMachineClassName: generic
  cpu: {cores: 1}
  memory: {size: 1Gi}
  blockDeviceRefs:
    - {kind: VirtualDisk, name: d}
"""


def test_the_report_of_a_manifest_with_a_name_leaving_its_folder_stays_in_the_tree(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "vm.yaml").write_text(HOSTILE, encoding="utf-8")
    status = tmp_path / "deep" / "status"

    main(apply_command(repo, status))
    written = {p: p.read_bytes() for p in tmp_path.rglob("*.yaml") if p.is_file()}
    main(apply_command(repo, status))

    assert all(status in path.parents for path in written if repo not in path.parents)
    [report] = [p for p in written if "virtualmachines" in p.parts]
    assert report.parent.parent == status / "virtualmachines"
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.yaml")} == written, "kept as it was"
