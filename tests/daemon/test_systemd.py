"""The unit file passes systemd's own verifier and security analysis, with the binary where
the docs install it, and bounds what the daemon may use."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "reconciler.service"
INSTALLED = "/opt/vm-reconciler/bin/reconciler"


def analyzer() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package (make deps)")
    return path


def verify(unit_text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    unit = directory / "reconciler.service"
    unit.write_text(unit_text, encoding="utf-8")
    return subprocess.run(
        [analyzer(), "verify", str(unit)], capture_output=True, text=True, check=False
    )


def installed_here(text: str) -> str:
    # The unit names the documented install path; point it at this checkout's binary.
    return text.replace(INSTALLED, str(Path(sys.executable).with_name("reconciler")))


def unit_settings() -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    )


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED in text
    result = verify(installed_here(text), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_unit_asks_for_notify_watchdog_and_restart() -> None:
    settings = unit_settings()
    assert settings["Type"] == "notify"
    assert settings["Restart"] == "on-failure"
    assert int(settings["WatchdogSec"].rstrip("s")) > 0
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"


def test_the_verifier_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = installed_here(UNIT.read_text(encoding="utf-8")).replace("Type=notify", "Type=notifyy")
    result = verify(broken, tmp_path)
    assert "Failed to parse service type" in result.stderr


# `systemd-analyze security` rates the unit 1.3 (systemd 252); 1.9 before ProtectProc,
# ProcSubset, PrivateMounts and the system calls of @privileged and @resources were taken away.
EXPOSURE_THRESHOLD = 15  # tenths


def security(unit_text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    unit = directory / "reconciler.service"
    unit.write_text(unit_text, encoding="utf-8")
    return subprocess.run(
        [
            analyzer(),
            "security",
            "--offline=yes",
            f"--threshold={EXPOSURE_THRESHOLD}",
            "--no-pager",
            str(unit),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_units_exposure_stays_below_the_threshold(tmp_path: Path) -> None:
    result = security(installed_here(UNIT.read_text(encoding="utf-8")), tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    for taken in ("ProtectProc=", "ProcSubset=", "PrivateMounts=", "~@privileged", "~@resources"):
        line = next(row for row in result.stdout.splitlines() if taken in row)
        assert line.lstrip().startswith("✓"), line


def test_the_threshold_would_catch_the_hardening_taken_away(tmp_path: Path) -> None:
    text = installed_here(UNIT.read_text(encoding="utf-8"))
    loose = "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith(
            ("ProtectProc=", "ProcSubset=", "PrivateMounts=", "SystemCallFilter=~")
        )
    )
    assert security(loose, tmp_path).returncode != 0


def test_the_unit_bounds_memory_tasks_and_descriptors_with_room_for_a_thousand_vms() -> None:
    from reconciler.daemon.http import DEFAULT_MAX_CONNECTIONS, MAX_WEBHOOK_BODY

    settings = unit_settings()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    memory_max = int(settings["MemoryMax"][:-1]) * units[settings["MemoryMax"][-1]]
    # 130-150 MiB measured at 1,000 VMs, plus every HTTP connection holding a full body.
    peak = 150 * (1 << 20) + DEFAULT_MAX_CONNECTIONS * MAX_WEBHOOK_BODY
    assert memory_max >= 4 * peak
    assert 64 <= int(settings["TasksMax"]) <= 4096
    # About 20 descriptors at rest, one per HTTP connection on top.
    assert int(settings["LimitNOFILE"]) >= 10 * (20 + DEFAULT_MAX_CONNECTIONS)
