"""`reconciler validate` as CI runs it, on a pull request that adds one hostile file:
a 1 KB alias bomb or a 10,000-deep file is one `limits` finding and exit 1, not a
traceback or minutes of work (issue 12, rows 1 and 3). bench/hostile.py measures the
time and memory; here a generous timeout only tells "done" from "runs for minutes"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ManifestRepo, disk_yaml
from tests.hostile_yaml import alias_bomb, deep_sequence

CHECKOUT = Path(__file__).resolve().parents[2]


def _validate(repo: ManifestRepo) -> tuple[int, list[dict[str, object]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(repo.root), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=CHECKOUT,  # this checkout's reconciler, not an installed one
    )
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("bomb.yaml", alias_bomb(9, 10), 4),
        ("deep.yaml", deep_sequence(10_000), 1),
    ],
)
def test_validate_of_a_hostile_file_is_one_limits_finding_and_exit_1(
    repo: ManifestRepo, name: str, text: str, line: int
) -> None:
    repo.write("disks/good.yaml", disk_yaml("good"))
    repo.write(name, text)

    code, findings, stderr = _validate(repo)

    assert code == 1
    assert [(f["path"], f["line"], f["rule"]) for f in findings] == [(name, line, "limits")]
    assert "Traceback" not in stderr
