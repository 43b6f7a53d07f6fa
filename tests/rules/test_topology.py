"""CPU topology from the core count, against the reference's table
(dvp-virtual-machines.txt, "Automatic CPU Topology Configuration"; dvp-api.md §5)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.policies import default_policy_dir, load_topology_policy
from reconciler.rules.topology import TopologyError, topology_for
from tests.conftest import OPEN_CLASS, Cli, ManifestRepo, disk_yaml, docs, vm_yaml

# Written from the reference text, not from the code: allowed counts and their
# (sockets, coresPerSocket).
#   1-16 cores: 1 socket, any count.
#   17-32: 2 sockets, allowed 18, 20, ..., 32.
#   33-64: 4 sockets, allowed 36, 40, ..., 64.
#   above 64: 8 sockets, allowed 72, 80, ..., 248; 248 is the maximum.
REFERENCE_TABLE: dict[int, tuple[int, int]] = {
    **{cores: (1, cores) for cores in range(1, 17)},
    18: (2, 9), 20: (2, 10), 22: (2, 11), 24: (2, 12),
    26: (2, 13), 28: (2, 14), 30: (2, 15), 32: (2, 16),
    36: (4, 9), 40: (4, 10), 44: (4, 11), 48: (4, 12),
    52: (4, 13), 56: (4, 14), 60: (4, 15), 64: (4, 16),
    72: (8, 9), 80: (8, 10), 88: (8, 11), 96: (8, 12), 104: (8, 13), 112: (8, 14),
    120: (8, 15), 128: (8, 16), 136: (8, 17), 144: (8, 18), 152: (8, 19), 160: (8, 20),
    168: (8, 21), 176: (8, 22), 184: (8, 23), 192: (8, 24), 200: (8, 25), 208: (8, 26),
    216: (8, 27), 224: (8, 28), 232: (8, 29), 240: (8, 30), 248: (8, 31),
}  # fmt: skip


@pytest.mark.parametrize("cores", range(1, 251))
def test_topology_of_every_core_count_matches_the_reference(cores: int) -> None:
    policy = load_topology_policy()

    if cores in REFERENCE_TABLE:
        topology = topology_for(policy, cores)
        assert (topology.sockets, topology.cores_per_socket) == REFERENCE_TABLE[cores]
    else:
        with pytest.raises(TopologyError):
            topology_for(policy, cores)


def test_the_reference_table_has_the_documented_examples() -> None:
    # The reference's own examples: 8 -> 1x8, 20 -> 2x10, 40 -> 4x10, 80 -> 8x10.
    assert REFERENCE_TABLE[8] == (1, 8)
    assert REFERENCE_TABLE[20] == (2, 10)
    assert REFERENCE_TABLE[40] == (4, 10)
    assert REFERENCE_TABLE[80] == (8, 10)
    assert max(REFERENCE_TABLE) == 248


def test_policy_file_states_the_reference_bands() -> None:
    raw = YAML(typ="safe").load((default_policy_dir() / "cpu-topology.yaml").read_text())
    bands = [
        (band["cores"]["min"], band["cores"]["max"], band["sockets"], band["step"])
        for band in raw["bands"]
    ]

    assert raw["maxCores"] == 248
    assert bands == [(1, 16, 1, 1), (17, 32, 2, 2), (33, 64, 4, 4), (65, 248, 8, 8)]


@pytest.mark.parametrize(
    ("cores", "ceiling"), [(1, 16), (16, 16), (18, 16), (64, 16), (72, 31), (248, 31)]
)
def test_hot_plug_ceiling_per_socket_follows_the_code(cores: int, ceiling: int) -> None:
    # dvp-api.md §5: 16 cores per socket up to 64 cores, 31 above (8 x 31 = 248).
    assert topology_for(load_topology_policy(), cores).max_cores_per_socket == ceiling


def _named_counts(message: str) -> set[int]:
    return {int(number) for number in re.findall(r"\b\d+\b", message)}


@pytest.mark.parametrize(
    ("cores", "nearest", "not_named"),
    [
        (17, {16, 18}, {14, 20}),
        (34, {32, 36}, {30, 40}),
        (250, {248}, {256}),
        (65, {64, 72}, {60, 80}),
        (33, {32, 36}, {30, 40}),
    ],
)
def test_refused_count_names_the_nearest_allowed_counts(
    cores: int, nearest: set[int], not_named: set[int]
) -> None:
    with pytest.raises(TopologyError) as refused:
        topology_for(load_topology_policy(), cores)

    named = _named_counts(str(refused.value))
    assert nearest <= named
    assert not named & not_named


def test_more_than_248_cores_says_the_maximum() -> None:
    with pytest.raises(TopologyError, match="248"):
        topology_for(load_topology_policy(), 256)


@pytest.mark.parametrize(("cores", "nearest"), [(17, "16 or 18"), (34, "32 or 36"), (250, "248")])
def test_validate_refuses_a_vm_with_a_core_count_between_allowed_ones(
    cli: Cli, repo: ManifestRepo, cores: int, nearest: str
) -> None:
    repo.write("class.yaml", OPEN_CLASS)
    repo.write("vm.yaml", docs(vm_yaml("big", cores=cores, vmclass="open"), disk_yaml("big-root")))

    run = cli("validate", repo.root, "--format", "json")

    assert run.code == 1
    [finding] = run.json()
    assert finding["rule"] == "topology"
    assert finding["object"] == "VirtualMachine/default/big"
    assert finding["path"] == "vm.yaml"
    assert (finding["line"], finding["column"]) == repo.where("vm.yaml", "cores:")
    assert nearest in finding["message"]


def test_validator_refuses_exactly_the_counts_the_reference_does(repo: ManifestRepo) -> None:
    # Given one VM per core count 1..250 in one repository
    vms = [vm_yaml(f"vm-{n}", cores=n, vmclass="open", fraction=None) for n in range(1, 251)]
    disks = [disk_yaml(f"vm-{n}-root") for n in range(1, 251)]
    repo.write("class.yaml", OPEN_CLASS)
    repo.write("vms.yaml", docs(*vms))
    repo.write("disks.yaml", docs(*disks))

    # When it is checked
    findings = repo.findings()

    # Then exactly the counts missing from the reference table are refused, each at its line
    refused = {int(f.object.rsplit("-", 1)[1]) for f in findings}
    assert {f.rule.value for f in findings} == {"topology"}
    assert refused == set(range(1, 251)) - set(REFERENCE_TABLE)
    for finding in findings:
        name = finding.object.rsplit("/", 1)[1]
        assert (finding.line, finding.column) == repo.where(
            "vms.yaml", "cores:", after=f"name: {name}"
        )


def test_policy_directory_can_be_overridden(tmp_path: Path) -> None:
    # An operator may change the table: here, 1-8 cores on one socket only.
    (tmp_path / "cpu-topology.yaml").write_text(
        "maxCores: 8\nbands:\n  - cores: {min: 1, max: 8}\n"
        "    sockets: 1\n    step: 1\n    maxCoresPerSocket: 8\n"
    )
    policy = load_topology_policy(tmp_path)

    assert topology_for(policy, 8).cores_per_socket == 8
    with pytest.raises(TopologyError, match="8"):
        topology_for(policy, 9)
