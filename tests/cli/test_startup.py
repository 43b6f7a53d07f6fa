"""What starting `reconciler` loads: only the command asked for, so `--version`, `--help`
and the commands that read files answer at once (issue 13; timed by bench/startup.py).

Each command runs in a fresh interpreter, which then lists the modules it imported and
the kinds whose pydantic validators it built (each is built when first used).
"""

from __future__ import annotations

import gc
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler import __version__
from reconciler.cli import main
from tests.hosts import CLASS, HOST_XML, host_options, vm_yaml

CHECKOUT = Path(__file__).resolve().parents[2]
SAMPLE_REPO = CHECKOUT / "sample-repo"
# Each takes a good part of the start-up budget to import, and none is needed to parse
# arguments: libvirt-python, GitPython, the pydantic models, the YAML parser, the planner.
HEAVY = ("libvirt", "git", "pydantic", "ruamel", "reconciler.engine")
# Argument parsing needs neither: a dataclass (inspect) or a NamedTuple (typing) in the
# command table costs about a quarter of what --version adds to the interpreter's start.
PARSING_SKIPS = ("dataclasses", "inspect", "typing")
# What reading manifests or reports does not need: the engine, the host configuration,
# and libvirt and Git, which only a pass or the daemon talks to.
READING_SKIPS = ("libvirt", "git", "reconciler.engine", "reconciler.config")
# The modules of reconciler.api defining kinds other than VirtualMachine and what it uses.
OTHER_KINDS_THAN_VM = tuple(
    f"reconciler.api.{module}"
    for module in ("network", "node", "operation", "secret", "storage", "vmclass")
)
COMMANDS = (
    "validate",
    "verify",
    "plan",
    "apply",
    "run",
    "get",
    "describe",
    "vm",
    "node",
    "hook",
    "console",
)
# Runs `reconciler ARGS...` as the `reconciler` script does (main() reads sys.argv),
# then prints on a last line, as JSON, the kinds whose validators were built, the
# modules loaded and how many objects the garbage collector has frozen.
PROBE = """\
import gc, json, os, sys
from reconciler.cli import main
os._exit = sys.exit  # plan and apply end their process themselves: the probe looks on
try:
    main()
except SystemExit:
    pass
modules = sorted(sys.modules)  # before KINDS imports the kinds the command did not
api = sys.modules.get("reconciler.api")
kinds = api.KINDS.items() if api else ()
built = sorted(kind for kind, model in kinds if model.__pydantic_complete__)
models = []
if "pydantic" in sys.modules:
    from pydantic import BaseModel
    pending = [BaseModel]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if model.__module__.startswith("reconciler.") and model.__pydantic_complete__:
            models.append(model.__name__)
print()
print(json.dumps([built, sorted(set(models)), modules, gc.get_freeze_count()]))
"""


@dataclass(frozen=True)
class Probe:
    output: str
    modules: set[str]
    built_kinds: list[str]
    # Every pydantic model of the package whose validator was built.
    built_models: list[str]
    frozen: int


