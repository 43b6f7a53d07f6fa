"""Manifest repositories written as YAML text in tmp_path, and the real CLI run on them."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.findings import Finding
from reconciler.loader import LoadResult, load_directory
from reconciler.rules import check

# The sizing policies of the reference's example class (dvp-virtual-machines.txt).
REFERENCE_CLASS = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: generic
spec:
  cpu:
    type: Host
  sizingPolicies:
    - cores:
        min: 1
        max: 4
      memory:
        min: 1Gi
        max: 8Gi
      coreFractions: [5, 10, 20, 50, 100]
    - cores:
        min: 5
        max: 8
      memory:
        min: 5Gi
        max: 16Gi
      coreFractions: [20, 50, 100]
"""

# A class without sizing policies: any core count the topology allows fits it.
OPEN_CLASS = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: open
spec:
  cpu:
    type: HostPassthrough
"""


# A VM spec part: cloud-init from the Secret `cloud-init` (vm_yaml(extra_spec=...)).
USER_DATA_REF = """\
provisioning:
  type: UserDataRef
  userDataRef:
    kind: Secret
    name: cloud-init
"""


def vm_yaml(
    name: str = "linux-vm",
    *,
    cores: int = 1,
    memory: str = "1Gi",
    fraction: str | None = "10%",
    vmclass: str = "generic",
    disks: Sequence[str] | None = None,
    namespace: str | None = None,
    ip: str | None = None,
    extra_spec: str = "",
) -> str:
    """A VirtualMachine manifest; `extra_spec` is YAML indented as a child of spec.

    `disks` are VirtualDisk names, or `Kind/name` for images.
    """
    lines = [
        "apiVersion: virtualization.deckhouse.io/v1alpha2",
        "kind: VirtualMachine",
        "metadata:",
        f"  name: {name}",
    ]
    if namespace is not None:
        lines.append(f"  namespace: {namespace}")
    lines += ["spec:", f"  virtualMachineClassName: {vmclass}"]
    if ip is not None:
        lines.append(f"  virtualMachineIPAddressName: {ip}")
    lines += ["  cpu:", f"    cores: {cores}"]
    if fraction is not None:
        lines.append(f"    coreFraction: {fraction}")
    lines += ["  memory:", f"    size: {memory}", "  blockDeviceRefs:"]
    for device in disks if disks is not None else [f"{name}-root"]:
        kind, _, device_name = device.rpartition("/")
        lines += [f"    - kind: {kind or 'VirtualDisk'}", f"      name: {device_name}"]
    text = "\n".join(lines) + "\n"
    if extra_spec:
        text += textwrap.indent(textwrap.dedent(extra_spec), "  ")
    return text


def disk_yaml(name: str, *, size: str = "10Gi", namespace: str | None = None) -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
        "kind: VirtualDisk\n"
        f"metadata:\n  name: {name}{ns}\n"
        f"spec:\n  persistentVolumeClaim:\n    size: {size}\n"
    )


def vmip_yaml(name: str, static_ip: str | None = None) -> str:
    spec = f"  type: Static\n  staticIP: {static_ip}\n" if static_ip else "  type: Auto\n"
    return (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
        "kind: VirtualMachineIPAddress\n"
        f"metadata:\n  name: {name}\n"
        f"spec:\n{spec}"
    )


def docs(*parts: str) -> str:
    """Several manifests as one multi-document YAML text."""
    return "---\n".join(parts)


@dataclass
class ManifestRepo:
    """A manifests directory in tmp_path; files are written as the test gives them."""

    root: Path
    texts: dict[str, str] = field(default_factory=dict)

    def write(self, relpath: str, text: str) -> Path:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.texts[relpath] = text
        return path

    def where(
        self, relpath: str, needle: str, occurrence: int = 1, *, after: str | None = None
    ) -> tuple[int, int]:
        """1-based line and column where `needle` starts, counted in the text as written.

        With `after`, the search starts below the first line that is exactly `after`
        (leading blanks aside), so one document of a multi-document file can be named.
        """
        seen = 0
        searching = after is None
        for number, line in enumerate(self.texts[relpath].splitlines(), start=1):
            if not searching:
                searching = line.strip() == after
                continue
            column = line.find(needle)
            if column >= 0:
                seen += 1
                if seen == occurrence:
                    return number, column + 1
        raise AssertionError(f"{needle!r} (occurrence {occurrence}) not in {relpath}")

    def line_of(
        self, relpath: str, needle: str, occurrence: int = 1, *, after: str | None = None
    ) -> int:
        return self.where(relpath, needle, occurrence, after=after)[0]

    def load(self) -> LoadResult:
        return load_directory(self.root)

    def findings(self, pool: Sequence[Any] | None = None) -> list[Finding]:
        return check(self.load(), pool)


@pytest.fixture(autouse=True, scope="session")
def _user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`reconciler apply` without --config keeps what it knows of reports under
    $XDG_CACHE_HOME (reports/known.py): the tests', not the user's running them."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    yield
    patch.undo()


@pytest.fixture
def repo(tmp_path: Path) -> ManifestRepo:
    root = tmp_path / "manifests"
    root.mkdir()
    return ManifestRepo(root)


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str

    def json(self) -> list[dict[str, Any]]:
        parsed = json.loads(self.out)
        assert isinstance(parsed, list)
        return parsed


Cli = Callable[..., CliRun]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`reconciler ARGS...` in-process, through reconciler.cli.main, capturing its output."""

    def run(*argv: str | Path) -> CliRun:
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


def validate_json(cli: Cli, repo: ManifestRepo, *extra: str) -> tuple[int, list[dict[str, Any]]]:
    run = cli("validate", repo.root, "--format", "json", *extra)
    return run.code, run.json()


TEXT_LINE = re.compile(
    r"^(?P<path>[^:\s]+):(?P<line>\d+):(?P<column>\d+):"
    r"(?: (?P<object>[A-Za-z]+/[^\s:]+):)? (?P<message>.*) \[(?P<rule>[a-z-]+)\]$"
)


def parse_text(out: str) -> list[dict[str, Any]]:
    """The finding lines of text output, as dicts like the JSON output's."""
    parsed = []
    for line in out.splitlines():
        match = TEXT_LINE.match(line)
        if match:
            item: dict[str, Any] = match.groupdict()
            item["line"], item["column"] = int(item["line"]), int(item["column"])
            item["object"] = item["object"] or ""
            parsed.append(item)
    return parsed
