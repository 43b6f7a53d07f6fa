"""Property tests: no input makes the loader or the validator crash; every valid VM
validates clean and round-trips through its model; topology products are exact."""

from __future__ import annotations

import io
import tempfile
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.api import KINDS, VirtualMachine
from reconciler.cli import main
from reconciler.findings import Finding, Rule
from reconciler.loader import load_text
from reconciler.policies import load_topology_policy
from reconciler.rules import check
from reconciler.rules.topology import TopologyError, topology_for
from tests.conftest import OPEN_CLASS, REFERENCE_CLASS, disk_yaml, docs, vm_yaml
from tests.rules.test_topology import REFERENCE_TABLE

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Tokens, not only characters, so that document markers, merge keys, tags and
# anchors turn up often.
YAMLISH = st.lists(
    st.sampled_from(
        [
            *"abcdeknrsy019 :-\n\t[]{},#&*!|>'\"%@`?.=\\é\x00",
            "<<: ",
            "\n---\n",
            "\n...\n",
            "!!int ",
            "!!str ",
            "!!binary ",
            "!!float ",
            "!!timestamp ",
            "&a ",
            "*a",
            "? ",
            "kind: VirtualMachine\n",
            "spec:\n  ",
            "cores: ",
            "- ",
        ]
    ),
    max_size=60,
).map("".join)

SEED = docs(REFERENCE_CLASS, vm_yaml(cores=2, memory="2Gi"), disk_yaml("linux-vm-root"))


def _assert_reported(findings: list[Finding], text: str) -> None:
    lines = text.count("\n") + 2
    for finding in findings:
        assert isinstance(finding.rule, Rule)
        assert 1 <= finding.line <= lines, finding
        assert finding.column >= 1
        assert finding.message


@FUZZ
@given(YAMLISH)
def test_arbitrary_yamlish_text_never_crashes_the_validator(text: str) -> None:
    result = load_text(text, "fuzz.yaml")
    findings = check(result)

    _assert_reported(findings, text)


@st.composite
def mutated_manifests(draw: st.DrawFn) -> str:
    """A valid repository text with a random slice replaced by YAML-ish noise."""
    start = draw(st.integers(0, len(SEED)))
    end = draw(st.integers(start, min(len(SEED), start + 40)))
    return SEED[:start] + draw(YAMLISH) + SEED[end:]


@FUZZ
@given(mutated_manifests())
def test_damaged_manifests_never_crash_the_validator(text: str) -> None:
    findings = check(load_text(text, "fuzz.yaml"))

    _assert_reported(findings, text)


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["1Gi", "10%", "Static", "VirtualDisk", "10.0.0.1", "-1", "Auto"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "cores",
                    "memory",
                    "size",
                    "cpu",
                    "type",
                    "kind",
                    "spec",
                    "staticIP",
                    "blockDeviceRefs",
                    "coreFraction",
                    "provisioning",
                    "userData",
                    "sizingPolicies",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@FUZZ
@given(
    kind=st.sampled_from([*KINDS, "Pod", None]),
    metadata=JSONISH,
    spec=JSONISH,
)
def test_arbitrary_structures_under_every_kind_never_crash(
    kind: str | None, metadata: Any, spec: Any
) -> None:
    document = {
        "apiVersion": "virtualization.deckhouse.io/v1alpha2",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
    }
    buffer = io.StringIO()
    YAML(typ="safe", pure=True).dump(document, buffer)
    text = buffer.getvalue()

    findings = check(load_text(text, "fuzz.yaml"))

    _assert_reported(findings, text)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def damaged_vms(draw: st.DrawFn) -> str:
    """A valid VM (see valid_vms) with one field, at any depth, replaced by arbitrary data."""
    raw = draw(valid_vms())
    path = draw(st.sampled_from(_paths(raw)[1:]))
    target = raw
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = draw(JSONISH)
    buffer = io.StringIO()
    YAML(typ="safe", pure=True).dump(raw, buffer)
    return docs(OPEN_CLASS, buffer.getvalue())


@FUZZ
@given(damaged_vms())
def test_a_vm_with_any_field_damaged_is_reported_not_crashed_on(text: str) -> None:
    findings = check(load_text(text, "vm.yaml"))

    _assert_reported(findings, text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAMLISH | mutated_manifests(), min_size=1, max_size=3))
