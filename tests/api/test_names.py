"""Names: the platform's limits, and names derived from them that fit a host (api/names.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.api import ObjectId, VirtualDisk
from reconciler.api.names import FILE_NAME_MAX, fitted
from reconciler.reports.documents import report_object_id, status_path

ROOT = Path("/srv/repo/status")


def _disk(name: str, namespace: str = "default") -> dict[str, object]:
    return {
        "apiVersion": "virtualization.deckhouse.io/v1alpha2",
        "kind": "VirtualDisk",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"persistentVolumeClaim": {"size": "1Gi"}},
    }


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../etc", "a..b", ".hidden", "a" * 254, ""])
def test_names_that_could_leave_a_folder_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="not a valid name"):
        VirtualDisk.model_validate(_disk(name))


@pytest.mark.parametrize("namespace", ["..", "a.b", "a/b", "a" * 64])
def test_namespaces_that_could_leave_a_folder_are_refused(namespace: str) -> None:
    with pytest.raises(ValidationError, match="not a valid namespace"):
        VirtualDisk.model_validate(_disk("d", namespace))


def test_a_disk_name_of_253_characters_is_valid() -> None:
    assert VirtualDisk.model_validate(_disk("d" * 253)).name == "d" * 253


def test_a_name_that_fits_is_kept_as_written() -> None:
    assert fitted("linux-vm-root", 100) == "linux-vm-root"


def test_a_name_that_does_not_fit_is_a_prefix_and_a_hash_within_the_budget() -> None:
    fitted_name = fitted("d" * 300, 200)

    assert len(fitted_name) == 200
    assert fitted_name.startswith("d" * 100) and "_" in fitted_name


def test_two_long_names_differing_only_at_the_end_fit_to_different_names() -> None:
    assert fitted("d" * 300 + "a", 200) != fitted("d" * 300 + "b", 200)


def test_a_status_path_of_a_short_name_is_as_before() -> None:
    path = status_path(ROOT, ObjectId("VirtualMachine", "default", "linux-vm"))

    assert path == ROOT / "virtualmachines" / "default" / "linux-vm.yaml"


def test_the_status_file_of_the_longest_name_fits_with_its_temporary_suffix() -> None:
    path = status_path(ROOT, ObjectId("VirtualDisk", "n" * 63, "d" * 253))

    assert len((path.name + ".tmp").encode()) <= FILE_NAME_MAX


@pytest.mark.parametrize(
    ("namespace", "name"),
    [("..", "x"), ("default", "../../../../etc/cron.d/x"), ("a/b", "c"), ("", ".."), ("d", "")],
)
def test_the_report_of_an_invalid_manifest_stays_under_the_status_root(
    namespace: str, name: str
) -> None:
    path = status_path(ROOT, ObjectId("VirtualMachine", namespace, name))

    assert path.parent.parent in (ROOT / "virtualmachines", ROOT)
    assert path.name not in (".yaml", "..yaml") and not path.name.startswith(".")
    assert all(part not in ("..", ".") for part in path.relative_to(ROOT).parts)


def test_a_fitted_report_is_found_as_its_object(tmp_path: Path) -> None:
    disk = ObjectId("VirtualDisk", "default", "d" * 253)
    path = status_path(tmp_path, disk)
    path.parent.mkdir(parents=True)
    path.write_text(f"metadata:\n  name: {disk.name}\n  namespace: default\n", encoding="utf-8")

    assert report_object_id(path, "VirtualDisk", namespaced=True) == disk


def test_a_report_claiming_another_objects_name_is_no_report(tmp_path: Path) -> None:
    path = status_path(tmp_path, ObjectId("VirtualDisk", "default", "d" * 253))
    path.parent.mkdir(parents=True)
    path.write_text("metadata:\n  name: other\n  namespace: default\n", encoding="utf-8")

    assert report_object_id(path, "VirtualDisk", namespaced=True) is None
