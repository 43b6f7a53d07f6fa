"""Class sizing policies and the SizingPolicyMatched verdict (dvp-virtual-machines.txt,
"Virtual Machine resource configuration and sizing policy"; dvp-api.md §4.3-4.4)."""

from __future__ import annotations

import pytest

from reconciler.api import VirtualMachine, VirtualMachineClass
from reconciler.loader import load_text
from reconciler.rules.sizing import effective_core_fraction, sizing_verdict
from tests.conftest import (
    REFERENCE_CLASS,
    Cli,
    ManifestRepo,
    disk_yaml,
    docs,
    validate_json,
    vm_yaml,
)


def _class_yaml(policies: str, name: str = "sized") -> str:
    return (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
        "kind: VirtualMachineClass\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n  cpu:\n    type: Host\n  sizingPolicies:\n" + policies
    )


def _given(repo: ManifestRepo, vm: str, vmclass: str = REFERENCE_CLASS) -> None:
    repo.write("class.yaml", vmclass)
    repo.write("vm.yaml", docs(vm, disk_yaml("linux-vm-root")))


def _verdict(vm: str, vmclass: str = REFERENCE_CLASS):  # type: ignore[no-untyped-def]
    loaded = load_text(docs(vmclass, vm), "x.yaml")
    assert not loaded.findings, loaded.findings
    cls = next(o.model for o in loaded.objects if isinstance(o.model, VirtualMachineClass))
    machine = next(o.model for o in loaded.objects if isinstance(o.model, VirtualMachine))
    return sizing_verdict(machine.spec, cls)


@pytest.mark.parametrize(
    ("cores", "memory", "fraction"),
    [
        (1, "1Gi", "5%"),
        (2, "4Gi", "10%"),
        (4, "8Gi", "100%"),
        (5, "5Gi", "20%"),
        (6, "16Gi", "50%"),
        (8, "12Gi", "100%"),
        (2, "1536Mi", "20%"),
    ],
)
def test_vm_inside_the_reference_class_ranges_validates_clean(
    cli: Cli, repo: ManifestRepo, cores: int, memory: str, fraction: str
) -> None:
    _given(repo, vm_yaml(cores=cores, memory=memory, fraction=fraction))

    code, findings = validate_json(cli, repo)

    assert (code, findings) == (0, [])


@pytest.mark.parametrize(
    ("cores", "memory", "fraction", "field", "range_", "says"),
    [
        (2, "9Gi", "10%", "size:", "1-4", "8Gi"),
        (2, "512Mi", "10%", "size:", "1-4", "1Gi"),
        (6, "4Gi", "20%", "size:", "5-8", "5Gi"),
        (6, "17Gi", "20%", "size:", "5-8", "16Gi"),
        (6, "8Gi", "10%", "coreFraction:", "5-8", "10%"),
        (3, "2Gi", "30%", "coreFraction:", "1-4", "30%"),
    ],
)
def test_vm_outside_its_range_gets_sizing_policy_naming_class_and_range(
    cli: Cli,
    repo: ManifestRepo,
    cores: int,
    memory: str,
    fraction: str,
    field: str,
    range_: str,
    says: str,
) -> None:
    _given(repo, vm_yaml(cores=cores, memory=memory, fraction=fraction))

    code, findings = validate_json(cli, repo)

    assert code == 1
    [finding] = findings
    assert finding["rule"] == "sizing-policy"
    assert finding["object"] == "VirtualMachine/default/linux-vm"
    assert finding["path"] == "vm.yaml"
    assert (finding["line"], finding["column"]) == repo.where("vm.yaml", field)
    assert "generic" in finding["message"]
    assert range_ in finding["message"]
    assert says in finding["message"]


def test_core_count_outside_every_range_lists_the_ranges(cli: Cli, repo: ManifestRepo) -> None:
    # 9..16 cores are a valid topology but the reference class stops at 8.
    _given(repo, vm_yaml(cores=12, memory="12Gi", fraction="100%"))

    code, findings = validate_json(cli, repo)

    assert code == 1
    [finding] = findings
    assert finding["rule"] == "sizing-policy"
    assert finding["line"] == repo.line_of("vm.yaml", "cores: 12")
    assert "generic" in finding["message"]
    assert "1-4" in finding["message"] and "5-8" in finding["message"]


def test_every_broken_limit_of_a_policy_is_named_in_one_finding() -> None:
    verdict = _verdict(vm_yaml(cores=6, memory="4Gi", fraction="5%"))

    assert not verdict.matched
    assert "coreFraction 5%" in verdict.message
    assert "5Gi" in verdict.message


def test_fraction_is_checked_against_the_allowed_list_not_a_range() -> None:
    # 20% and 50% are allowed for 1-4 cores, 30% between them is not.
    assert _verdict(vm_yaml(cores=2, memory="2Gi", fraction="20%")).matched
    assert _verdict(vm_yaml(cores=2, memory="2Gi", fraction="50%")).matched
    assert not _verdict(vm_yaml(cores=2, memory="2Gi", fraction="30%")).matched


def test_omitted_fraction_is_100_percent_which_the_reference_class_allows() -> None:
    verdict = _verdict(vm_yaml(cores=2, memory="2Gi", fraction=None))

    assert verdict.matched


