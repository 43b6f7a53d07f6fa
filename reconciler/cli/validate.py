"""`reconciler validate [DIR]`: every problem of a manifests repository, as text, JSON or
GitHub annotations."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from reconciler.cli.common import (
    add_image_directory_argument,
    add_pool_arguments,
    add_require_encrypted_argument,
    image_directories_from,
    pool_from,
    read_config,
    repository_dir,
    require_encrypted_from,
)
from reconciler.cli.terminal import emit, escaped
from reconciler.findings import Finding
from reconciler.loader import load_directory
from reconciler.progress import for_stream
from reconciler.rules import Pool, check


def validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check every manifest under DIR; print every problem, not just the first."
        " Exit 0 when clean, 1 when not."
    )
    parser.add_argument("dir", nargs="?", default=".", type=repository_dir, metavar="DIR")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text")
    add_pool_arguments(parser)
    add_image_directory_argument(parser)
    add_require_encrypted_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = read_config(args)
    output, clean = validated(
        args.dir,
        pool_from(args, config),
        image_directories_from(args, config),
        args.format,
        require_encrypted_secrets=require_encrypted_from(args, config),
    )
    emit(output)
    return 0 if clean else 1


def validated(
    root: Path,
    pool: Pool,
    image_directories: Sequence[str],
    fmt: str,
    *,
    require_encrypted_secrets: bool = False,
) -> tuple[str, bool]:
    """What `validate` prints about root, and whether it is clean.

    The collector stays paused until the loaded objects are gone. The loader pauses it
    while it reads, so every object it made is still in the youngest generation: let
    run again before the rules, the collector walked them all, once per generation they
    passed through, finding no garbage (at 1,000 VMs a quarter of the command, more
    than the rules themselves). Dropped first, they are never walked."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        # A call of its own: its frame, and with it the loaded objects, is gone before
        # the collector runs again.
        return _validated(root, pool, image_directories, fmt, require_encrypted_secrets)
    finally:
        if collecting:
            gc.enable()


def _validated(
    root: Path,
    pool: Pool,
    image_directories: Sequence[str],
    fmt: str,
    require_encrypted_secrets: bool,
) -> tuple[str, bool]:
    steps = for_stream("validate", sys.stderr)
    try:
        result = load_directory(root, step=steps.step)
        findings = check(
            result,
            pool,
            image_directories=image_directories,
            require_encrypted_secrets=require_encrypted_secrets,
        )
    finally:
        steps.finish()
    output = render(findings, fmt, root, objects=len(result.objects), files=len(result.files))
    return output, not findings


def render(findings: list[Finding], fmt: str, root: Path, *, objects: int, files: int) -> str:
    if fmt == "json":
        return json.dumps([f.as_dict() for f in findings], indent=2)
    if fmt == "github":
        return "\n".join(_github(f, root) for f in findings)
    # A file name or message holding a line break must not fake another finding.
    lines = [escaped(str(f)) for f in findings]
    summary = f"{objects} objects in {files} files"
    lines.append(f"{len(findings)} problem(s) in {summary}" if findings else f"ok: {summary}")
    return "\n".join(lines)


def _github(finding: Finding, root: Path) -> str:
    # Annotations want paths relative to the workspace, which is where the workflow runs.
    path = os.path.relpath(root / finding.path)
    subject = f"{finding.object}: " if finding.object else ""
    properties = ",".join(
        f"{key}={_github_property(str(value))}"
        for key, value in (
            ("file", path),
            ("line", finding.line),
            ("col", finding.column),
            ("title", finding.rule),
        )
    )
    return f"::error {properties}::{_github_data(subject + finding.message)}"


# GitHub's workflow command syntax (the escapeData and escapeProperty of @actions/core):
# a file name or message is anyone's who opens a pull request, and an unescaped line
# break in it would start a workflow command of their own (`::add-mask::`, `::error`).
_GITHUB_DATA = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A"})
_GITHUB_PROPERTY = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A", ":": "%3A", ",": "%2C"})


def _github_data(text: str) -> str:
    return text.translate(_GITHUB_DATA)


def _github_property(text: str) -> str:
    return text.translate(_GITHUB_PROPERTY)
