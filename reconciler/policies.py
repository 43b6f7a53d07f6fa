"""Operator-readable rule data from `policies/`, loaded once per directory."""

from __future__ import annotations

import functools
import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from reconciler.api.meta import Strict
from reconciler.model.errors import PermanentError
from reconciler.yamltext import Limits, load_config_text

POLICIES_ENV = "RECONCILER_POLICIES"


class PolicyError(PermanentError):
    """A policies file that cannot be used; names the file and what is wrong."""


def default_policy_dir() -> Path:
    """`$RECONCILER_POLICIES`, else the copy in the installed package, else the checkout's."""
    if os.environ.get(POLICIES_ENV):
        return Path(os.environ[POLICIES_ENV])
    packaged = Path(__file__).parent / "_policies"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "policies"


# For the policy files themselves, limits.yaml among them: the operator wrote them.
POLICY_FILE_LIMITS = Limits(max_file_bytes=1 << 20, max_depth=64, max_alias_expansion=10_000)


def read_policy_file(directory: Path, name: str) -> Any:
    path = directory / name
    try:
        text = path.read_text(encoding="utf-8")
        return load_config_text(text, str(path), POLICY_FILE_LIMITS)
    except (OSError, ValueError) as error:
        raise PolicyError(f"{path}: {error}") from error


@functools.cache
def load_limits(directory: Path | None = None) -> Limits:
    """The loader's limits (policies/limits.yaml), read once per directory."""
    directory = directory or default_policy_dir()
    try:
        return Limits.model_validate(read_policy_file(directory, "limits.yaml"))
    except ValueError as error:
        raise PolicyError(f"{directory / 'limits.yaml'}: {error}") from error


class CoreBandRange(Strict):
    min: int = Field(ge=1)
    max: int = Field(ge=1)


class TopologyBand(Strict):
    cores: CoreBandRange
    sockets: int = Field(ge=1)
    step: int = Field(ge=1)
    max_cores_per_socket: int = Field(ge=1)


class TopologyPolicy(Strict):
    max_cores: int = Field(ge=1)
    # A tuple, so the frozen policy is hashable and rules may cache what they derive from it.
    bands: tuple[TopologyBand, ...] = Field(min_length=1)


@functools.cache
def load_topology_policy(directory: Path | None = None) -> TopologyPolicy:
    directory = directory or default_policy_dir()
    raw = read_policy_file(directory, "cpu-topology.yaml")
    try:
        policy = TopologyPolicy.model_validate(raw)
    except ValueError as error:
        raise PolicyError(f"{directory / 'cpu-topology.yaml'}: {error}") from error
    previous = 0
    for band in policy.bands:
        if band.cores.min != previous + 1:
            raise PolicyError(
                f"{directory / 'cpu-topology.yaml'}: band {band.cores.min}-{band.cores.max}"
                f" does not follow the previous band's end ({previous})"
            )
        previous = band.cores.max
    return policy


class ChangeAction(StrEnum):
    IMMEDIATE = "Immediate"
    RESTART = "Restart"


class ChangeRule(Strict):
    path: str = Field(min_length=1)
    operation: Literal["add", "remove", "replace"] | None = None
    action: ChangeAction
    when: Literal["sameSockets"] | None = None


class ChangePolicyFile(Strict):
    profile: str
    extends: str | None = None
    rules: list[ChangeRule]


CHANGE_PROFILES = {
    "default": "change-application.yaml",
    "hotplug": "change-application-hotplug.yaml",
}


@functools.cache
def load_change_rules(
    profile: str = "default", directory: Path | None = None
) -> tuple[ChangeRule, ...]:
    """The ordered rules of a profile, its own first, then those of the profile it extends."""
    directory = directory or default_policy_dir()
    if profile not in CHANGE_PROFILES:
        raise PolicyError(
            f"unknown change-application profile {profile!r}; known: {', '.join(CHANGE_PROFILES)}"
        )
    name = CHANGE_PROFILES[profile]
    try:
        parsed = ChangePolicyFile.model_validate(read_policy_file(directory, name))
    except ValueError as error:
        raise PolicyError(f"{directory / name}: {error}") from error
    inherited = load_change_rules(parsed.extends, directory) if parsed.extends else ()
    return tuple(parsed.rules) + inherited
