"""Deletions a revision holds back, and how the daemon and `apply` word it (issue 12,
row 6): an unreadable file makes every deletion wait, and that is never silent."""

from __future__ import annotations

from reconciler.engine.plan import Observation, plan
from reconciler.engine.reconcile import deletions_held_back
from reconciler.loader import LoadResult, load_text
from tests.engine.conftest import context_for, empty, revision, vm_yaml
from tests.engine.test_plan import _host_after


def host_running_two_vms() -> Observation:
    return _host_after(context_for(revision(vm_yaml(), vm_yaml(name="other"))))


def test_a_deletion_behind_an_unreadable_file_is_held_back_and_named() -> None:
    broken = revision(vm_yaml())
    broken.extend(load_text("kind: [unclosed\n", "vms/broken.yaml"))
    context = context_for(broken)

    result = plan(context, host_running_two_vms())

    assert result.actions == []
    assert result.held_back == ["undefine domain other.default"]
    assert deletions_held_back(context, result).startswith(
        "revision rev1 has 1 unreadable file(s), so nothing is deleted"
        " (1 deletion(s) held back): vms/broken.yaml:2: "
    )


def test_an_unreadable_file_is_named_even_with_nothing_to_delete() -> None:
    broken = revision(vm_yaml())
    broken.extend(load_text("kind: [unclosed\n", "vms/broken.yaml"))
    context = context_for(broken)

    result = plan(context, empty())

    assert result.held_back == []
    assert deletions_held_back(context, result).startswith(
        "revision rev1 has 1 unreadable file(s), so nothing is deleted (deletions are held back)"
    )


def test_an_empty_revision_deletes_nothing_and_says_what_it_holds_back() -> None:
    context = context_for(LoadResult())

    result = plan(context, host_running_two_vms())

    assert result.actions == []
    assert len(result.held_back) == 2
    assert deletions_held_back(context, result) == (
        "revision rev1 has no objects at all, so nothing is deleted (2 deletion(s) held back)"
    )


def test_an_empty_revision_on_an_empty_host_is_no_problem() -> None:
    context = context_for(LoadResult())

    assert deletions_held_back(context, plan(context, empty())) == ""


def test_a_whole_revision_holds_nothing_back() -> None:
    context = context_for(revision(vm_yaml()))

    result = plan(context, host_running_two_vms())

    assert result.held_back == []
    assert deletions_held_back(context, result) == ""
