"""Sizes and numbers have upper bounds, checked by `validate` (issue 12, row 15).

`size: 99999999999999999999999999999999Ei` used to validate and fail later, inside
libvirt, in the middle of a pass. A disk is at most 1 PiB, memory at most 4 PiB
(api/quantity.py says why), and the integers the platform's CRDs type as int32 or
int64 at most what those hold.
"""

from __future__ import annotations

import pytest

from tests.conftest import (
    OPEN_CLASS,
    REFERENCE_CLASS,
    Cli,
    ManifestRepo,
    disk_yaml,
    docs,
    validate_json,
    vm_yaml,
)

ABSURD = "99999999999999999999999999999999Ei"


def only_finding(cli: Cli, repo: ManifestRepo) -> dict[str, object]:
    code, findings = validate_json(cli, repo)
    assert code == 1
    assert len(findings) == 1, findings
    return findings[0]


@pytest.mark.parametrize("size", [ABSURD, "1025Ti", "1125899906842625"])
def test_a_disk_over_1_pib_is_a_finding_at_its_size(
    cli: Cli, repo: ManifestRepo, size: str
) -> None:
    repo.write("classes/generic.yaml", REFERENCE_CLASS)
    repo.write("vm.yaml", docs(vm_yaml(), disk_yaml("linux-vm-root", size=size)))

    finding = only_finding(cli, repo)

    assert finding["line"] == repo.line_of("vm.yaml", size)
    assert finding["object"] == "VirtualDisk/default/linux-vm-root"
    assert finding["rule"] == "schema"
    assert "more than the 1Pi allowed" in str(finding["message"])


def test_a_disk_of_1_pib_is_valid(cli: Cli, repo: ManifestRepo) -> None:
    repo.write("classes/open.yaml", OPEN_CLASS)
    repo.write("vm.yaml", docs(vm_yaml(vmclass="open"), disk_yaml("linux-vm-root", size="1Pi")))

    assert validate_json(cli, repo) == (0, [])


def test_memory_over_4_pib_is_a_finding_at_its_size(cli: Cli, repo: ManifestRepo) -> None:
    repo.write("classes/open.yaml", OPEN_CLASS)
    repo.write("vm.yaml", docs(vm_yaml(vmclass="open", memory=ABSURD), disk_yaml("linux-vm-root")))

    finding = only_finding(cli, repo)

    assert finding["line"] == repo.line_of("vm.yaml", ABSURD)
    assert "more than the 4Pi allowed" in str(finding["message"])


def test_memory_of_4_pib_is_valid(cli: Cli, repo: ManifestRepo) -> None:
    repo.write("classes/open.yaml", OPEN_CLASS)
    repo.write("vm.yaml", docs(vm_yaml(vmclass="open", memory="4Pi"), disk_yaml("linux-vm-root")))

    assert validate_json(cli, repo) == (0, [])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            OPEN_CLASS + "  sizingPolicies:\n    - cores: {min: 1, max: 4}\n"
            f"      memory: {{max: {ABSURD}}}\n",
            ABSURD,
        ),
        (
            "apiVersion: reconciler.vm-gitops.io/v1alpha1\nkind: Node\nmetadata:\n  name: hv\n"
            f"spec:\n  capacity:\n    memory: {ABSURD}\n",
            ABSURD,
        ),
        (
            "apiVersion: reconciler.vm-gitops.io/v1alpha1\nkind: Node\nmetadata:\n  name: hv\n"
            "spec:\n  capacity:\n    cpu: 99999999999999999999\n",
            "99999999999999999999",
        ),
    ],
    ids=["class memory", "node memory", "node cpu"],
)
def test_class_and_node_sizes_have_the_same_bounds(
    cli: Cli, repo: ManifestRepo, text: str, needle: str
) -> None:
    repo.write("objects.yaml", text)

    finding = only_finding(cli, repo)

    assert finding["line"] == repo.line_of("objects.yaml", needle)


@pytest.mark.parametrize(
    ("extra_spec", "needle"),
    [
        ("terminationGracePeriodSeconds: 9223372036854775808\n", "9223372036854775808"),
        ("terminationGracePeriodSeconds: 1" + "0" * 400 + "\n", "1" + "0" * 400),
    ],
)
def test_a_grace_period_beyond_int64_is_a_finding(
    cli: Cli, repo: ManifestRepo, extra_spec: str, needle: str
) -> None:
    repo.write("classes/open.yaml", OPEN_CLASS)
    repo.write(
        "vm.yaml", docs(vm_yaml(vmclass="open", extra_spec=extra_spec), disk_yaml("linux-vm-root"))
    )

    finding = only_finding(cli, repo)

    assert finding["line"] == repo.line_of("vm.yaml", needle)


def test_a_boot_order_beyond_int64_is_a_finding(cli: Cli, repo: ManifestRepo) -> None:
    repo.write("classes/open.yaml", OPEN_CLASS)
    text = vm_yaml(vmclass="open").replace(
        "name: linux-vm-root\n", "name: linux-vm-root\n      bootOrder: 9223372036854775808\n"
    )
    repo.write("vm.yaml", docs(text, disk_yaml("linux-vm-root")))

    finding = only_finding(cli, repo)

    assert finding["line"] == repo.line_of("vm.yaml", "9223372036854775808")


def test_a_quantity_of_thousands_of_digits_is_a_short_finding(cli: Cli, repo: ManifestRepo) -> None:
    repo.write("classes/open.yaml", OPEN_CLASS)
    repo.write(
        "vm.yaml", docs(vm_yaml(vmclass="open"), disk_yaml("linux-vm-root", size=f'"{"9" * 5000}"'))
    )

    finding = only_finding(cli, repo)

    assert "is not a quantity" in str(finding["message"])
    assert len(str(finding["message"])) < 200
