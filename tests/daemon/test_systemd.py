"""The unit file passes systemd's own verifier, with the binary where the docs install it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "reconciler.service"
INSTALLED = "/opt/vm-reconciler/bin/reconciler"


def verify(unit_text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    analyzer = shutil.which("systemd-analyze")
    if analyzer is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package (make deps)")
    unit = directory / "reconciler.service"
    unit.write_text(unit_text, encoding="utf-8")
    return subprocess.run(
        [analyzer, "verify", str(unit)], capture_output=True, text=True, check=False
    )


def installed_here(text: str) -> str:
    # The unit names the documented install path; point it at this checkout's binary.
    return text.replace(INSTALLED, str(Path(sys.executable).with_name("reconciler")))


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED in text
    result = verify(installed_here(text), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_unit_asks_for_notify_watchdog_and_restart() -> None:
    settings = dict(
        line.split("=", 1)
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert settings["Type"] == "notify"
    assert settings["Restart"] == "on-failure"
    assert int(settings["WatchdogSec"].rstrip("s")) > 0
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"


def test_the_verifier_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = installed_here(UNIT.read_text(encoding="utf-8")).replace("Type=notify", "Type=notifyy")
    result = verify(broken, tmp_path)
    assert "Failed to parse service type" in result.stderr
