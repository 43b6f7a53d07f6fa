"""`reconciler validate` as a pull request's CI runs it: output formats, exit codes,
isolation of one bad file from the others, every problem reported."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    OPEN_CLASS,
    REFERENCE_CLASS,
    Cli,
    ManifestRepo,
    disk_yaml,
    docs,
    parse_text,
    validate_json,
    vm_yaml,
)

BROKEN_YAML = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: [unclosed\n"


@pytest.fixture
def good(repo: ManifestRepo) -> ManifestRepo:
    repo.write("classes/generic.yaml", REFERENCE_CLASS)
    repo.write("vms/linux-vm.yaml", docs(vm_yaml(), disk_yaml("linux-vm-root")))
    return repo


@pytest.fixture
def with_problems(good: ManifestRepo) -> ManifestRepo:
    """The good repository plus a broken file and a VM breaking two rules."""
    good.write("broken.yaml", BROKEN_YAML)
    good.write(
        "vms/web.yaml",
        docs(vm_yaml("web", cores=17, fraction="30%", vmclass="generic"), disk_yaml("web-root")),
    )
    return good


# --- output formats -----------------------------------------------------------------


def test_text_output_is_path_line_col_object_message_rule(
    cli: Cli, with_problems: ManifestRepo
) -> None:
    run = cli("validate", with_problems.root)

    assert run.code == 1
    line, column = with_problems.where("vms/web.yaml", "cores:")
    assert re.search(
        rf"^vms/web\.yaml:{line}:{column}: VirtualMachine/default/web: .*16 or 18.* \[topology\]$",
        run.out,
        re.MULTILINE,
    )
    yaml_line = next(f for f in parse_text(run.out) if f["rule"] == "yaml")
    assert yaml_line["path"] == "broken.yaml"
    assert yaml_line["object"] == ""


def test_text_output_matches_the_json_findings(cli: Cli, with_problems: ManifestRepo) -> None:
    text = cli("validate", with_problems.root)
    as_json = cli("validate", with_problems.root, "--format", "json")

    assert parse_text(text.out) == as_json.json()
    assert len(text.out.strip().splitlines()) == len(as_json.json()) + 1  # plus a summary


def test_text_summary_counts_the_problems(cli: Cli, with_problems: ManifestRepo) -> None:
    run = cli("validate", with_problems.root)

    summary = run.out.strip().splitlines()[-1]
    assert summary.startswith(f"{len(parse_text(run.out))} problem")


def test_clean_text_output_says_ok(cli: Cli, good: ManifestRepo) -> None:
    run = cli("validate", good.root)

    assert run.code == 0
    assert run.out.startswith("ok")
    assert parse_text(run.out) == []


def test_json_output_is_a_list_of_findings_with_fixed_keys(
    cli: Cli, with_problems: ManifestRepo
) -> None:
    run = cli("validate", with_problems.root, "--format", "json")

    findings = run.json()
    assert run.code == 1
    assert findings
    for finding in findings:
        assert set(finding) == {"path", "line", "column", "object", "message", "rule"}
        assert isinstance(finding["line"], int) and finding["line"] >= 1
        assert isinstance(finding["column"], int) and finding["column"] >= 1
    rules = {(f["path"], f["rule"]) for f in findings}
    assert rules == {
        ("broken.yaml", "yaml"),
        ("vms/web.yaml", "topology"),
        ("vms/web.yaml", "sizing-policy"),
    }


def test_clean_json_output_is_an_empty_list(cli: Cli, good: ManifestRepo) -> None:
    run = cli("validate", good.root, "--format", "json")

    assert (run.code, json.loads(run.out)) == (0, [])


def test_github_output_is_one_error_annotation_per_finding(
    cli: Cli, with_problems: ManifestRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(with_problems.root.parent)

    run = cli("validate", "manifests", "--format", "github")

    assert run.code == 1
    annotations = run.out.strip().splitlines()
    assert len(annotations) == 3
    line, column = with_problems.where("vms/web.yaml", "cores:")
    assert (
        f"::error file=manifests/vms/web.yaml,line={line},col={column},title=topology"
        "::VirtualMachine/default/web: "
    ) in run.out
    for annotation in annotations:
        assert re.match(r"^::error file=[^,]+,line=\d+,col=\d+(,title=[a-z-]+)?::.+$", annotation)


def test_github_output_escapes_percent_signs(cli: Cli, good: ManifestRepo) -> None:
    good.write("vms/db.yaml", docs(vm_yaml("db", cores=3, fraction="30%"), disk_yaml("db-root")))

    run = cli("validate", good.root, "--format", "github")

    sizing = next(a for a in run.out.splitlines() if "title=sizing-policy" in a)
    assert "30%25" in sizing
    assert not re.search(r"%(?!25|0A|0D)", sizing.split("::", 2)[2])


def test_clean_github_output_is_empty(cli: Cli, good: ManifestRepo) -> None:
    run = cli("validate", good.root, "--format", "github")

    assert (run.code, run.out.strip()) == (0, "")


# --- exit codes ---------------------------------------------------------------------


def test_exit_0_on_a_clean_repository(cli: Cli, good: ManifestRepo) -> None:
    assert cli("validate", good.root).code == 0


def test_exit_1_on_findings(cli: Cli, with_problems: ManifestRepo) -> None:
    assert cli("validate", with_problems.root).code == 1


def test_directory_defaults_to_the_current_one(
    cli: Cli, with_problems: ManifestRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(with_problems.root)

    run = cli("validate", "--format", "json")

    assert run.code == 1
    assert {f["path"] for f in run.json()} == {"broken.yaml", "vms/web.yaml"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--no-such-flag"],
        ["--format", "xml"],
        ["--cidr", "10.0.0.0/33"],
        ["--cidr", "not-a-network"],
        ["--cidr", "10.66.10.7/24"],  # host bits set: a typo, not a network
        ["--cidr"],
    ],
)
def test_exit_2_on_usage_errors(cli: Cli, good: ManifestRepo, argv: list[str]) -> None:
    run = cli("validate", good.root, *argv)

    assert run.code == 2
    assert run.err
    assert run.out == ""


def test_exit_2_when_dir_does_not_exist(cli: Cli, tmp_path: Path) -> None:
    run = cli("validate", tmp_path / "nowhere")

    assert run.code == 2
    assert "nowhere" in run.err


def test_exit_2_when_dir_is_a_file(cli: Cli, good: ManifestRepo) -> None:
    run = cli("validate", good.root / "classes" / "generic.yaml")

    assert run.code == 2


def test_exit_2_on_an_unusable_config_file(cli: Cli, good: ManifestRepo) -> None:
    config = good.root.parent / "config.yaml"
    config.write_text("virtualMachineCIDRs: [10.0.0.0/33]\n")

    run = cli("validate", good.root, "--config", config)

    assert run.code == 2
    assert "config.yaml" in run.err


# --- isolation and completeness -----------------------------------------------------


def test_broken_file_does_not_hide_errors_in_other_files(
    cli: Cli, with_problems: ManifestRepo
) -> None:
    code, findings = validate_json(cli, with_problems)

    assert code == 1
    paths = {f["path"] for f in findings}
    assert paths == {"broken.yaml", "vms/web.yaml"}


def test_good_objects_beside_bad_ones_get_no_findings(
    cli: Cli, with_problems: ManifestRepo
) -> None:
    _, findings = validate_json(cli, with_problems)

    assert not [f for f in findings if f["path"] in ("vms/linux-vm.yaml", "classes/generic.yaml")]
    assert not [f for f in findings if f["object"] == "VirtualMachine/default/linux-vm"]


def test_every_problem_is_printed_not_just_the_first(cli: Cli, good: ManifestRepo) -> None:
    good.write(
        "vms/many.yaml",
        docs(
            vm_yaml("a", cores=17),
            disk_yaml("a-root"),
            vm_yaml("b", memory="64Gi"),
            disk_yaml("b-root"),
            vm_yaml("c", vmclass="missing"),
            disk_yaml("c-root"),
            vm_yaml("d", disks=["d-root"], extra_spec="bogus: 1\n"),
            disk_yaml("d-root"),
            vm_yaml("e", disks=["linux-vm-root"]),
        ),
    )
    good.write("zz-broken.yml", "key: [\n")

    code, findings = validate_json(cli, good)

    assert code == 1
    got = {
        (f["object"].rsplit("/", 1)[-1] if f["object"] else f["path"], f["rule"]) for f in findings
    }
    assert got == {
        ("a", "topology"),
        ("a", "sizing-policy"),  # 17 cores is also outside the class's 1-8
        ("b", "sizing-policy"),
        ("c", "reference"),
        ("d", "schema"),
        ("e", "conflict"),
        ("zz-broken.yml", "yaml"),
    }


def test_schema_error_in_one_document_keeps_the_others_of_its_file(
    cli: Cli, good: ManifestRepo
) -> None:
    good.write(
        "vms/mixed.yaml",
        docs(
            vm_yaml("a", extra_spec="bogus: 1\n"),
            disk_yaml("a-root"),
            vm_yaml("b", cores=34, vmclass="open"),
            disk_yaml("b-root"),
        ),
    )
    good.write("classes/open.yaml", OPEN_CLASS)

    _, findings = validate_json(cli, good)

    assert [(f["object"], f["rule"]) for f in findings] == [
        ("VirtualMachine/default/a", "schema"),
        ("VirtualMachine/default/b", "topology"),
    ]


def test_broken_object_is_reported_once_not_again_by_those_referring_to_it(
    cli: Cli, good: ManifestRepo
) -> None:
    # The class fails its schema; the VM using it is not also told the class is missing.
    good.write("classes/generic.yaml", REFERENCE_CLASS.replace("type: Host", "type: Quantum"))

    _, findings = validate_json(cli, good)

    assert [(f["path"], f["rule"]) for f in findings] == [("classes/generic.yaml", "schema")]


def test_findings_are_ordered_by_file_and_line(cli: Cli, with_problems: ManifestRepo) -> None:
    _, findings = validate_json(cli, with_problems)

    places = [(f["path"], f["line"], f["column"]) for f in findings]
    assert places == sorted(places)


# --- the installed command ----------------------------------------------------------


def test_installed_command_validates_in_a_subprocess(with_problems: ManifestRepo) -> None:
    command = Path(sys.executable).parent / "reconciler"

    done = subprocess.run(
        [str(command), "validate", str(with_problems.root), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert {f["rule"] for f in json.loads(done.stdout)} == {"yaml", "topology", "sizing-policy"}


def test_python_dash_m_reconciler_gives_the_same_exit_codes(good: ManifestRepo) -> None:
    def run(*argv: str) -> int:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *argv],
            capture_output=True,
            timeout=60,
            check=False,
        ).returncode

    assert run("validate", str(good.root)) == 0
    good.write("broken.yaml", BROKEN_YAML)
    assert run("validate", str(good.root)) == 1
    assert run("validate", str(good.root), "--cidr", "bad") == 2
