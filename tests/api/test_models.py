"""The manifest API: the platform's defaults, exact quantities, strictness."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.api import (
    Percent,
    Quantity,
    RestartApprovalMode,
    RunPolicy,
    Secret,
    VirtualDisk,
    VirtualMachine,
    VirtualMachineClass,
    VirtualMachineIPAddress,
)
from reconciler.api.quantity import QuantityError, parse_quantity
from reconciler.loader import load_text
from tests.conftest import REFERENCE_CLASS, vm_yaml


def _vm(text: str) -> VirtualMachine:
    result = load_text(text, "vm.yaml")
    assert result.findings == [], result.findings
    [loaded] = result.objects
    assert isinstance(loaded.model, VirtualMachine)
    return loaded.model


def _raw_vm(**spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "virtualMachineClassName": "generic",
        "cpu": {"cores": 1},
        "memory": {"size": "1Gi"},
        "blockDeviceRefs": [{"kind": "VirtualDisk", "name": "root"}],
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "virtualization.deckhouse.io/v1alpha2",
        "kind": "VirtualMachine",
        "metadata": {"name": "vm"},
        "spec": spec,
    }


def test_vm_gets_the_platform_defaults() -> None:
    vm = _vm(vm_yaml(fraction=None))

    assert vm.namespace == "default"
    assert vm.spec.run_policy is RunPolicy.ALWAYS_ON_UNLESS_STOPPED_MANUALLY
    assert vm.spec.cpu.core_fraction == Percent(100)
    assert vm.spec.live_migration_policy.value == "PreferSafe"
    assert vm.spec.restart_approval_mode is RestartApprovalMode.MANUAL
    assert vm.spec.termination_grace_period_seconds == 60
    assert vm.spec.enable_paravirtualization is True
    assert vm.spec.os_type.value == "Generic"
    assert vm.spec.bootloader.value == "BIOS"
    assert vm.spec.networks == []
    assert vm.spec.provisioning is None


def test_unwritten_lists_are_empty_and_each_models_own() -> None:
    first, second = _vm(vm_yaml()), _vm(vm_yaml())

    assert first.spec.tolerations == first.spec.topology_spread_constraints == []
    assert first.spec.networks is not second.spec.networks
    assert first.spec.tolerations is not second.spec.tolerations


def test_written_values_override_the_defaults() -> None:
    vm = _vm(
        vm_yaml(
            namespace="prod",
            fraction="25%",
            extra_spec="runPolicy: Manual\nliveMigrationPolicy: AlwaysSafe\n"
            "disruptions:\n  restartApprovalMode: Automatic\nbootloader: EFI\n",
        )
    )

    assert vm.namespace == "prod"
    assert vm.spec.run_policy is RunPolicy.MANUAL
    assert vm.spec.cpu.core_fraction == Percent(25)
    assert vm.spec.live_migration_policy.value == "AlwaysSafe"
    assert vm.spec.restart_approval_mode is RestartApprovalMode.AUTOMATIC
    assert vm.spec.bootloader.value == "EFI"


def test_cluster_kinds_have_no_namespace() -> None:
    [loaded] = load_text(REFERENCE_CLASS, "class.yaml").objects

    assert isinstance(loaded.model, VirtualMachineClass)
    assert loaded.model.namespace == ""
    assert str(loaded.id) == "VirtualMachineClass/generic"


def test_cluster_kind_with_a_namespace_is_refused() -> None:
    text = REFERENCE_CLASS.replace("  name: generic\n", "  name: generic\n  namespace: x\n")

    [finding] = load_text(text, "class.yaml").findings

    assert finding.rule.value == "schema"
    assert "cluster-scoped" in finding.message


def test_secret_defaults_to_opaque_and_decodes_its_data() -> None:
    secret = Secret.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"userData": "I2Nsb3VkLWNvbmZpZwo="},
            "stringData": {"extra": "plain"},
        }
    )

    assert secret.type == "Opaque"
    assert secret.value("userData") == b"#cloud-config\n"
    assert secret.value("extra") == b"plain"
    assert "I2Nsb3Vk" not in repr(secret)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Gi", 2**30),
        ("512Mi", 512 * 2**20),
        ("1.5Gi", 3 * 2**29),
        ("10Gi", 10 * 2**30),
        ("2Ti", 2 * 2**40),
        ("64Ki", 64 * 1024),
        ("1G", 10**9),
        ("500M", 5 * 10**8),
        ("1k", 1000),
        ("1073741824", 2**30),
        ("100m", Fraction(1, 10)),
        (".5Gi", 2**29),
    ],
)
def test_quantities_parse_to_exact_numbers(text: str, value: int | Fraction) -> None:
    assert parse_quantity(text) == value
    assert Quantity(text).text == text


@pytest.mark.parametrize(
    "text", ["1GB", "1gi", "one", "", "-1Gi", "Gi", "1 Gi", "1.2.3Mi", "1e3", "0x10"]
)
def test_bad_quantities_are_rejected(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_quantity_equality_is_by_value_not_by_spelling() -> None:
    assert Quantity("1Gi") == Quantity("1024Mi")
    assert Quantity("1G") != Quantity("1Gi")
    assert Quantity("1Gi").bytes == 1073741824


def test_fractional_byte_counts_round_up() -> None:
    assert Quantity("1.5").bytes == 2


@pytest.mark.parametrize(("text", "value"), [("10%", 10), ("1%", 1), ("100%", 100), ("5%", 5)])
def test_core_fraction_percentages(text: str, value: int) -> None:
    vm = VirtualMachine.model_validate(_raw_vm(cpu={"cores": 1, "coreFraction": text}))

    assert vm.spec.cpu.core_fraction.value == value
    assert vm.to_manifest()["spec"]["cpu"]["coreFraction"] == text


@pytest.mark.parametrize("bad", ["0%", "101%", "10", "10.5%", "Auto", "ten%", "-5%", True, 10])
def test_bad_core_fractions_are_rejected(bad: object) -> None:
    # The CRD takes a string `N%`, 1 <= N <= 100; Auto needs the platform's autoscaler.
    with pytest.raises(ValidationError, match="coreFraction"):
        VirtualMachine.model_validate(_raw_vm(cpu={"cores": 1, "coreFraction": bad}))


@pytest.mark.parametrize("bad", ["1GB", "lots", "0", "0Gi", True, 1.5, None])
def test_bad_memory_sizes_are_rejected(bad: object) -> None:
    with pytest.raises(ValidationError, match="memory"):
        VirtualMachine.model_validate(_raw_vm(memory={"size": bad}))


def test_class_fractions_keep_the_form_they_were_written_in() -> None:
    [loaded] = load_text(REFERENCE_CLASS, "class.yaml").objects

    dumped = loaded.model.to_manifest()

    assert dumped["spec"]["sizingPolicies"][0]["coreFractions"] == [5, 10, 20, 50, 100]
    assert dumped["spec"]["sizingPolicies"][0]["memory"] == {"min": "1Gi", "max": "8Gi"}


@pytest.mark.parametrize(
    "where",
    [
        ("bogus",),
        ("metadata", "uid"),
        ("spec", "cpuPinning"),
        ("spec", "cpu", "threads"),
        ("spec", "memory", "hugepages"),
        ("spec", "blockDeviceRefs", 0, "readonly"),
        ("spec", "disruptions", "mode"),
    ],
)
def test_unknown_fields_are_rejected_at_every_level(where: tuple[str | int, ...]) -> None:
    raw = _raw_vm(disruptions={})
    target: Any = raw
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = "x"

    with pytest.raises(ValidationError) as refused:
        VirtualMachine.model_validate(raw)

    [error] = refused.value.errors()
    assert error["type"] == "extra_forbidden"
    assert error["loc"][-1] == where[-1]


def test_manifest_round_trips_without_its_defaults() -> None:
    raw = _raw_vm(runPolicy="AlwaysOn", cpu={"cores": 4, "coreFraction": "50%"})

    vm = VirtualMachine.model_validate(raw)

    assert vm.to_manifest() == raw
    assert VirtualMachine.model_validate(vm.to_manifest()) == vm


@pytest.mark.parametrize(
    ("provisioning", "says"),
    [
        ({"type": "UserData"}, "needs userData"),
        ({"type": "UserDataRef", "userData": "#cloud-config"}, "needs userDataRef"),
        (
            {"type": "UserData", "userData": "x", "userDataRef": {"name": "s"}},
            "takes only userData",
        ),
        ({"type": "Ignition", "userData": "x"}, "type"),
    ],
)
def test_provisioning_payload_must_match_its_type(provisioning: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        VirtualMachine.model_validate(_raw_vm(provisioning=provisioning))


def test_vm_needs_at_least_one_and_at_most_16_block_devices() -> None:
    with pytest.raises(ValidationError, match="blockDeviceRefs"):
        VirtualMachine.model_validate(_raw_vm(blockDeviceRefs=[]))
    refs = [{"kind": "VirtualDisk", "name": f"d{n}"} for n in range(17)]
    with pytest.raises(ValidationError, match="blockDeviceRefs"):
        VirtualMachine.model_validate(_raw_vm(blockDeviceRefs=refs))


def test_same_device_twice_in_block_device_refs_is_refused() -> None:
    refs = [{"kind": "VirtualDisk", "name": "d"}, {"kind": "VirtualDisk", "name": "d"}]

    with pytest.raises(ValidationError, match="twice"):
        VirtualMachine.model_validate(_raw_vm(blockDeviceRefs=refs))


def test_vm_name_is_at_most_63_characters() -> None:
    raw = _raw_vm()
    raw["metadata"]["name"] = "a" * 64

    with pytest.raises(ValidationError, match="63"):
        VirtualMachine.model_validate(raw)


def test_kubevirt_label_keys_are_reserved() -> None:
    raw = _raw_vm()
    raw["metadata"]["labels"] = {"kubevirt.io/domain": "x"}

    with pytest.raises(ValidationError, match=r"kubevirt\.io"):
        VirtualMachine.model_validate(raw)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"type": "Static"}, "staticIP"),
        ({"type": "Auto", "staticIP": "10.0.0.5"}, "staticIP"),
        ({"type": "Static", "staticIP": "10.0.0.300"}, "IPv4"),
        ({"type": "Static", "staticIP": "fe80::1"}, "IPv4"),
    ],
)
def test_ip_address_type_and_static_ip_must_agree(spec: dict[str, Any], says: str) -> None:
    raw = {
        "apiVersion": "virtualization.deckhouse.io/v1alpha2",
        "kind": "VirtualMachineIPAddress",
        "metadata": {"name": "ip"},
        "spec": spec,
    }

    with pytest.raises(ValidationError, match=says):
        VirtualMachineIPAddress.model_validate(raw)


def test_disk_needs_a_size_or_a_data_source() -> None:
    raw = {
        "apiVersion": "virtualization.deckhouse.io/v1alpha2",
        "kind": "VirtualDisk",
        "metadata": {"name": "d"},
        "spec": {},
    }

    with pytest.raises(ValidationError, match="size"):
        VirtualDisk.model_validate(raw)
