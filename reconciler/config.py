"""The host's configuration file (SPEC §8), validated at start."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from reconciler.api.meta import Strict
from reconciler.loader import load_config_text


class ConfigError(Exception):
    """A configuration that cannot be used; the message says which setting and why."""


class RepositoryConfig(Strict):
    url: str = Field(min_length=1)
    branch: str = "main"
    sub_path: str = ""
    interval_seconds: int = Field(default=60, ge=1)
    ssh_key_file: Path | None = None
    token_file: Path | None = None


class StatusConfig(Strict):
    branch: str | None = None
    path: str = "status"


class Config(Strict):
    repository: RepositoryConfig | None = None
    libvirt_uri: str = "qemu:///system"
    node_name: str = Field(default_factory=lambda: os.uname().nodename)
    node_labels: dict[str, str] = Field(default_factory=dict)
    virtual_machine_cidrs: list[ipaddress.IPv4Network] = Field(
        default_factory=list, alias="virtualMachineCIDRs"
    )
    storage_pool: str = "default"
    change_profile: str = "default"
    network: str = "default"
    status: StatusConfig = Field(default_factory=StatusConfig)
    listen: str = "127.0.0.1:9420"
    cache_dir: Path = Path("/var/lib/reconciler")
    suspend: bool = False

    @field_validator("virtual_machine_cidrs", mode="before")
    @classmethod
    def _strict_cidrs(cls, value: object) -> object:
        if isinstance(value, list):
            for cidr in value:
                try:
                    ipaddress.IPv4Network(str(cidr), strict=True)
                except ValueError as error:
                    raise ValueError(f"virtualMachineCIDRs: {error}") from None
        return value


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration: {error}") from error
    try:
        raw = load_config_text(text, str(path))
    except ValueError as error:
        raise ConfigError(str(error)) from error
    try:
        return Config.model_validate(raw or {})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