def test_omitted_fraction_is_refused_when_the_policy_forbids_100_percent(
    cli: Cli, repo: ManifestRepo
) -> None:
    vmclass = _class_yaml("    - cores: {min: 1, max: 4}\n      coreFractions: [10, 20]\n")
    _given(repo, vm_yaml(vmclass="sized", cores=2, fraction=None), vmclass)

    code, findings = validate_json(cli, repo)

    assert code == 1
    [finding] = findings
    assert finding["rule"] == "sizing-policy"
    assert "10%" in finding["message"] and "20%" in finding["message"]


def test_omitted_fraction_takes_the_policy_default() -> None:
    vmclass = _class_yaml(
        "    - cores: {min: 1, max: 4}\n      coreFractions: [10, 20]\n"
        "      defaultCoreFraction: 20\n"
    )
    vm = vm_yaml(vmclass="sized", cores=2, fraction=None)
    loaded = load_text(docs(vmclass, vm), "x.yaml")
    cls = next(o.model for o in loaded.objects if isinstance(o.model, VirtualMachineClass))
    machine = next(o.model for o in loaded.objects if isinstance(o.model, VirtualMachine))

    assert sizing_verdict(machine.spec, cls).matched
    assert effective_core_fraction(machine.spec, cls).value == 20


PER_CORE = _class_yaml(
    "    - cores: {min: 1, max: 8}\n"
    "      memory:\n"
    "        perCore:\n"
    "          min: 1Gi\n"
    "          max: 2Gi\n"
)


@pytest.mark.parametrize(
    ("cores", "memory", "matched", "says"),
    [
        (4, "4Gi", True, ""),
        (4, "8Gi", True, ""),
        (4, "6Gi", True, ""),
        (4, "3Gi", False, "below the minimum 1Gi per core"),
        (4, "12Gi", False, "above the maximum 2Gi per core"),
        (8, "20Gi", False, "above the maximum 2Gi per core"),
    ],
)
def test_memory_per_core_limits(cores: int, memory: str, matched: bool, says: str) -> None:
    verdict = _verdict(vm_yaml(vmclass="sized", cores=cores, memory=memory), PER_CORE)

    assert verdict.matched is matched
    assert says in verdict.message
    if not matched:
        assert "sized" in verdict.message


def test_memory_min_and_max_are_inclusive() -> None:
    assert _verdict(vm_yaml(cores=1, memory="1Gi")).matched
    assert _verdict(vm_yaml(cores=1, memory="8Gi")).matched
    assert not _verdict(vm_yaml(cores=1, memory="1023Mi")).matched
    assert not _verdict(vm_yaml(cores=1, memory="8193Mi")).matched


def test_memory_step_names_the_nearest_sizes() -> None:
    vmclass = _class_yaml(
        "    - cores: {min: 1, max: 4}\n      memory: {min: 1Gi, max: 8Gi, step: 1Gi}\n"
    )

    assert _verdict(vm_yaml(vmclass="sized", memory="3Gi"), vmclass).matched
    verdict = _verdict(vm_yaml(vmclass="sized", memory="1536Mi"), vmclass)
    assert not verdict.matched
    assert "1Gi" in verdict.message and "2Gi" in verdict.message


def test_core_step_names_the_nearest_counts() -> None:
    vmclass = _class_yaml("    - cores: {min: 2, max: 16, step: 4}\n")

    assert _verdict(vm_yaml(vmclass="sized", cores=6), vmclass).matched
    assert _verdict(vm_yaml(vmclass="sized", cores=16), vmclass).matched
    verdict = _verdict(vm_yaml(vmclass="sized", cores=8), vmclass)
    assert not verdict.matched
    assert "6 or 10" in verdict.message


def test_first_policy_holding_the_count_is_the_one_applied() -> None:
    # 4 cores falls in 1-4, whose 8Gi maximum applies, not 5-8's 16Gi.
    verdict = _verdict(vm_yaml(cores=4, memory="12Gi", fraction="20%"))

    assert not verdict.matched
    assert "1-4" in verdict.message


def test_class_without_sizing_policies_accepts_any_size(cli: Cli, repo: ManifestRepo) -> None:
    vmclass = (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualMachineClass\n"
        "metadata:\n  name: free\nspec:\n  cpu:\n    type: Host\n"
    )
    _given(repo, vm_yaml(vmclass="free", cores=16, memory="256Gi", fraction="1%"), vmclass)

    assert validate_json(cli, repo) == (0, [])


def test_overlapping_policy_ranges_are_a_schema_error(cli: Cli, repo: ManifestRepo) -> None:
    # The platform misses a range strictly containing a later one (dvp-api.md §10b).
    vmclass = _class_yaml("    - cores: {min: 1, max: 16}\n    - cores: {min: 4, max: 8}\n")
    repo.write("class.yaml", vmclass)

    code, findings = validate_json(cli, repo)

    assert code == 1
    [finding] = findings
    assert finding["rule"] == "schema"
    assert finding["object"] == "VirtualMachineClass/sized"
    assert finding["line"] == repo.line_of("class.yaml", "{min: 4, max: 8}")


def test_v1alpha3_percent_strings_work_like_v1alpha2_integers() -> None:
    vmclass = _class_yaml('    - cores: {min: 1, max: 4}\n      coreFractions: ["10%", "50%"]\n')

    assert _verdict(vm_yaml(vmclass="sized", fraction="50%"), vmclass).matched
    assert not _verdict(vm_yaml(vmclass="sized", fraction="20%"), vmclass).matched
