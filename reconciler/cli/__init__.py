"""`reconciler` command line: argument parsing and printing only.

Start-up imports nothing but argparse: each command's module (and with it libvirt,
GitPython, the pydantic models or the engine) is imported only when that command is
the one asked for, so `reconciler --version` and `reconciler --help` answer at once.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from reconciler import __version__

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


class Command:
    """A command as `reconciler --help` lists it, and where its arguments are added.

    A plain class: a dataclass or NamedTuple would import inspect or typing, about a
    quarter of what `reconciler --version` costs beyond the interpreter's own start.
    `arguments` names the module's function adding the description, arguments and run.
    """

    __slots__ = ("arguments", "help", "module", "name")

    def __init__(self, name: str, help: str, module: str, arguments: str) -> None:
        self.name = name
        self.help = help
        self.module = module
        self.arguments = arguments


COMMANDS: tuple[Command, ...] = (
    Command(
        "validate",
        "check manifests against the schema and the platform's rules",
        "reconciler.cli.validate",
        "validate_arguments",
    ),
    Command(
        "verify",
        "check who signed each commit of a range, as a host with repository.verify does",
        "reconciler.cli.verify",
        "verify_arguments",
    ),
    Command(
        "plan",
        "show what a pass would change on this host, changing nothing",
        "reconciler.cli.engine",
        "plan_arguments",
    ),
    Command(
        "apply", "run one reconcile pass on this host", "reconciler.cli.engine", "apply_arguments"
    ),
    Command(
        "run",
        "run the daemon: follow the repository and reconcile this host",
        "reconciler.cli.daemon",
        "run_arguments",
    ),
    Command(
        "get",
        "list objects with the status the hosts report, as `d8 k get` does",
        "reconciler.cli.get",
        "get_arguments",
    ),
    Command(
        "describe",
        "show one VM's spec, status and conditions, as `d8 k describe vm` does",
        "reconciler.cli.get",
        "describe_arguments",
    ),
    Command(
        "vm",
        "start, stop, restart or evict a VM through a VirtualMachineOperation in Git",
        "reconciler.cli.vm",
        "vm_arguments",
    ),
    Command(
        "node",
        "drain or uncordon a host through its Node manifest in Git",
        "reconciler.cli.node",
        "node_arguments",
    ),
    Command(
        "hook",
        "libvirt's QEMU hook: refuse an incoming live migration the host cannot take",
        "reconciler.cli.hook",
        "hook_arguments",
    ),
    Command(
        "console",
        "attach to a VM's serial console (^] detaches)",
        "reconciler.cli.console",
        "console_arguments",
    ),
)


def build_parser(argv: Sequence[str] = (), *, started: bool = False) -> argparse.ArgumentParser:
    """Every command with its one-line help; the arguments only of the command argv
    names, which is the only command module imported. `started`: this process was
    started for the command (see import_command)."""
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="GitOps reconciler for virtual machines on libvirt/KVM hosts.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    named = command_named(argv)
    for command in COMMANDS:
        command_parser = commands.add_parser(command.name, help=command.help)
        if command.name == named:
            module = import_command(command.module, started)
            add_arguments: Callable[[argparse.ArgumentParser], None] = getattr(
                module, command.arguments
            )
            add_arguments(command_parser)
    return parser


def import_command(name: str, started: bool) -> ModuleType:
    """The command's module, imported here, for start-up speed: only the command that
    runs pays for it.

    Importing it makes some 30,000 objects the collector tracks (the daemon's, 50,000),
    the pydantic models' above all, that live as long as the process. The collector
    would walk them again and again and find nothing to free, about 7% of `get`'s and
    `validate`'s start: it waits while they are made, and in a process started for the
    command they are frozen (gc.freeze), out of every later collection's way. A caller
    of main() that passes argv (the tests) keeps its own objects collectable."""
    if started:
        _without_pydantic_plugins()
    collecting = gc.isenabled()
    gc.disable()
    try:
        # for start-up speed: only the command that runs pays for its imports
        return importlib.import_module(name)
    finally:
        if started:
            gc.freeze()
        if collecting:
            gc.enable()


def _no_plugins() -> tuple[()]:
    return ()


def _without_pydantic_plugins() -> None:
    """pydantic, as it builds its first validator, looks for plugins of its own among
    the entry points of every installed distribution: it imports importlib.metadata
    (and with it the email package) and reads each distribution's metadata, some 16 ms
    of every command that reads a manifest, a twentieth of a no-op `apply` (issue 16).
    The command line takes no pydantic plugin: in a process started for a command,
    pydantic's plugin loader is one that finds none. (PYDANTIC_DISABLE_PLUGINS would
    spare the search, not the imports.) A loader imported already is left alone."""
    loader = ModuleType("pydantic.plugin._loader")
    loader.get_plugins = _no_plugins  # type: ignore[attr-defined]
    sys.modules.setdefault(loader.__name__, loader)


def command_named(argv: Sequence[str]) -> str | None:
    """The first word of argv that is not an option: the command, as the top-level
    options (--help, --version) take no value."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command argv names; None: this process's own arguments, as the
    `reconciler` script and `python -m reconciler` start it."""
    started = argv is None
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv, started=started)
    args = parser.parse_args(argv)
    # Whether what the command makes lives until the process ends (cli/engine.py).
    args.own_process = started
    try:
        code: int = args.run(args)
    except BrokenPipeError:
        return EXIT_OK
    if started and getattr(args, "ends_its_process", False):
        end_process(code)
    return code


def end_process(code: int) -> None:
    """End this process now, with `code`, as its exit would, less the interpreter's
    freeing of every module and object one by one: some 8 ms of a one-shot `apply`
    (issue 16), the commands that opt in (`ends_its_process`). What is written is
    flushed and the exit functions run (logging's flush, temporary files' clean-up)
    first; with an output that cannot be flushed, or a thread the exit would wait
    for, it returns and the interpreter ends the process as it always did."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return
    threading = sys.modules.get("threading")  # not imported: no thread was started
    if threading is not None and any(
        not t.daemon for t in threading.enumerate() if t is not threading.main_thread()
    ):
        return
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
