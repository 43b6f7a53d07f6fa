"""The daemon keeps what it knows of the reports it wrote in its cacheDir
(reports/known.py), so that a restarted daemon renders and parses no unchanged report."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.daemonlab import Daemon, wait_until
from tests.hosts import CLASS, vm_yaml


def test_the_daemon_keeps_its_reports_digests_in_its_cache_dir(
    daemons: list[Daemon], tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
    (manifests / "vm.yaml").write_text(vm_yaml(name="vm"), encoding="utf-8")
    daemon = Daemon(
        tmp_path / "hv",
        {
            "repository": {"url": str(manifests), "intervalSeconds": 3600},
            "libvirtUri": "test:///default",
            "nodeName": "hv",
            "storagePool": "default-pool",
            "network": "default",
        },
    )
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    report = manifests / "status" / "virtualmachines" / "default" / "vm.yaml"
    cache_file = tmp_path / "hv" / "cache" / "known-reports.json"

    def known() -> list[str]:
        if not cache_file.is_file():
            return []
        return sorted(json.loads(cache_file.read_text(encoding="utf-8"))["reports"])

    try:
        wait_until("the VM's report known in the cache", lambda: str(report) in known(), 30)
    except AssertionError as error:
        raise AssertionError(f"{error}; the daemon's log ends:\n{daemon.log_tail(30)}") from None
    assert known() == sorted(str(path) for path in (manifests / "status").rglob("*.yaml"))
    assert daemon.terminate() == 0
