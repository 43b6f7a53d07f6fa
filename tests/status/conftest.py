"""Real Git for the status tests: a bare remote seeded with a manifest, and a clone of
it that plays "someone else" pushing."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.api import ObjectId
from reconciler.engine.desired import HostContext
from reconciler.engine.plan import Plan
from reconciler.engine.status import Condition, VMStatus
from tests.source.conftest import git

MANIFEST = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: linux-vm
  namespace: default
spec:
  virtualMachineClassName: generic
"""


@dataclass
class Remote:
    """A bare repository with branch `main`, and an author's clone of it."""

    bare: Path
    author: Path

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def head(self, branch: str = "main") -> str:
        return git(self.bare, "rev-parse", f"refs/heads/{branch}")

    def show(self, path: str, branch: str = "main") -> str | None:
        try:
            return git(self.bare, "show", f"{branch}:{path}")
        except subprocess.CalledProcessError:
            return None

    def files(self, branch: str = "main") -> list[str]:
        return git(self.bare, "ls-tree", "-r", "--name-only", branch).splitlines()

    def push_manifest(self, name: str, text: str) -> str:
        """Someone else's commit on main, pushed from the author's clone."""
        git(self.author, "pull", "--quiet", "--ff-only")
        (self.author / name).write_text(text, encoding="utf-8")
        git(self.author, "add", name)
        git(self.author, "commit", "--quiet", "-m", f"add {name}")
        git(self.author, "push", "--quiet", "origin", "main")
        return git(self.author, "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    author = tmp_path / "author"
    git(tmp_path, "clone", "--quiet", str(bare), str(author))
    git(author, "checkout", "--quiet", "-b", "main")
    (author / "vm.yaml").write_text(MANIFEST, encoding="utf-8")
    git(author, "add", "vm.yaml")
    git(author, "commit", "--quiet", "-m", "seed")
    git(author, "push", "--quiet", "origin", "main")
    return Remote(bare, author)


def host(node_name: str) -> HostContext:
    return HostContext(node_name=node_name, cpu_capacity_millicores=16_000)


def vm(name: str, namespace: str = "default") -> ObjectId:
    return ObjectId("VirtualMachine", namespace, name)


def running(node_name: str, cores: int = 1) -> VMStatus:
    return VMStatus(
        phase="Running",
        node_name=node_name,
        conditions=[Condition("AgentReady", True, "AgentReady")],
        cores=cores,
        core_fraction="10%",
        requested_millicores=100 * cores,
        sockets=1,
        cores_per_socket=cores,
        memory="1Gi",
        revision="rev1",
        created="2024-01-01T00:00:00Z",
    )


def plan_of(node_name: str, *names: str) -> Plan:
    """The plan of a host that runs the VMs `names`, all settled."""
    return Plan(statuses={vm(name): running(node_name) for name in names})
