"""Every class of bad input through `reconciler validate`: the exit code, the rule, the
file relative to DIR, the line and column of the offending field, and the object."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import (
    REFERENCE_CLASS,
    USER_DATA_REF,
    Cli,
    ManifestRepo,
    disk_yaml,
    docs,
    validate_json,
    vm_yaml,
)

LINUX_VM = "VirtualMachine/default/linux-vm"


@pytest.fixture
def good(repo: ManifestRepo) -> ManifestRepo:
    """A clean repository: the reference's class and linux-vm with its disk."""
    repo.write("classes/generic.yaml", REFERENCE_CLASS)
    repo.write("vms/linux-vm.yaml", docs(vm_yaml(), disk_yaml("linux-vm-root")))
    return repo


def expect_one(
    cli: Cli,
    repo: ManifestRepo,
    *,
    rule: str,
    path: str,
    at: str,
    obj: str,
    after: str | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Validate; exactly one finding, at `at` in `path` (below the line `after`)."""
    code, findings = validate_json(cli, repo, *extra)
    assert code == 1
    assert len(findings) == 1, findings
    [finding] = findings
    assert finding["rule"] == rule
    assert finding["path"] == path
    assert (finding["line"], finding["column"]) == repo.where(path, at, after=after)
    assert finding["object"] == obj
    return finding


def test_the_good_repository_is_clean(cli: Cli, good: ManifestRepo) -> None:
    assert validate_json(cli, good) == (0, [])


# --- yaml ---------------------------------------------------------------------------


def test_broken_yaml_points_at_the_syntax_error(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "broken.yaml",
        "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
        "kind: VirtualDisk\n"
        "metadata:\n"
        "  name: data: disk\n",
    )

    finding = expect_one(cli, good, rule="yaml", path="broken.yaml", at=": disk", obj="")
    assert "mapping values" in finding["message"]


def test_unclosed_flow_sequence_is_a_yaml_error(cli: Cli, good: ManifestRepo) -> None:
    good.write("broken.yaml", "kind: VirtualDisk\nmetadata: {name: [a, b\n")

    code, findings = validate_json(cli, good)

    assert code == 1
    assert [(f["rule"], f["path"]) for f in findings] == [("yaml", "broken.yaml")]
    assert findings[0]["line"] >= 2


def test_duplicate_key_is_a_yaml_error_at_the_second_key(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "vms/linux-vm.yaml", docs(vm_yaml(memory="1Gi\n    size: 2Gi"), disk_yaml("linux-vm-root"))
    )

    finding = expect_one(
        cli, good, rule="yaml", path="vms/linux-vm.yaml", at="size:", obj="", after="size: 1Gi"
    )
    assert "size" in finding["message"]


def test_file_that_is_not_utf8_is_reported_not_crashed_on(cli: Cli, good: ManifestRepo) -> None:
    (good.root / "latin1.yaml").write_bytes(b"kind: VirtualDisk\nmetadata:\n  name: d\xe9\n")

    code, findings = validate_json(cli, good)

    assert code == 1
    assert [(f["rule"], f["path"]) for f in findings] == [("yaml", "latin1.yaml")]


# --- schema -------------------------------------------------------------------------


def test_unknown_field_points_at_its_key(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(extra_spec="cpuPinning: true\n"), disk_yaml("linux-vm-root")),
    )

    finding = expect_one(
        cli, good, rule="schema", path="vms/linux-vm.yaml", at="cpuPinning", obj=LINUX_VM
    )
    assert "cpuPinning" in finding["message"]


def test_unknown_nested_field_points_at_its_key(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(memory="1Gi\n    hugePages: 2Mi"), disk_yaml("linux-vm-root")),
    )

    finding = expect_one(
        cli, good, rule="schema", path="vms/linux-vm.yaml", at="hugePages", obj=LINUX_VM
    )
    assert "spec.memory.hugePages" in finding["message"]


@pytest.mark.parametrize(
    ("vm", "at"),
    [
        (vm_yaml(cores="many"), "cores:"),  # type: ignore[arg-type]
        (vm_yaml(memory="1GB"), "size: 1GB"),
        (vm_yaml(memory="lots"), "size: lots"),
        (vm_yaml(fraction="150%"), "coreFraction:"),
        (vm_yaml(extra_spec="runPolicy: Sometimes\n"), "runPolicy:"),
        (vm_yaml(extra_spec="enableParavirtualization: maybe\n"), "enableParavirtualization:"),
        (vm_yaml(disks=["Floppy/a"]), "kind: Floppy"),
    ],
)
def test_wrong_type_or_value_points_at_the_field(
    cli: Cli, good: ManifestRepo, vm: str, at: str
) -> None:
    good.write("vms/linux-vm.yaml", docs(vm, disk_yaml("linux-vm-root")))

    expect_one(cli, good, rule="schema", path="vms/linux-vm.yaml", at=at, obj=LINUX_VM)


@pytest.mark.parametrize(
    ("vm", "at", "occurrence"),
    [
        # A payload the provisioning type does not take: at that payload's key.
        (
            vm_yaml(
                extra_spec="provisioning:\n  type: UserData\n  userData: x\n"
                "  userDataRef:\n    name: s\n"
            ),
            "userDataRef:",
            1,
        ),
        # The same device twice: at the second entry's name.
        (vm_yaml(disks=["linux-vm-root", "linux-vm-root"]), "name: linux-vm-root", 2),
        # A name that is no DNS name: at metadata.name.
        (vm_yaml().replace("name: linux-vm\n", "name: Linux_VM\n", 1), "name: Linux_VM", 1),
    ],
)
def test_cross_field_rule_points_at_the_field_at_fault(
    cli: Cli, good: ManifestRepo, vm: str, at: str, occurrence: int
) -> None:
    good.write("vms/linux-vm.yaml", docs(vm, disk_yaml("linux-vm-root")))

    code, findings = validate_json(cli, good)

    assert code == 1
    [finding] = findings
    assert finding["rule"] == "schema"
    assert (finding["line"], finding["column"]) == good.where("vms/linux-vm.yaml", at, occurrence)


def test_missing_required_field_points_at_its_parent(cli: Cli, good: ManifestRepo) -> None:
    vm = vm_yaml().replace("  memory:\n    size: 1Gi\n", "")
    good.write("vms/linux-vm.yaml", docs(vm, disk_yaml("linux-vm-root")))

    finding = expect_one(
        cli, good, rule="schema", path="vms/linux-vm.yaml", at="spec:", obj=LINUX_VM
    )
    assert "spec.memory" in finding["message"]


def test_unknown_kind_points_at_kind(cli: Cli, good: ManifestRepo) -> None:
    good.write("odd.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")

    finding = expect_one(cli, good, rule="schema", path="odd.yaml", at="kind:", obj="")
    assert "ConfigMap" in finding["message"]


def test_wrong_api_version_is_a_schema_error(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(
            vm_yaml().replace("v1alpha2", "v1beta9", 1),
            disk_yaml("linux-vm-root"),
        ),
    )

    expect_one(cli, good, rule="schema", path="vms/linux-vm.yaml", at="apiVersion", obj=LINUX_VM)


def test_secret_with_bad_base64_never_prints_its_content(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n"
        "type: provisioning.virtualization.deckhouse.io/cloud-init\n"
        "data:\n  userData: hunter2-is-my-password!!\n",
    )

    run = cli("validate", good.root)

    assert run.code == 1
    assert "secret.yaml:7:3: Secret/default/creds: data.userData: not valid base64" in run.out
    assert "hunter2" not in run.out + run.err


# --- reference ----------------------------------------------------------------------


def test_missing_class_points_at_the_class_name(cli: Cli, good: ManifestRepo) -> None:
    good.write("vms/linux-vm.yaml", docs(vm_yaml(vmclass="gold"), disk_yaml("linux-vm-root")))

    finding = expect_one(
        cli,
        good,
        rule="reference",
        path="vms/linux-vm.yaml",
        at="virtualMachineClassName",
        obj=LINUX_VM,
    )
    assert "gold" in finding["message"]


def test_missing_disk_points_at_its_entry_in_block_device_refs(
    cli: Cli, good: ManifestRepo
) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(disks=["linux-vm-root", "linux-vm-data"]), disk_yaml("linux-vm-root")),
    )

    finding = expect_one(
        cli,
        good,
        rule="reference",
        path="vms/linux-vm.yaml",
        at="name: linux-vm-data",
        obj=LINUX_VM,
    )
    assert "VirtualDisk linux-vm-data" in finding["message"]


@pytest.mark.parametrize("kind", ["VirtualImage", "ClusterVirtualImage"])
def test_missing_image_points_at_its_entry(cli: Cli, good: ManifestRepo, kind: str) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(disks=["linux-vm-root", f"{kind}/ubuntu-iso"]), disk_yaml("linux-vm-root")),
    )

    finding = expect_one(
        cli,
        good,
        rule="reference",
        path="vms/linux-vm.yaml",
        at="name: ubuntu-iso",
        obj=LINUX_VM,
    )
    assert f"{kind} ubuntu-iso" in finding["message"]


def test_image_in_another_namespace_does_not_count(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "image.yaml",
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualImage\n"
        "metadata:\n  name: ubuntu\n  namespace: other\n"
        "spec:\n  dataSource:\n    type: HTTP\n    http:\n      url: http://x/u.img\n",
    )
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(disks=["linux-vm-root", "VirtualImage/ubuntu"]), disk_yaml("linux-vm-root")),
    )

    expect_one(
        cli, good, rule="reference", path="vms/linux-vm.yaml", at="name: ubuntu", obj=LINUX_VM
    )


def test_missing_ip_address_points_at_its_name(cli: Cli, good: ManifestRepo) -> None:
    good.write("vms/linux-vm.yaml", docs(vm_yaml(ip="linux-vm-ip"), disk_yaml("linux-vm-root")))

    finding = expect_one(
        cli,
        good,
        rule="reference",
        path="vms/linux-vm.yaml",
        at="virtualMachineIPAddressName",
        obj=LINUX_VM,
    )
    assert "linux-vm-ip" in finding["message"]


def test_missing_secret_points_at_the_user_data_ref(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(extra_spec=USER_DATA_REF), disk_yaml("linux-vm-root")),
    )

    finding = expect_one(
        cli,
        good,
        rule="reference",
        path="vms/linux-vm.yaml",
        at="name: cloud-init",
        obj=LINUX_VM,
    )
    assert "Secret cloud-init" in finding["message"]


@pytest.mark.parametrize(
    ("secret_type", "key", "says"),
    [
        ("Opaque", "userData", "type"),
        ("provisioning.virtualization.deckhouse.io/cloud-init", "config", "userData"),
    ],
)
def test_secret_of_the_wrong_type_or_without_user_data_is_a_reference_error(
    cli: Cli, good: ManifestRepo, secret_type: str, key: str, says: str
) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(extra_spec=USER_DATA_REF), disk_yaml("linux-vm-root")),
    )
    good.write(
        "secret.yaml",
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: cloud-init\ntype: {secret_type}\n"
        f"stringData:\n  {key}: '#cloud-config'\n",
    )

    finding = expect_one(
        cli,
        good,
        rule="reference",
        path="vms/linux-vm.yaml",
        at="name: cloud-init",
        obj=LINUX_VM,
    )
    assert says in finding["message"]


def test_present_cloud_init_secret_satisfies_the_reference(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(extra_spec=USER_DATA_REF), disk_yaml("linux-vm-root")),
    )
    good.write(
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cloud-init\n"
        "type: provisioning.virtualization.deckhouse.io/cloud-init\n"
        "data:\n  userData: I2Nsb3VkLWNvbmZpZwo=\n",
    )

    assert validate_json(cli, good) == (0, [])


def test_operation_for_a_missing_vm_is_a_reference_error(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "ops.yaml",
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualMachineOperation\n"
        "metadata:\n  name: restart-db\nspec:\n  type: Restart\n  virtualMachineName: db\n",
    )

    expect_one(
        cli,
        good,
        rule="reference",
        path="ops.yaml",
        at="virtualMachineName",
        obj="VirtualMachineOperation/default/restart-db",
    )


# --- duplicate ----------------------------------------------------------------------


def test_duplicate_object_is_reported_at_the_second_naming_the_first(
    cli: Cli, good: ManifestRepo
) -> None:
    good.write("vms/zz-copy.yaml", vm_yaml(memory="2Gi"))

    finding = expect_one(
        cli, good, rule="duplicate", path="vms/zz-copy.yaml", at="name: linux-vm", obj=LINUX_VM
    )
    first_line = good.line_of("vms/linux-vm.yaml", "apiVersion")
    assert f"vms/linux-vm.yaml:{first_line}" in finding["message"]


def test_omitted_namespace_collides_with_default(cli: Cli, good: ManifestRepo) -> None:
    good.write("vms/zz-copy.yaml", vm_yaml(namespace="default"))

    expect_one(
        cli, good, rule="duplicate", path="vms/zz-copy.yaml", at="name: linux-vm", obj=LINUX_VM
    )


def test_same_name_in_another_namespace_or_kind_is_no_duplicate(
    cli: Cli, good: ManifestRepo
) -> None:
    good.write(
        "vms/prod.yaml",
        docs(vm_yaml(namespace="prod"), disk_yaml("linux-vm-root", namespace="prod")),
    )
    good.write("disks/linux-vm.yaml", disk_yaml("linux-vm"))

    assert validate_json(cli, good) == (0, [])


def test_duplicate_within_one_file(cli: Cli, good: ManifestRepo) -> None:
    good.write("disks.yaml", docs(disk_yaml("spare"), disk_yaml("spare", size="20Gi")))

    expect_one(
        cli,
        good,
        rule="duplicate",
        path="disks.yaml",
        at="name: spare",
        obj="VirtualDisk/default/spare",
        after="size: 10Gi",
    )


# --- topology -----------------------------------------------------------------------


def test_topology_error_points_at_cores(cli: Cli, good: ManifestRepo) -> None:
    vmclass = REFERENCE_CLASS.replace("max: 8\n", "max: 64\n")
    good.write("classes/generic.yaml", vmclass)
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(cores=34, memory="16Gi", fraction="100%"), disk_yaml("linux-vm-root")),
    )

    finding = expect_one(
        cli, good, rule="topology", path="vms/linux-vm.yaml", at="cores:", obj=LINUX_VM
    )
    assert "32 or 36" in finding["message"]


# --- userdata-size ------------------------------------------------------------------


def _inline_user_data(text: str) -> str:
    return f'provisioning:\n  type: UserData\n  userData: "{text}"\n'


def test_inline_user_data_over_2048_bytes_is_refused(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(extra_spec=_inline_user_data("x" * 2049)), disk_yaml("linux-vm-root")),
    )

    finding = expect_one(
        cli, good, rule="userdata-size", path="vms/linux-vm.yaml", at="userData:", obj=LINUX_VM
    )
    assert "2049" in finding["message"] and "2048" in finding["message"]


def test_inline_user_data_of_exactly_2048_bytes_is_accepted(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(extra_spec=_inline_user_data("x" * 2048)), disk_yaml("linux-vm-root")),
    )

    assert validate_json(cli, good) == (0, [])


def test_user_data_limit_counts_bytes_not_characters(cli: Cli, good: ManifestRepo) -> None:
    # 1,100 characters of two bytes each: 2,200 bytes.
    good.write(
        "vms/linux-vm.yaml",
        docs(vm_yaml(extra_spec=_inline_user_data("é" * 1100)), disk_yaml("linux-vm-root")),
    )

    finding = expect_one(
        cli, good, rule="userdata-size", path="vms/linux-vm.yaml", at="userData:", obj=LINUX_VM
    )
    assert "2200" in finding["message"]


# --- ip-range -----------------------------------------------------------------------


def _with_static_ip(repo: ManifestRepo, address: str) -> None:
    repo.write(
        "vms/linux-vm.yaml",
        docs(
            vm_yaml(ip="linux-vm-ip"),
            disk_yaml("linux-vm-root"),
            "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
            "kind: VirtualMachineIPAddress\n"
            "metadata:\n  name: linux-vm-ip\n"
            f"spec:\n  type: Static\n  staticIP: {address}\n",
        ),
    )


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("10.66.11.5", "outside"),
        ("10.66.10.0", "network address"),
        ("10.66.10.255", "broadcast address"),
        ("192.168.1.10", "10.66.10.0/24"),
    ],
)
def test_static_ip_that_cannot_be_leased_is_an_ip_range_error(
    cli: Cli, good: ManifestRepo, address: str, says: str
) -> None:
    _with_static_ip(good, address)

    finding = expect_one(
        cli,
        good,
        rule="ip-range",
        path="vms/linux-vm.yaml",
        at="staticIP:",
        obj="VirtualMachineIPAddress/default/linux-vm-ip",
        extra=("--cidr", "10.66.10.0/24"),
    )
    assert address in finding["message"]
    assert says in finding["message"]


@pytest.mark.parametrize("address", ["10.66.10.1", "10.66.10.254", "10.77.0.9"])
def test_static_ip_inside_any_cidr_passes(cli: Cli, good: ManifestRepo, address: str) -> None:
    _with_static_ip(good, address)

    assert validate_json(cli, good, "--cidr", "10.66.10.0/24", "--cidr", "10.77.0.0/16") == (0, [])


def test_without_cidr_the_ip_range_checks_are_skipped(cli: Cli, good: ManifestRepo) -> None:
    _with_static_ip(good, "10.66.10.0")

    assert validate_json(cli, good) == (0, [])


def test_pool_can_come_from_the_host_config(cli: Cli, good: ManifestRepo) -> None:
    _with_static_ip(good, "10.66.11.5")
    config = good.root.parent / "config.yaml"
    config.write_text("virtualMachineCIDRs:\n  - 10.66.10.0/24\n")

    code, findings = validate_json(cli, good, "--config", str(config))

    assert code == 1
    assert [f["rule"] for f in findings] == ["ip-range"]


# --- conflict -----------------------------------------------------------------------


def test_one_ip_address_claimed_by_two_vms(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "vms/linux-vm.yaml",
        docs(
            vm_yaml(ip="shared-ip"),
            disk_yaml("linux-vm-root"),
            vm_yaml("web", ip="shared-ip"),
            disk_yaml("web-root"),
            "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualMachineIPAddress\n"
            "metadata:\n  name: shared-ip\nspec:\n  type: Auto\n",
        ),
    )

    finding = expect_one(
        cli,
        good,
        rule="conflict",
        path="vms/linux-vm.yaml",
        at="virtualMachineIPAddressName",
        obj="VirtualMachine/default/web",
        after="name: web",
    )
    assert "shared-ip" in finding["message"] and "linux-vm" in finding["message"]


def test_one_static_address_in_two_ip_objects(cli: Cli, good: ManifestRepo) -> None:
    ip = (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualMachineIPAddress\n"
        "metadata:\n  name: {name}\nspec:\n  type: Static\n  staticIP: 10.66.10.7\n"
    )
    good.write("ips.yaml", docs(ip.format(name="a-ip"), ip.format(name="b-ip")))

    finding = expect_one(
        cli,
        good,
        rule="conflict",
        path="ips.yaml",
        at="staticIP",
        after="name: b-ip",
        obj="VirtualMachineIPAddress/default/b-ip",
    )
    assert "10.66.10.7" in finding["message"]


def test_one_disk_used_by_two_vms(cli: Cli, good: ManifestRepo) -> None:
    good.write("vms/web.yaml", vm_yaml("web", disks=["linux-vm-root"]))

    finding = expect_one(
        cli,
        good,
        rule="conflict",
        path="vms/web.yaml",
        at="name: linux-vm-root",
        obj="VirtualMachine/default/web",
    )
    assert "linux-vm-root" in finding["message"] and "linux-vm" in finding["message"]


def test_hot_plugging_a_disk_another_vm_boots_from_is_a_conflict(
    cli: Cli, good: ManifestRepo
) -> None:
    good.write(
        "attach.yaml",
        "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
        "kind: VirtualMachineBlockDeviceAttachment\n"
        "metadata:\n  name: steal\n"
        "spec:\n  virtualMachineName: linux-vm\n"
        "  blockDeviceRef:\n    kind: VirtualDisk\n    name: linux-vm-root\n",
    )

    expect_one(
        cli,
        good,
        rule="conflict",
        path="attach.yaml",
        at="name: linux-vm-root",
        obj="VirtualMachineBlockDeviceAttachment/default/steal",
    )


def test_one_image_may_back_many_vms(cli: Cli, good: ManifestRepo) -> None:
    image = (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: ClusterVirtualImage\n"
        "metadata:\n  name: ubuntu\nspec:\n  dataSource:\n    type: HTTP\n"
        "    http:\n      url: https://example.org/ubuntu.img\n"
    )
    good.write("image.yaml", image)
    good.write(
        "vms/two.yaml",
        docs(
            vm_yaml("a", disks=["a-root", "ClusterVirtualImage/ubuntu"]),
            disk_yaml("a-root"),
            vm_yaml("b", disks=["b-root", "ClusterVirtualImage/ubuntu"]),
            disk_yaml("b-root"),
        ),
    )

    assert validate_json(cli, good) == (0, [])