def test_validate_command_reports_and_exits_1_or_0_never_crashes(texts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        for index, text in enumerate(texts):
            (Path(directory) / f"f{index}.yaml").write_text(text, encoding="utf-8")
        with redirect_stdout(io.StringIO()) as out:
            code = main(["validate", directory, "--cidr", "10.66.10.0/24"])

    assert code in (0, 1)
    assert (code == 0) == out.getvalue().startswith("ok")


ALLOWED = sorted(REFERENCE_TABLE)


@st.composite
def valid_vms(draw: st.DrawFn) -> dict[str, Any]:
    """A VirtualMachine the reference allows, as its author would write it."""
    name = draw(st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True))
    cpu: dict[str, Any] = {"cores": draw(st.sampled_from(ALLOWED))}
    if draw(st.booleans()):
        cpu["coreFraction"] = f"{draw(st.integers(1, 100))}%"
    unit = draw(st.sampled_from(["Mi", "Gi"]))
    size = draw(st.integers(1, 512 if unit == "Gi" else 2**16))
    spec: dict[str, Any] = {
        "virtualMachineClassName": "open",
        "cpu": cpu,
        "memory": {"size": f"{size}{unit}"},
        "blockDeviceRefs": [{"kind": "VirtualDisk", "name": f"{name}-root"}],
    }
    if draw(st.booleans()):
        spec["runPolicy"] = draw(
            st.sampled_from(["AlwaysOn", "AlwaysOff", "Manual", "AlwaysOnUnlessStoppedManually"])
        )
    if draw(st.booleans()):
        spec["disruptions"] = {
            "restartApprovalMode": draw(st.sampled_from(["Manual", "Automatic"]))
        }
    if draw(st.booleans()):
        spec["liveMigrationPolicy"] = draw(
            st.sampled_from(["AlwaysSafe", "PreferSafe", "AlwaysForced", "PreferForced"])
        )
    if draw(st.booleans()):
        spec["provisioning"] = {
            "type": "UserData",
            "userData": "#cloud-config\n" + draw(st.text("abc xyz:\n-", max_size=300)),
        }
    metadata: dict[str, Any] = {"name": name}
    if draw(st.booleans()):
        metadata["namespace"] = draw(st.sampled_from(["default", "prod", "team-a"]))
    if draw(st.booleans()):
        metadata["labels"] = {"app": draw(st.sampled_from(["web", "db"]))}
    return {
        "apiVersion": "virtualization.deckhouse.io/v1alpha2",
        "kind": "VirtualMachine",
        "metadata": metadata,
        "spec": spec,
    }


@settings(max_examples=150, deadline=None)
@given(valid_vms())
def test_valid_vm_validates_clean_and_round_trips_unchanged(raw: dict[str, Any]) -> None:
    buffer = io.StringIO()
    YAML(typ="safe", pure=True).dump(raw, buffer)
    namespace = raw["metadata"].get("namespace")
    disk = disk_yaml(f"{raw['metadata']['name']}-root", namespace=namespace)
    text = docs(OPEN_CLASS, buffer.getvalue(), disk)

    result = load_text(text, "vm.yaml")

    assert check(result) == []
    vm = next(o.model for o in result.objects if isinstance(o.model, VirtualMachine))
    assert vm.to_manifest() == raw
    assert VirtualMachine.model_validate(vm.to_manifest()) == vm


@given(st.sampled_from(ALLOWED))
def test_topology_of_an_allowed_count_multiplies_back_to_it(cores: int) -> None:
    topology = topology_for(load_topology_policy(), cores)

    assert topology.sockets * topology.cores_per_socket == cores
    assert topology.cores_per_socket <= topology.max_cores_per_socket


@given(st.integers(1, 2000))
def test_any_count_either_lays_out_exactly_or_names_allowed_neighbours(cores: int) -> None:
    try:
        topology = topology_for(load_topology_policy(), cores)
    except TopologyError as refused:
        nearest = str(refused).rsplit("nearest allowed:", 1)[1]
        named = [int(n) for n in nearest.replace("or", " ").split()]
        assert named and all(n in REFERENCE_TABLE for n in named)
        assert all(abs(n - cores) <= 8 for n in named) or cores > 248
    else:
        assert topology.sockets * topology.cores_per_socket == cores
        assert cores in REFERENCE_TABLE
