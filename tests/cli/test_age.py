"""AGE as kubectl prints it (apimachinery duration.HumanDuration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.cli.tables import human_age, human_duration

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (-1, "0s"),
        (-5, "<invalid>"),
        (119, "119s"),
        (187, "3m7s"),
        (300, "5m"),
        (11 * 60, "11m"),
        (148 * 60, "148m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 25 * 60, "3h25m"),
        (12 * 3600, "12h"),
        (47 * 3600, "47h"),
        (2 * 86400, "2d"),
        (5 * 86400 + 21 * 3600, "5d21h"),
        (30 * 86400, "30d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_durations_read_as_kubectl_prints_them(seconds: int, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_age_counts_from_the_creation_timestamp() -> None:
    created = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert human_age(created, NOW) == "5m"


@pytest.mark.parametrize("created", ["", "yesterday", "2026-06-01T11:00:00"])
def test_age_is_unknown_without_a_usable_timestamp(created: str) -> None:
    assert human_age(created, NOW) == "<unknown>"