def run_probe(*argv: str) -> Probe:
    """The command's output, the modules its interpreter loaded, the kinds it built and
    the objects it froze."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    output, _, last = done.stdout.rstrip("\n").rpartition("\n")
    built, models, modules, frozen = json.loads(last)
    return Probe(output.removesuffix("\n"), set(modules), built, models, frozen)


def loaded(modules: set[str], *names: str) -> list[str]:
    return sorted(n for n in names if n in modules)


def test_importing_the_command_line_loads_no_command() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, reconciler.cli; print(*sys.modules)"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert loaded(set(done.stdout.split()), *HEAVY) == []


def test_version_is_printed_without_loading_any_command() -> None:
    probe = run_probe("--version")

    assert probe.output.strip() == f"reconciler {__version__}"
    assert loaded(probe.modules, *HEAVY) == []


def test_version_loads_neither_dataclasses_nor_typing() -> None:
    probe = run_probe("--version")

    assert probe.output.strip() == f"reconciler {__version__}"
    assert loaded(probe.modules, *PARSING_SKIPS) == []


def test_help_lists_every_command_without_loading_any() -> None:
    probe = run_probe("--help")

    listed = re.findall(r"^    (\S+) +\S", probe.output, re.MULTILINE)
    assert tuple(listed) == COMMANDS
    assert loaded(probe.modules, *HEAVY) == []


def test_validate_loads_neither_libvirt_nor_git(tmp_path: Path) -> None:
    probe = run_probe("validate", str(tmp_path))

    assert probe.output.startswith("ok: 0 objects")
    assert loaded(probe.modules, "libvirt", "git") == []


def test_plan_loads_no_git(tmp_path: Path) -> None:
    # `apply` and `plan` read a directory: Git is the daemon's (and verify's) business.
    probe = run_probe("plan", str(tmp_path), "--libvirt-uri", "test:///default")

    assert "reconciler.source.secrets" in probe.modules  # SOPS-encrypted Secrets
    assert loaded(probe.modules, "git") == []


def test_plan_of_a_repository_without_secrets_builds_no_sops_validator(tmp_path: Path) -> None:
    shutil.copy(SAMPLE_REPO / "classes" / "host.yaml", tmp_path)

    probe = run_probe("plan", str(tmp_path), "--libvirt-uri", "test:///default")

    assert "reconciler.api.sops" in probe.modules  # SOPS-encrypted Secrets
    assert probe.built_kinds == ["VirtualMachineClass"]
    assert [m for m in probe.built_models if "Sops" in m or m in ("AgeStanza", "KeyGroup")] == []


def test_a_command_looks_for_no_pydantic_plugin(tmp_path: Path) -> None:
    # Looking would import importlib.metadata and read every installed distribution.
    shutil.copy(SAMPLE_REPO / "classes" / "host.yaml", tmp_path)
    (tmp_path / "broken.yaml").write_text(
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualMachineClass\n"
        "metadata: {name: broken}\nspec: {cpu: {type: Nowhere}}\n",
        encoding="utf-8",
    )

    validated = run_probe("validate", str(tmp_path))
    planned = run_probe("plan", str(tmp_path), "--libvirt-uri", "test:///default")

    assert "broken.yaml:4" in validated.output  # the models validate as before
    assert loaded(validated.modules | planned.modules, "importlib.metadata") == []


def test_plan_loads_neither_sops_nor_modules_its_pass_does_not_use(tmp_path: Path) -> None:
    # sops (and subprocess) only decrypts Secrets; socket and html would be imported
    # for one function each, which has its own of them.
    shutil.copy(SAMPLE_REPO / "classes" / "host.yaml", tmp_path)

    probe = run_probe("plan", str(tmp_path), "--libvirt-uri", "test:///default")

    assert probe.output.endswith("0 VM(s) with changes, 0 unchanged")
    assert loaded(probe.modules, "reconciler.source.sops", "subprocess", "socket", "html") == []


def test_validate_loads_neither_the_engine_nor_the_config_nor_the_reports(
    tmp_path: Path,
) -> None:
    shutil.copy(SAMPLE_REPO / "classes" / "host.yaml", tmp_path)

    probe = run_probe("validate", str(tmp_path))

    assert probe.output.startswith("ok: 1 objects in 1 files")
    assert (
        loaded(probe.modules, *READING_SKIPS, "reconciler.reports", "reconciler.cli.tables") == []
    )


def test_validate_builds_the_validators_of_the_kinds_in_its_files_only(tmp_path: Path) -> None:
    shutil.copy(SAMPLE_REPO / "classes" / "host.yaml", tmp_path)
    shutil.copy(SAMPLE_REPO / "images" / "ubuntu-22-04.yaml", tmp_path)

    probe = run_probe("validate", str(tmp_path))

    assert probe.output.startswith("ok: 2 objects in 2 files")
    assert probe.built_kinds == ["ClusterVirtualImage", "VirtualMachineClass"]


def test_get_from_the_reports_loads_neither_libvirt_nor_git_nor_the_planner(
    checkout: Path,
) -> None:
    probe = run_probe("get", "vm", "--dir", str(checkout))

    assert "linux-vm" in probe.output
    assert loaded(probe.modules, "libvirt", "git", "reconciler.engine.plan") == []


def test_get_from_the_reports_loads_neither_the_engine_nor_the_config_nor_the_rules(
    checkout: Path,
) -> None:
    probe = run_probe("get", "vm", "--dir", str(checkout))

    assert "linux-vm" in probe.output
    assert loaded(probe.modules, *READING_SKIPS, "reconciler.rules") == []


def test_get_imports_the_models_of_the_kind_it_lists_only(checkout: Path) -> None:
    probe = run_probe("get", "vm", "--dir", str(checkout))

    assert "linux-vm" in probe.output
    assert loaded(probe.modules, *OTHER_KINDS_THAN_VM) == []


def test_get_builds_the_validator_of_the_kind_it_lists_only(checkout: Path) -> None:
    probe = run_probe("get", "vm", "--dir", str(checkout))

    assert "linux-vm" in probe.output
    assert probe.built_kinds == ["VirtualMachine"]


def test_the_libvirt_hook_loads_nothing_but_what_it_weighs_with(tmp_path: Path) -> None:
    # libvirtd starts it for every domain it starts, stops or receives, and waits for it.
    probe = run_probe("hook", "qemu", "--cache-dir", str(tmp_path), "vm.ns", "start", "begin", "-")

    assert probe.output == ""
    assert loaded(probe.modules, *HEAVY, *PARSING_SKIPS[:2], "reconciler.api") == []


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_plan_and_apply_end_their_process_with_their_code_and_all_they_wrote(
    tmp_path: Path, command: str
) -> None:
    # They end it themselves, without the interpreter's freeing of every object
    # (cli/__init__.py end_process): nothing of their output, reports or code is lost.
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "class.yaml").write_text(CLASS, encoding="utf-8")
    for index in range(3):
        (repo / f"vm-{index}.yaml").write_text(vm_yaml(name=f"vm-{index}"), encoding="utf-8")
    status = tmp_path / "status"
    extra = ["--detailed-exitcode"] if command == "plan" else ["--status-dir", str(status)]

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            command,
            str(repo),
            *host_options(f"test://{HOST_XML}"),
            *extra,
        ],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == (3 if command == "plan" else 0), done.stderr
    assert done.stdout.endswith("3 VM(s) with changes, 0 unchanged\n")
    if command == "apply":
        assert done.stderr.endswith("[9/9] start vm-2.default\n")
        reports = sorted(p.name for p in (status / "virtualmachines" / "default").iterdir())
        assert reports == ["vm-0.yaml", "vm-1.yaml", "vm-2.yaml"]
        readme = (status / "README.md").read_text(encoding="utf-8")
        assert all(f"| vm-{index} |" in readme for index in range(3))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])

    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: reconciler {command} ")


def test_a_command_started_as_a_process_freezes_the_objects_its_import_made(
    tmp_path: Path,
) -> None:
    probe = run_probe("validate", str(tmp_path))

    assert probe.output.startswith("ok: 0 objects")
    assert probe.frozen > 10_000


def test_main_called_with_arguments_leaves_the_collector_as_it_was(tmp_path: Path) -> None:
    frozen = gc.get_freeze_count()

    code = main(["validate", str(tmp_path)])

    assert code == 0
    assert gc.get_freeze_count() == frozen
    assert gc.isenabled()
