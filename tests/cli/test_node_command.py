"""`reconciler node drain|uncordon NAME`: the Node's spec.unschedulable committed and pushed,
as `d8 k drain` and `d8 k uncordon` set it in the cluster (issue 14).

Real Git: a bare remote on disk whose `main` holds two Nodes in one file with comments.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.api.node import Node
from reconciler.cli import main
from reconciler.loader import load_text
from tests.cli.test_vm_command import Remote, seeded_remote
from tests.gitrepos import git

NODES = textwrap.dedent(
    """\
    # The fleet's hosts.
    apiVersion: reconciler.vm-gitops.io/v1alpha1
    kind: Node
    metadata:
      name: hv1
      labels:
        zone: a   # rack 3
    spec:
      capacity:
        cpu: 8
    ---
    # hv2 keeps its comment and its bytes.
    apiVersion: reconciler.vm-gitops.io/v1alpha1
    kind: Node
    metadata:
      name: hv2
    spec:
      unschedulable:   false
    """
)
HV2 = NODES.split("---\n", 1)[1]


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return seeded_remote(tmp_path, {"fleet/nodes.yaml": NODES})


def nodes(remote: Remote) -> dict[str, Node]:
    result = load_text(remote.show("fleet/nodes.yaml"), "fleet/nodes.yaml")
    assert result.findings == []
    return {o.model.name: o.model for o in result.objects if isinstance(o.model, Node)}


def node(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["node", *argv])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err


def test_drain_pushes_one_commit_that_makes_the_node_unschedulable(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a remote whose Node hv1 is schedulable
    before = remote.head()
    # when it is drained
    code, out, _ = node(capsys, "drain", "hv1", "--repo", remote.url)
    # then one commit says so, the Node is unschedulable, the other Node untouched
    assert code == 0 and "Node hv1 is now unschedulable" in out
    assert git(remote.bare, "rev-parse", "main~1") == before
    assert git(remote.bare, "log", "-1", "--format=%s", "main") == "node drain hv1"
    assert nodes(remote)["hv1"].spec.unschedulable is True
    assert nodes(remote)["hv2"].spec.unschedulable is False


def test_the_rest_of_the_file_keeps_its_comments_and_bytes(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    node(capsys, "drain", "hv1", "--repo", remote.url)
    text = remote.show("fleet/nodes.yaml")
    assert text.startswith("# The fleet's hosts.\n")
    assert "zone: a   # rack 3" in text
    assert text.endswith(HV2.rstrip("\n"))  # the other document byte for byte (show strips)


def test_uncordon_returns_the_node_to_service(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    node(capsys, "drain", "hv1", "--repo", remote.url)
    code, out, _ = node(capsys, "uncordon", "hv1", "--repo", remote.url)
    assert code == 0 and "schedulable" in out
    assert nodes(remote)["hv1"].spec.unschedulable is False
    assert git(remote.bare, "log", "-1", "--format=%s", "main") == "node uncordon hv1"


def test_a_node_already_as_asked_commits_nothing(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    before = remote.head()
    code, out, _ = node(capsys, "uncordon", "hv2", "--repo", remote.url)
    assert code == 0 and "already schedulable" in out
    assert remote.head() == before


def test_a_node_not_in_the_repository_is_an_error_and_nothing_is_pushed(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    before = remote.head()
    code, _, err = node(capsys, "drain", "hv9", "--repo", remote.url)
    assert code == 1
    assert "Node hv9 is not in" in err and "nothing was committed" in err
    assert remote.head() == before


def test_drain_in_an_existing_checkout_commits_and_pushes_from_it(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = remote.clone("operator")
    code, _, _ = node(capsys, "drain", "hv2", "--dir", str(checkout))
    assert code == 0
    assert nodes(remote)["hv2"].spec.unschedulable is True
    assert git(checkout, "rev-parse", "HEAD") == remote.head()


def test_without_a_repository_the_command_says_how_to_name_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = node(capsys, "drain", "hv1")
    assert code == 2 and "--repo URL, --dir CHECKOUT or --config FILE" in err
