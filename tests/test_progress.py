"""The progress line of long work (reconciler/progress.py): what a user waiting on a
terminal, or reading the daemon's journal, sees of a long load or pass, and that short
work shows nothing. Time is a clock the test drives, never the wall clock."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from reconciler.engine.plan import plan
from reconciler.loader import load_directory
from reconciler.progress import Progress, for_log, for_stream
from tests.engine.conftest import context_for, empty, revision, vm_yaml
from tests.hosts import CLASS
from tests.hosts import vm_yaml as host_vm_yaml


class Clock:
    """A clock that moves `tick` seconds each time it is read."""

    def __init__(self, tick: float) -> None:
        self.now = 1000.0
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(written: str) -> str:
    """What a terminal shows after `written`: \r returns to the line's start, ESC[K
    erases from the cursor to the line's end, \n starts a new line."""
    lines: list[str] = []
    line, cursor = "", 0
    for character in written.replace("\x1b[K", "\x00"):
        if character == "\r":
            cursor = 0
        elif character == "\x00":
            line = line[:cursor]
        elif character == "\n":
            lines.append(line)
            line, cursor = "", 0
        else:
            line = line[:cursor] + character + line[cursor + 1 :]
            cursor += 1
    return "\n".join([*lines, line]).rstrip("\n")


def repository(root: Path, vms: int) -> Path:
    root.mkdir()
    (root / "class.yaml").write_text(CLASS, encoding="utf-8")
    for index in range(vms):
        (root / f"vm-{index:03d}.yaml").write_text(host_vm_yaml(f"vm-{index:03d}"), "utf-8")
    return root


def test_a_long_load_on_a_terminal_shows_one_line_that_overwrites_itself(tmp_path: Path) -> None:
    # given a repository of 41 files read at half a second each, on a terminal
    root = repository(tmp_path / "repo", 40)
    terminal = Terminal()
    steps = for_stream("validate", terminal, clock=Clock(0.5))
    # when it is loaded
    load_directory(root, step=steps.step)
    # then the line appears once 2 s have passed, redrawn in place, never on a new line
    drawn = [part for part in terminal.getvalue().split("\r") if part]
    assert "\n" not in terminal.getvalue()
    assert drawn[0] == "validate: 3/41 files read, 2 s\x1b[K"
    assert drawn[-1] == "validate: 40/41 files read, 20 s\x1b[K"
    assert screen(terminal.getvalue()) == "validate: 40/41 files read, 20 s"
    # at most every quarter second of the clock: here every read, half a second apart
    assert len(drawn) == 38
    # and when the command is done, nothing of it is left
    steps.finish()
    assert screen(terminal.getvalue()) == ""


def test_a_short_load_shows_nothing(tmp_path: Path) -> None:
    root = repository(tmp_path / "repo", 40)
    terminal, log = Terminal(), io.StringIO()
    # every file read in a millisecond: 41 ms in all
    steps = for_stream("validate", terminal, clock=Clock(0.001))
    logged = for_stream("validate", log, clock=Clock(0.001))

    load_directory(root, step=steps.step)
    load_directory(root, step=logged.step)
    steps.finish()

    assert terminal.getvalue() == ""
    assert log.getvalue() == ""


def test_other_output_erases_the_line_and_the_next_step_draws_it_again() -> None:
    terminal = Terminal()
    steps = for_stream("apply", terminal, clock=Clock(1.0))
    for done in range(4):
        steps.update("actions done", done, 10)
    # an action's own line is printed: the progress line goes first
    steps.interrupt()
    terminal.write("[5/10] start vm-4.default\n")
    steps.update("actions done", 4, 10)

    assert screen(terminal.getvalue()) == (
        "[5/10] start vm-4.default\napply: 4/10 actions done, 5 s"
    )


def test_a_long_pass_in_the_daemon_logs_a_line_every_ten_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a revision of 40 VMs for this host, planned at a second a VM by the clock
    context = context_for(revision(*(vm_yaml(f"vm-{n:02d}") for n in range(40))))
    logger = logging.getLogger("reconciler.daemon")
    steps = for_log("pass", logger, clock=Clock(1.0))
    # when the engine plans them with the daemon's progress as its step callback
    with caplog.at_level(logging.INFO, logger="reconciler.daemon"):
        result = plan(context, empty(), step=steps.step)
    # then the journal has a line every ten seconds, from the tenth on, saying how far
    assert len(result.statuses) == 40
    assert [r.getMessage() for r in caplog.records] == [
        "pass: 9/40 VMs planned, 10 s",
        "pass: 19/40 VMs planned, 20 s",
        "pass: 29/40 VMs planned, 30 s",
        "pass: 39/40 VMs planned, 40 s",
    ]


def test_a_log_keeps_its_lines_when_the_work_is_done() -> None:
    log = io.StringIO()
    steps = for_stream("apply", log, clock=Clock(4.0))
    for done in range(10):
        steps.update("actions done", done, 10)
    steps.finish()

    assert log.getvalue() == (
        "apply: 2/10 actions done, 12 s\n"
        "apply: 5/10 actions done, 24 s\n"
        "apply: 8/10 actions done, 36 s\n"
    )


def test_an_unknown_total_is_a_count() -> None:
    shown: list[str] = []
    steps = Progress("import", shown.append, delay=0, interval=0, clock=Clock(1.0))
    steps.update("MiB copied", 512)

    assert shown == ["import: 512 MiB copied, 1 s"]
