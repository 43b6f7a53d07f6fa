"""Reports nothing changed are neither rendered nor parsed again, also in a new process.

The host keeps, in its cache directory, the digest of every report text it rendered
with the document it came from (reconciler/reports/known.py). A new process (a
one-shot `reconciler apply`, a restarted daemon) starts with nothing else in memory:
here that is a fresh documents._Memo and KnownReports, reading the same cache file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.plan import Plan
from reconciler.reports import documents, known
from reconciler.reports.documents import read_document, status_path
from reconciler.reports.known import KnownReports, save_known_reports
from reconciler.reports.tree import write_host_reports
from reconciler.reports.yamlwriter import ruamel_text
from tests.reports.conftest import host, plan_of, running, vm


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This host's cache file, used by the process as it starts."""
    path = tmp_path / "cache" / "known-reports.json"
    monkeypatch.setattr(documents, "_MEMO", documents._Memo())
    monkeypatch.setattr(known, "KNOWN", KnownReports())
    known.KNOWN.use(path)
    return path


def _new_process(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """The process ends (saving what it knows), and a new one starts on the cache."""
    save_known_reports()
    monkeypatch.setattr(documents, "_MEMO", documents._Memo())
    monkeypatch.setattr(known, "KNOWN", KnownReports())
    known.KNOWN.use(cache)


def _no_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    def rendered(document: Any) -> str:
        raise AssertionError(f"rendered again: {document['metadata']}")

    monkeypatch.setattr(documents, "yaml_text", rendered)
    monkeypatch.setattr(documents, "ruamel_text", rendered)


def _no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def parsed(text: str, name: str) -> Any:
        raise AssertionError(f"parsed again: {name}")

    monkeypatch.setattr(documents, "load_config_text", parsed)


def _files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(root.rglob("*.yaml"))}


def test_a_new_process_renders_no_unchanged_report(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = tmp_path / "status"
    write_host_reports(status, plan_of("hv1", "a", "b"), host("hv1"), "rev1")
    before = _files(status)
    _new_process(monkeypatch, cache)
    _no_rendering(monkeypatch)
    _no_parsing(monkeypatch)

    changed = write_host_reports(status, plan_of("hv1", "a", "b"), host("hv1"), "rev1")

    assert changed == []
    assert _files(status) == before


def test_a_new_process_writes_the_report_that_changed(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = tmp_path / "status"
    write_host_reports(status, plan_of("hv1", "a", "b"), host("hv1"), "rev1")
    _new_process(monkeypatch, cache)

    resized = Plan(statuses={vm("a"): running("hv1", cores=2), vm("b"): running("hv1")})

    changed = write_host_reports(status, resized, host("hv1"), "rev1")

    assert status_path(status, vm("a")) in changed
    assert status_path(status, vm("b")) not in changed
    assert read_document(status_path(status, vm("a")))["status"]["resources"]["cpu"]["cores"] == 2


def test_a_report_edited_by_hand_is_written_again_though_its_document_is_known(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = tmp_path / "status"
    write_host_reports(status, plan_of("hv1", "a"), host("hv1"), "rev1")
    report = status_path(status, vm("a"))
    written = report.read_text()
    report.write_text(written.replace("phase: Running", "phase: Stopped"))
    _new_process(monkeypatch, cache)

    changed = write_host_reports(status, plan_of("hv1", "a"), host("hv1"), "rev1")

    assert report in changed
    assert report.read_text() == written


def test_a_report_an_older_host_wrote_is_left_as_it_is(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the reports as a host of an earlier version writes them (ruamel.yaml alone,
    # no cache), read by a host of this version that knows nothing of them yet
    status = tmp_path / "status"
    write_host_reports(status, plan_of("hv1", "a"), host("hv1"), "rev1")
    report = status_path(status, vm("a"))
    report.write_text(ruamel_text(read_document(report)))
    before = _files(status)
    cache.unlink(missing_ok=True)
    _new_process(monkeypatch, cache)

    changed = write_host_reports(status, plan_of("hv1", "a"), host("hv1"), "rev1")

    assert changed == []
    assert _files(status) == before


def test_an_old_report_whose_text_is_known_is_read_without_parsing(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = tmp_path / "status"
    write_host_reports(status, plan_of("hv1", "a"), host("hv1"), "rev1")
    report = status_path(status, vm("a"))
    expected = read_document(report)
    _new_process(monkeypatch, cache)
    _no_parsing(monkeypatch)

    assert read_document(report) == expected


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[]", b'{"format": "other", "reports": {}}', b"\xff\xfe"],
    ids=["empty", "broken", "a-list", "foreign", "not-utf8"],
)
def test_a_damaged_cache_file_costs_only_speed(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    status = tmp_path / "status"
    write_host_reports(status, plan_of("hv1", "a"), host("hv1"), "rev1")
    before = _files(status)
    save_known_reports()
    cache.write_bytes(content)
    _new_process(monkeypatch, cache)

    changed = write_host_reports(status, plan_of("hv1", "a"), host("hv1"), "rev1")

    assert changed == []
    assert _files(status) == before
    assert read_document(status_path(status, vm("a")))["status"]["nodeName"] == "hv1"


def test_a_cache_that_cannot_be_written_costs_only_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setattr(known, "KNOWN", KnownReports())
    known.KNOWN.use(blocked / "known-reports.json")
    status = tmp_path / "status"

    changed = write_host_reports(status, plan_of("hv1", "a"), host("hv1"), "rev1")
    save_known_reports()

    assert status_path(status, vm("a")) in changed


def test_the_cache_keeps_one_entry_per_report_however_often_reports_change(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = tmp_path / "status"
    for cores in range(1, 6):
        plan = Plan(statuses={vm("a"): running("hv1", cores=cores), vm("b"): running("hv1")})
        write_host_reports(status, plan, host("hv1"), "rev1")
        save_known_reports()

    entries = json.loads(cache.read_text())["reports"]

    assert sorted(entries) == sorted(str(path) for path in status.rglob("*.yaml"))


def test_after_each_pass_the_daemon_saves_the_cache_at_most_once_a_minute(
    tmp_path: Path,
) -> None:
    now = [100.0]
    cache = tmp_path / "known-reports.json"
    known_reports = KnownReports(clock=lambda: now[0])
    known_reports.use(cache)
    known_reports.add(str(tmp_path / "a.yaml"), "a: 1\n", '{"a":1}')
    known_reports.save(lazily=True)
    assert len(json.loads(cache.read_text())["reports"]) == 1  # the first pass's, at once

    known_reports.add(str(tmp_path / "b.yaml"), "b: 1\n", '{"b":1}')
    now[0] += 30
    known_reports.save(lazily=True)
    assert len(json.loads(cache.read_text())["reports"]) == 1  # half a minute later: not yet

    now[0] += 31
    known_reports.save(lazily=True)
    assert len(json.loads(cache.read_text())["reports"]) == 2

    known_reports.add(str(tmp_path / "c.yaml"), "c: 1\n", '{"c":1}')
    known_reports.save()  # the daemon stopping, or a one-shot command's end
    assert len(json.loads(cache.read_text())["reports"]) == 3
