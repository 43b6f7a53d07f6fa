"""`reconciler validate [DIR]`: every problem of a manifests repository, as text, JSON or
GitHub annotations."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from reconciler.cli.common import (
    add_image_directory_argument,
    add_pool_arguments,
    image_directories_from,
    pool_from,
    read_config,
    repository_dir,
)
from reconciler.findings import Finding
from reconciler.loader import load_directory
from reconciler.rules import check


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "validate",
        help="check manifests against the schema and the platform's rules",
        description="Check every manifest under DIR; print every problem, not just the first."
        " Exit 0 when clean, 1 when not.",
    )
    parser.add_argument("dir", nargs="?", default=".", type=repository_dir, metavar="DIR")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text")
    add_pool_arguments(parser)
    add_image_directory_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = read_config(args)
    root: Path = args.dir
    result = load_directory(root)
    findings = check(
        result, pool_from(args, config), image_directories=image_directories_from(args, config)
    )
    print(render(findings, args.format, root, objects=len(result.objects), files=len(result.files)))
    return 1 if findings else 0


def render(findings: list[Finding], fmt: str, root: Path, *, objects: int, files: int) -> str:
    if fmt == "json":
        return json.dumps([f.as_dict() for f in findings], indent=2)
    if fmt == "github":
        return "\n".join(_github(f, root) for f in findings)
    lines = [str(f) for f in findings]
    summary = f"{objects} objects in {files} files"
    lines.append(f"{len(findings)} problem(s) in {summary}" if findings else f"ok: {summary}")
    return "\n".join(lines)


def _github(finding: Finding, root: Path) -> str:
    # Annotations want paths relative to the workspace, which is where the workflow runs.
    path = os.path.relpath(root / finding.path)
    title = f"{finding.rule}"
    subject = f"{finding.object}: " if finding.object else ""
    message = (subject + finding.message).replace("%", "%25").replace("\n", "%0A")
    return f"::error file={path},line={finding.line},col={finding.column},title={title}::{message}"
