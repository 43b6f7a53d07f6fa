"""`validate --format github` cannot be made to run workflow commands (issue 12, row 12).

A file name and a manifest's content are anyone's who opens a pull request; each
finding must stay one annotation line whatever they hold.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import Cli, ManifestRepo

INJECTED = "x\n::add-mask::foo\n::error title=bar::.yaml"


def annotations(out: str) -> list[str]:
    return out.strip("\n").split("\n")


def test_a_file_name_with_line_breaks_stays_one_annotation(
    cli: Cli, repo: ManifestRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write(INJECTED, "kind: Nothing\n")
    monkeypatch.chdir(repo.root)

    run = cli("validate", ".", "--format", "github")

    assert run.code == 1
    [annotation] = annotations(run.out)
    assert annotation.startswith("::error file=x%0A%3A%3Aadd-mask%3A%3Afoo%0A%3A%3Aerror")
    assert "title=bar%3A%3A.yaml,line=1," in annotation


def test_no_line_of_the_output_starts_a_command_of_the_file_names_making(
    cli: Cli, repo: ManifestRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write(INJECTED, "kind: Nothing\n")
    repo.write("a,b:c%d.yaml", "kind: Nothing\n")
    monkeypatch.chdir(repo.root)

    run = cli("validate", ".", "--format", "github")

    lines = annotations(run.out)
    assert len(lines) == 2
    assert all(re.match(r"^::error file=[^,:]+,line=\d+,col=\d+,title=[a-z-]+::", a) for a in lines)
    assert "file=a%2Cb%3Ac%25d.yaml," in run.out


def test_a_message_with_line_breaks_stays_one_annotation(cli: Cli, repo: ManifestRepo) -> None:
    repo.write(
        "vm.yaml",
        'apiVersion: v1\nkind: Secret\nmetadata:\n  name: "a\\r\\n::add-mask::x\\n::error::y"\n',
    )

    run = cli("validate", repo.root, "--format", "github")

    [annotation] = annotations(run.out)
    message = annotation.split("::", 2)[2]
    assert "%0D%0A::add-mask::x%0A::error::y" in message
