"""The loader: which files are desired state, and where every object and field was written."""

from __future__ import annotations

from reconciler.api import VirtualMachine
from reconciler.loader import load_text
from tests.conftest import (
    REFERENCE_CLASS,
    ManifestRepo,
    disk_yaml,
    docs,
    vm_yaml,
)


def _names(repo: ManifestRepo) -> list[str]:
    return sorted(str(loaded.id) for loaded in repo.load().objects)


def test_multi_document_file_yields_every_object_in_order(repo: ManifestRepo) -> None:
    repo.write("all.yaml", docs(REFERENCE_CLASS, vm_yaml(), disk_yaml("linux-vm-root")))

    result = repo.load()

    assert result.findings == []
    assert [str(o.id) for o in result.objects] == [
        "VirtualMachineClass/generic",
        "VirtualMachine/default/linux-vm",
        "VirtualDisk/default/linux-vm-root",
    ]
    starts = [o.source.locate(()) for o in result.objects]
    assert starts == [repo.where("all.yaml", "apiVersion", n) for n in (1, 2, 3)]


def test_yml_and_yaml_files_are_both_read_other_files_are_not(repo: ManifestRepo) -> None:
    repo.write("a.yaml", disk_yaml("a"))
    repo.write("b.yml", disk_yaml("b"))
    repo.write("c.json", '{"kind": "VirtualDisk"}')
    repo.write("README.md", disk_yaml("not-a-manifest"))
    repo.write("d.yaml.orig", disk_yaml("backup"))

    assert _names(repo) == ["VirtualDisk/default/a", "VirtualDisk/default/b"]


def test_files_in_nested_folders_are_read_with_paths_relative_to_the_root(
    repo: ManifestRepo,
) -> None:
    repo.write("team/prod/disks.yaml", disk_yaml("deep"))

    [loaded] = repo.load().objects

    assert loaded.source.path == "team/prod/disks.yaml"


def test_status_folder_is_never_read_as_desired_state(repo: ManifestRepo) -> None:
    repo.write("vm.yaml", docs(REFERENCE_CLASS, vm_yaml(), disk_yaml("linux-vm-root")))
    # A status report of the same VM and a file that is not even a manifest.
    repo.write("status/virtualmachines/default/linux-vm.yaml", vm_yaml())
    repo.write("status/README.yaml", "phase: [Running\n")

    result = repo.load()

    assert result.findings == []
    assert all(not o.source.path.startswith("status/") for o in result.objects)
    assert repo.findings() == []


def test_dot_folders_are_never_read(repo: ManifestRepo) -> None:
    repo.write("disk.yaml", disk_yaml("kept"))
    repo.write(".github/workflows/validate.yaml", "on: [pull_request]\njobs: {}\n")
    repo.write(".git/config.yaml", "broken: [\n")
    repo.write("apps/.drafts/vm.yaml", disk_yaml("draft"))

    result = repo.load()

    assert result.findings == []
    assert [str(o.id) for o in result.objects] == ["VirtualDisk/default/kept"]


def test_empty_documents_and_files_are_ignored(repo: ManifestRepo) -> None:
    repo.write("empty.yaml", "")
    repo.write("comments.yaml", "# nothing here yet\n")
    repo.write("separators.yaml", "---\n---\n# just a comment\n---\n")
    repo.write("mixed.yaml", "---\n" + disk_yaml("a") + "---\n---\n" + disk_yaml("b") + "---\n")

    result = repo.load()

    assert result.findings == []
    assert _names(repo) == ["VirtualDisk/default/a", "VirtualDisk/default/b"]


def test_line_and_column_of_nested_fields(repo: ManifestRepo) -> None:
    text = vm_yaml(
        disks=["root", "data"],
        extra_spec="provisioning:\n  type: UserData\n  userData: |\n    #cloud-config\n",
    )
    repo.write("vm.yaml", text)

    [loaded] = repo.load().objects
    locate = loaded.source.locate

    assert locate(("spec", "cpu", "cores")) == repo.where("vm.yaml", "cores:")
    assert locate(("spec", "memory", "size")) == repo.where("vm.yaml", "size:")
    assert locate(("spec", "blockDeviceRefs", 1)) == repo.where("vm.yaml", "kind:", 3)
    assert locate(("spec", "blockDeviceRefs", 1, "name")) == repo.where("vm.yaml", "name: data")
    assert locate(("spec", "provisioning", "userData")) == repo.where("vm.yaml", "userData:")
    assert locate(("metadata", "name")) == repo.where("vm.yaml", "name: linux-vm")


