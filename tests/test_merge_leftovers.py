"""No file of the project keeps the markers of an unresolved merge: they once slipped
into docs/engine.md, where no parser would have caught them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^(<{7} |={7}$|>{7} )", re.MULTILINE)
CHECKED = ("reconciler", "tests", "docs", "bench", "policies", "systemd", "scripts", "sample-repo")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".service", ".txt", ".cfg"}


def project_files() -> list[Path]:
    files = [p for p in ROOT.glob("*") if p.is_file() and p.suffix in SUFFIXES]
    for folder in CHECKED:
        files += [p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    return files


def test_no_file_keeps_merge_conflict_markers() -> None:
    marked = [
        str(path.relative_to(ROOT))
        for path in project_files()
        if MARKER.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert marked == []


def test_the_check_sees_a_marker() -> None:
    text = "a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> branch\n"
    assert len(MARKER.findall(text)) == 3
