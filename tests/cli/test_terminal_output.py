"""No escape sequence from a report or a manifest reaches the operator's terminal
(issue 12, row 14).

Anyone who can push may commit a report under status/; anyone who opens a pull
request names the files and writes the manifests. `get`, `describe`, `plan` and
`validate` show their values with every control character visibly escaped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.api import ObjectId
from reconciler.cli import main
from reconciler.cli.vm import parse_report
from reconciler.reports.documents import render, status_path
from tests.cli.conftest import HOST_OPTIONS
from tests.hosts import CLASS, vm_yaml

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
CSI = "\x9b31m"  # C1 CONTROL SEQUENCE INTRODUCER, as 8-bit terminals read it
HOSTILE_NAME = f"evil{CLEAR}"


def hostile_report(name: str) -> dict[str, object]:
    return {
        "apiVersion": "virtualization.deckhouse.io/v1alpha2",
        "kind": "VirtualMachine",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": f"2026-11-25T09:00:00Z{CLEAR}",
        },
        "status": {
            "phase": f"Running{TITLE}",
            "nodeName": f"hv1{CLEAR}",
            "ipAddress": f"10.0.0.1{CSI}",
            "resources": {"cpu": {f"cores{CLEAR}": 1}, "memory": {"size": f"1Gi{TITLE}"}},
            "conditions": [
                {
                    "type": f"Running{CLEAR}",
                    "status": "True",
                    "reason": f"Started{TITLE}",
                    "message": f"fine\r\n{CLEAR}Ready  True  forged row\x7f",
                    "lastTransitionTime": "2026-11-25T09:00:00Z",
                }
            ],
            "restartAwaitingChanges": [
                {
                    "path": f"cpu{TITLE}",
                    "operation": "replace",
                    "currentValue": 1,
                    "desiredValue": f"2{CLEAR}",
                }
            ],
        },
    }


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A VM `web` and a report of it, and a report of a VM `evil<ESC>[2J`, both hostile."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "class.yaml").write_text(CLASS, encoding="utf-8")
    (root / "web.yaml").write_text(vm_yaml(name="web"), encoding="utf-8")
    for name in ("web", HOSTILE_NAME):
        path = status_path(root / "status", ObjectId("VirtualMachine", "default", name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(hostile_report(name)), encoding="utf-8")
    return root


def output(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    main(list(argv))
    captured = capsys.readouterr()
    return captured.out + captured.err


def assert_no_control_characters(text: str) -> None:
    controls = sorted({c for c in text if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F})
    assert controls == [], f"control characters reach the terminal: {controls!r}"


@pytest.mark.parametrize(
    "argv",
    [
        ("get", "vm"),
        ("get", "vm", "-o", "wide"),
        ("get", "vm", "-A"),
        ("get", "vm", "-o", "yaml"),
        ("get", "vm", "-o", "json"),
        ("describe", "vm", "web"),
    ],
    ids=" ".join,
)
def test_a_hostile_report_prints_no_control_character(
    checkout: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    text = output(capsys, *argv, "--dir", str(checkout))

    assert_no_control_characters(text)
    assert "web" in text


def test_the_escapes_are_shown_not_dropped(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = output(capsys, "get", "vm", "--dir", str(checkout))

    assert "evil\\x1b[2J" in table
    assert "Running\\x1b]0;pwned\\x07" in table


def test_a_line_break_in_a_report_does_not_fake_a_line_of_describe(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = output(capsys, "describe", "vm", "web", "--dir", str(checkout))

    assert "fine\\r\\n\\x1b[2JReady  True  forged row\\x7f" in text
    assert not any(line.startswith("Ready") for line in text.splitlines())


def test_a_hostile_vm_name_prints_no_control_character_in_plan_and_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "class.yaml").write_text(CLASS, encoding="utf-8")
    text = vm_yaml(name="web").replace("name: web\n", f'name: "web{CLEAR}{TITLE}"\n', 1)
    (root / f"vm{CLEAR}.yaml").write_text(text, encoding="utf-8")

    validated = output(capsys, "validate", str(root))
    planned = output(capsys, "plan", str(root), *HOST_OPTIONS)

    assert_no_control_characters(validated)
    assert_no_control_characters(planned)
    assert "vm\\x1b[2J.yaml" in validated


def test_an_operation_report_followed_by_vm_wait_prints_no_control_character() -> None:
    report = parse_report(
        "status:\n  phase: Failed\n  conditions:\n"
        '    - {type: Completed, reason: "Bad\\e]0;pwned\\a", message: "gone\\e[2J"}\n'
    )

    assert report is not None
    assert report.line("restart-web") == "restart-web: Failed (Bad\\x1b]0;pwned\\x07: gone\\x1b[2J)"
