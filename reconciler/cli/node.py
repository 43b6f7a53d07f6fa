"""`reconciler node drain|uncordon NAME`: a Node's `spec.unschedulable` committed to Git.

`d8 k drain NODE` cordons a node and the platform evacuates its VMs by live migration;
`d8 k uncordon NODE` returns it to service. Here the repository is the cluster: the
command sets `spec.unschedulable` in the Node's manifest, where it is written, and
pushes. The host named NAME then evacuates itself (docs/engine.md, "The fleet") and
its Node report shows how far it got.

Only the Node's own document is rewritten (a round trip keeps its comments); the rest of
its file stays byte for byte, and nothing is committed when the Node already is as asked.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from reconciler.api.node import Node
from reconciler.cli.common import read_config
from reconciler.cli.repository import add_repository_arguments, target_from
from reconciler.cli.vm import manifest_problem
from reconciler.loader import load_file, manifest_files
from reconciler.source.gitcli import GitFailed
from reconciler.source.operation_workspace import OperationError, Target, Workspace, open_workspace
from reconciler.source.revision import status_inside

EXIT_FAILED = 1
EXIT_USAGE = 2
# The value each action gives spec.unschedulable.
ACTIONS = {"drain": True, "uncordon": False}


def node_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Set spec.unschedulable of Node NAME in the repository and push it: `drain` makes"
        " that host move its running VMs to other hosts by live migration and start no new"
        " one, as `d8 k drain` does; `uncordon` returns it to service."
    )
    parser.add_argument("action", choices=sorted(ACTIONS), metavar="ACTION", help="drain/uncordon")
    parser.add_argument("name", metavar="NAME", help="the Node (the host's node name)")
    add_repository_arguments(parser)
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class NodeDocument:
    """Where a Node is written: its file (relative to the manifests folder) and document."""

    relative: str
    index: int  # the document's place in its file
    unschedulable: bool


def find_node(root: Path, status_relative: str | None, name: str) -> NodeDocument | None:
    for path in manifest_files(root) if root.is_dir() else ():
        relative = path.relative_to(root).as_posix()
        if status_relative and relative.startswith(status_relative + "/"):
            continue
        for loaded in load_file(path, relative, root).objects:
            if isinstance(loaded.model, Node) and loaded.model.name == name:
                return NodeDocument(relative, loaded.source.index, loaded.model.spec.unschedulable)
    return None


_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$")


def document_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each document of a multi-document file, separators left out.

    A stretch holding only comments or blank lines before a separator is no document.
    """
    spans: list[tuple[int, int]] = []
    start = offset = 0
    for line in text.splitlines(keepends=True):
        if _SEPARATOR.match(line.rstrip("\r\n")):
            spans.append((start, offset))
            start = offset + len(line)
        offset += len(line)
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if _has_content(text[a:b])]


def _has_content(chunk: str) -> bool:
    return any(line.strip() and not line.lstrip().startswith("#") for line in chunk.splitlines())


def with_unschedulable(document: str, name: str, value: bool) -> str:
    """The document with spec.unschedulable set, comments and key order kept."""
    yaml = YAML()  # round trip
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line the author wrote on one
    tree = yaml.load(document)
    metadata = tree.get("metadata") if isinstance(tree, CommentedMap) else None
    if not isinstance(metadata, CommentedMap) or metadata.get("name") != name:
        raise OperationError(f"cannot tell Node {name}'s document apart in its file")
    assert isinstance(tree, CommentedMap)
    spec = tree.get("spec")
    if not isinstance(spec, CommentedMap):
        spec = CommentedMap()
        tree["spec"] = spec
    spec["unschedulable"] = value
    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue()


def run(args: argparse.Namespace) -> int:
    target = target_from(args, read_config(args))
    if target is None:
        print(
            "reconciler: name the repository: --repo URL, --dir CHECKOUT or --config FILE",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        with tempfile.TemporaryDirectory(prefix="reconciler-node-") as scratch:
            workspace = open_workspace(target, Path(scratch))
            return commit_node(workspace, target, args.name, ACTIONS[args.action], args.action)
    except (OperationError, GitFailed) as error:
        print(f"reconciler: {error}", file=sys.stderr)
        return EXIT_FAILED


def commit_node(
    workspace: Workspace, target: Target, name: str, unschedulable: bool, action: str
) -> int:
    root = workspace.root / target.sub_path if target.sub_path else workspace.root
    found = find_node(root, status_inside(target.sub_path, target.status_path), name)
    if found is None:
        raise OperationError(
            f"Node {name} is not in {workspace.describe()}"
            f"{' under ' + target.sub_path + '/' if target.sub_path else ''}: a host is"
            " drained through its Node manifest (docs/install.md); nothing was committed"
        )
    state = "unschedulable" if unschedulable else "schedulable"
    if found.unschedulable == unschedulable:
        print(f"Node {name} is already {state} in {found.relative}; nothing was committed")
        return 0
    path = root / found.relative
    text = path.read_text(encoding="utf-8")
    spans = document_spans(text)
    if found.index >= len(spans):
        raise OperationError(f"cannot tell Node {name}'s document apart in {found.relative}")
    start, end = spans[found.index]
    edited = text[:start] + with_unschedulable(text[start:end], name, unschedulable) + text[end:]
    problem = manifest_problem(edited, found.relative)
    if problem is not None:
        raise OperationError(f"{problem}; nothing was committed")
    path.write_text(edited, encoding="utf-8")
    in_repo = f"{target.sub_path}/{found.relative}" if target.sub_path else found.relative
    command = "d8 k drain" if unschedulable else "d8 k uncordon"
    message = (
        f"node {action} {name}\n\n"
        f"Node {name}: spec.unschedulable {str(unschedulable).lower()}, as `{command}` sets it.\n"
    )
    commit = workspace.publish(in_repo, message)
    where = f"pushed to {workspace.describe()} as {commit[:12]}" if commit else "written"
    print(f"Node {name} is now {state}: {found.relative} {where}")
    return 0