def test_missing_field_is_located_at_its_parent(repo: ManifestRepo) -> None:
    repo.write("vm.yaml", vm_yaml())

    [loaded] = repo.load().objects

    assert loaded.source.locate(("spec", "runPolicy")) == repo.where("vm.yaml", "spec:")
    assert loaded.source.locate(("spec", "blockDeviceRefs", 7)) == repo.where(
        "vm.yaml", "blockDeviceRefs:"
    )


def test_flow_style_fields_are_located_too(repo: ManifestRepo) -> None:
    repo.write(
        "vm.yaml",
        vm_yaml().replace("  cpu:\n    cores: 1\n    coreFraction: 10%\n", "  cpu: {cores: 1}\n"),
    )

    [loaded] = repo.load().objects

    assert loaded.source.locate(("spec", "cpu", "cores")) == repo.where("vm.yaml", "cores")


def test_anchors_and_merge_keys_are_resolved() -> None:
    text = (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualDisk\n"
        "metadata:\n  name: merged\n  labels: &common\n    team: web\n"
        "  annotations:\n    <<: *common\n    note: kept\n"
        "spec:\n  persistentVolumeClaim:\n    size: 1Gi\n"
    )

    result = load_text(text, "anchors.yaml")

    assert result.findings == []
    [loaded] = result.objects
    assert loaded.model.metadata.labels == {"team": "web"}
    assert loaded.model.metadata.annotations == {"team": "web", "note": "kept"}


def test_anchor_from_another_document_is_a_yaml_error() -> None:
    # Anchors live within one document (YAML 1.2 §3.2.2.2).
    text = "a: &x 1\n---\nb: *x\n"

    result = load_text(text, "anchors.yaml")

    assert [(f.rule.value, f.line) for f in result.findings] == [("yaml", 3)]


def test_non_mapping_document_is_a_schema_error() -> None:
    result = load_text("- a\n- b\n", "list.yaml")

    assert [(f.rule.value, f.line) for f in result.findings] == [("schema", 1)]
    assert "mapping" in result.findings[0].message


def test_document_without_kind_is_a_schema_error() -> None:
    result = load_text("apiVersion: v1\nmetadata:\n  name: x\n", "nokind.yaml")

    [finding] = result.findings
    assert finding.rule.value == "schema"
    assert "kind" in finding.message


def test_yaml_scalars_keep_their_types_where_the_schema_wants_strings() -> None:
    # `name: 0123` and `on` stay strings; YAML 1.1 would make them a number and a bool.
    text = vm_yaml(name="vm-one").replace(
        "    - kind: VirtualDisk\n      name: vm-one-root\n",
        "    - kind: VirtualDisk\n      name: '0123'\n",
    )
    result = load_text(text, "vm.yaml")

    [loaded] = result.objects
    assert isinstance(loaded.model, VirtualMachine)
    assert loaded.model.spec.block_device_refs[0].name == "0123"


def test_syntax_error_loses_only_its_own_file(repo: ManifestRepo) -> None:
    repo.write("a.yaml", disk_yaml("a") + "---\nkey: [\n")
    repo.write("b.yaml", disk_yaml("b"))

    result = repo.load()

    assert [(f.path, f.rule.value) for f in result.findings] == [("a.yaml", "yaml")]
    assert [str(o.id) for o in result.objects] == ["VirtualDisk/default/b"]


def test_explicit_key_overrides_a_merged_one() -> None:
    text = (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualDisk\n"
        "metadata:\n  name: d\n  labels:\n    <<: {team: web, tier: db}\n    team: ops\n"
        "spec:\n  persistentVolumeClaim:\n    size: 1Gi\n"
    )

    result = load_text(text, "merge.yaml")

    assert result.findings == []
    assert result.objects[0].model.metadata.labels == {"team": "ops", "tier": "db"}


def test_value_that_does_not_fit_its_explicit_tag_is_a_yaml_error() -> None:
    text = disk_yaml("d").replace("size: 10Gi", "size: !!int ten")

    result = load_text(text, "tagged.yaml")

    [finding] = result.findings
    assert (finding.rule.value, finding.line) == (
        "yaml",
        text.splitlines().index("    size: !!int ten") + 1,
    )
    assert "ten" in finding.message


def test_non_scalar_mapping_key_is_a_yaml_error() -> None:
    result = load_text("? [a, b]\n: 1\n", "complex.yaml")

    assert [(f.rule.value, f.line) for f in result.findings] == [("yaml", 1)]


def test_merge_of_a_scalar_is_a_yaml_error() -> None:
    result = load_text("metadata:\n  <<: 5\n", "merge.yaml")

    assert [(f.rule.value, f.line) for f in result.findings] == [("yaml", 2)]
