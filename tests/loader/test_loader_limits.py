"""Loading has limits (policies/limits.yaml): a file too deep, too large, or whose
aliases expand too far is one `limits` finding at its file and line, and costs only
that file's objects (issue 12, rows 1 and 3)."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from reconciler.findings import Finding, Rule
from reconciler.loader import LoadResult, load_config_text, load_file, load_text
from reconciler.policies import PolicyError, load_limits
from reconciler.yamltext import Limits
from tests.conftest import ManifestRepo, disk_yaml, docs
from tests.hostile_yaml import alias_bomb, deep_block_mapping, deep_mapping, deep_sequence

SHIPPED = load_limits()


def _limits(**changes: int) -> Limits:
    return SHIPPED.model_copy(update=changes)


def _poisoned(repo: ManifestRepo, name: str, text: str) -> LoadResult:
    """The repository with one good file beside the poisoned one, loaded."""
    repo.write("good.yaml", disk_yaml("kept"))
    repo.write(name, text)
    return repo.load()


def _only_limits_finding(result: LoadResult, path: str) -> Finding:
    [finding] = result.findings
    assert (finding.path, finding.rule, finding.object) == (path, Rule.LIMITS, "")
    return finding


def test_a_10000_deep_sequence_is_one_finding_at_its_line_and_the_other_files_load(
    repo: ManifestRepo,
) -> None:
    result = _poisoned(repo, "deep.yaml", deep_sequence(10_000))

    finding = _only_limits_finding(result, "deep.yaml")
    # `a:` is level 1, the first `[` (column 4) level 2: the 100th `[` is the 101st level.
    assert (finding.line, finding.column) == (1, 4 + 99)
    assert "deeper than 100" in finding.message and "maxDepth" in finding.message
    assert [str(o.id) for o in result.objects] == ["VirtualDisk/default/kept"]


def test_a_3000_deep_mapping_is_one_finding_and_the_other_files_load(
    repo: ManifestRepo,
) -> None:
    result = _poisoned(repo, "deep.yaml", deep_mapping(3_000))

    finding = _only_limits_finding(result, "deep.yaml")
    assert finding.line == 1
    assert [str(o.id) for o in result.objects] == ["VirtualDisk/default/kept"]


def test_a_deep_block_mapping_is_found_at_the_line_that_goes_too_deep(
    repo: ManifestRepo,
) -> None:
    result = _poisoned(repo, "deep.yaml", deep_block_mapping(300))

    finding = _only_limits_finding(result, "deep.yaml")
    # Line N holds the N-th mapping's key; the 101st mapping starts on line 101.
    assert (finding.line, finding.column) == (101, 101)


def test_nesting_that_would_overflow_the_c_parser_is_refused_before_composing() -> None:
    # libyaml's composer recurses in C: composed, this kills the process outright.
    result = load_text(deep_sequence(300_000), "deep.yaml")

    assert [f.rule for f in result.findings] == [Rule.LIMITS]


def test_a_document_after_good_ones_still_costs_its_whole_file() -> None:
    text = docs(disk_yaml("first"), deep_sequence(200))

    result = load_text(text, "mixed.yaml")

    assert result.objects == []
    assert [(f.rule, f.line) for f in result.findings] == [(Rule.LIMITS, 9)]


def test_an_alias_bomb_is_one_finding_at_the_anchor_and_the_other_files_load(
    repo: ManifestRepo,
) -> None:
    bomb = alias_bomb(levels=9, width=10)
    assert len(bomb.encode()) < 1024

    result = _poisoned(repo, "bomb.yaml", bomb)

    finding = _only_limits_finding(result, "bomb.yaml")
    assert "maxAliasExpansion" in finding.message
    # a4 holds ten aliases of a3 (1,111 values each) and is the first to go over 100,000:
    # the finding names the anchor whose expansion did not fit, a3 on line 4.
    assert finding.line == 4
    assert [str(o.id) for o in result.objects] == ["VirtualDisk/default/kept"]


def test_an_alias_of_the_node_that_holds_it_is_a_finding_not_endless() -> None:
    result = load_text("a: &loop [1, *loop]\n", "loop.yaml")

    [finding] = result.findings
    assert (finding.rule, finding.line) == (Rule.LIMITS, 1)


MERGED = (
    "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualDisk\n"
    "metadata:\n  name: merged\n  labels: &common\n    team: web\n"
    "  annotations:\n    <<: *common\n    note: kept\n"
    "spec:\n  persistentVolumeClaim:\n    size: 1Gi\n"
)


def test_a_merge_key_within_the_limit_loads() -> None:
    # `<<: *common` adds three values: the mapping, its key and its value.
    result = load_text(MERGED, "merged.yaml", _limits(max_alias_expansion=3))

    assert result.findings == []
    [loaded] = result.objects
    assert loaded.model.metadata.annotations == {"team": "web", "note": "kept"}


def test_a_merge_key_past_the_limit_is_a_finding_at_the_anchor() -> None:
    result = load_text(MERGED, "merged.yaml", _limits(max_alias_expansion=2))

    [finding] = result.findings
    assert (finding.rule, finding.line, finding.column) == (Rule.LIMITS, 5, 11)
    assert result.objects == []


def test_an_expansion_limit_of_zero_refuses_every_alias_used_but_not_anchors() -> None:
    no_aliases = _limits(max_alias_expansion=0)
    anchored = disk_yaml("anchored").replace("size: 10Gi", "size: &size 10Gi")

    assert load_text(anchored, "anchored.yaml", no_aliases).findings == []
    aliased = anchored + "  storageClassName: *size\n"
    [finding] = load_text(aliased, "aliased.yaml", no_aliases).findings
    assert finding.rule is Rule.LIMITS and "more than 0 values" in finding.message


def test_a_file_larger_than_the_limit_is_refused_and_the_other_files_load(
    repo: ManifestRepo,
) -> None:
    big = disk_yaml("big") + "# " + "x" * (SHIPPED.max_file_bytes + 1) + "\n"

    result = _poisoned(repo, "big.yaml", big)

    finding = _only_limits_finding(result, "big.yaml")
    assert (finding.line, finding.column) == (1, 1)
    assert str(SHIPPED.max_file_bytes) in finding.message
    assert [str(o.id) for o in result.objects] == ["VirtualDisk/default/kept"]


def test_the_size_limit_counts_bytes_not_characters() -> None:
    text = disk_yaml("wide") + "# " + "é" * 600 + "\n"  # 600 characters, 1,200 bytes
    size = len(text.encode())

    assert load_text(text, "wide.yaml", _limits(max_file_bytes=size)).findings == []
    [finding] = load_text(text, "wide.yaml", _limits(max_file_bytes=size - 1)).findings
    assert finding.rule is Rule.LIMITS


def test_limits_are_the_operators_data_in_policies(tmp_path: Path) -> None:
    (tmp_path / "limits.yaml").write_text(
        "maxFileBytes: 100000\nmaxDepth: 3\nmaxAliasExpansion: 10\n", encoding="utf-8"
    )
    limits = load_limits(tmp_path)

    [finding] = load_text("a: [[[1]]]\n", "deep.yaml", limits).findings
    assert "deeper than 3 levels" in finding.message
    assert load_text("a: [[1]]\n", "shallow.yaml", limits).findings[0].rule is Rule.SCHEMA


def test_a_broken_limits_file_is_a_policy_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "limits.yaml").write_text("maxDepth: -1\n", encoding="utf-8")

    with pytest.raises(PolicyError, match=r"limits\.yaml"):
        load_limits(tmp_path)


def test_an_unexpected_error_loading_a_file_is_a_finding_of_that_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import reconciler.loader

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug in the loader")

    monkeypatch.setattr(reconciler.loader, "_subject", broken)

    result = load_text(disk_yaml("any"), "any.yaml")

    [finding] = result.findings
    assert finding.path == "any.yaml" and "a bug in the loader" in finding.message
    assert result.objects == []


def test_configuration_texts_have_the_same_limits_and_raise_only_value_errors() -> None:
    for text in (deep_sequence(10_000), alias_bomb()):
        with pytest.raises(ValueError, match=r"config\.yaml:\d+:\d+: .*\[limits\]"):
            load_config_text(text, "config.yaml")


def test_a_mapping_of_many_numbers_as_keys_is_refused_before_it_grows_slow() -> None:
    # Numbers, unlike text, can be chosen to share one hash: each key added would be
    # compared with every one before it (a 4 MiB file of them took minutes).
    shared_hash = 2**61 - 1
    text = "".join(f"{n * shared_hash}: 0\n" for n in range(1, 20_001))

    [finding] = load_text(text, "keys.yaml").findings

    assert (finding.rule, finding.line) == (Rule.LIMITS, 101)
    assert "more than 100 keys" in finding.message


def test_a_few_numbers_as_keys_are_read_as_before() -> None:
    text = disk_yaml("numbered").replace("metadata:\n", "metadata:\n  labels: {1: one}\n")

    [finding] = load_text(text, "numbered.yaml").findings

    assert finding.rule is Rule.SCHEMA  # a label key must be text; the loader let it through


def test_a_sparse_file_of_a_gigabyte_is_refused_having_read_only_the_limit(
    repo: ManifestRepo,
) -> None:
    """The daemon's cache reads each file with load_file: the size limit holds there
    too, before the file is in memory."""
    repo.write("good.yaml", disk_yaml("kept"))
    huge = repo.root / "huge.yaml"
    with huge.open("wb") as file:
        file.truncate(1 << 30)  # a gigabyte of holes: costs no disk

    tracemalloc.start()
    try:
        result = load_file(huge, "huge.yaml", repo.root)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    _only_limits_finding(result, "huge.yaml")
    assert peak < 4 * SHIPPED.max_file_bytes


def test_a_fifo_among_the_manifests_is_a_finding_not_a_hang(repo: ManifestRepo) -> None:
    repo.write("good.yaml", disk_yaml("kept"))
    os.mkfifo(repo.root / "pipe.yaml")

    result = repo.load()

    [finding] = result.findings
    assert (finding.path, finding.object) == ("pipe.yaml", "")
    assert "not a regular file" in finding.message
    assert [obj.model.name for obj in result.objects] == ["kept"]


def test_line_breaks_of_every_kind_read_as_in_a_text_file(repo: ManifestRepo) -> None:
    repo.write("crlf.yaml", disk_yaml("crlf").replace("\n", "\r\n"))

    result = repo.load()

    assert not result.findings
    assert [obj.model.name for obj in result.objects] == ["crlf"]
