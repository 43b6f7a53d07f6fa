"""The host's configuration file (SPEC §8), validated at start."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from reconciler.api.libvirt_uri import check_libvirt_uri
from reconciler.api.meta import Strict
from reconciler.loader import load_config_text
from reconciler.model.errors import PermanentError
from reconciler.model.migration import StorageMode
from reconciler.model.volumes import DEFAULT_IMAGE_DIRECTORIES


class ConfigError(PermanentError):
    """A configuration that cannot be used; the message says which setting and why."""


# How many commits one update verifies at most: a longer range is refused with a reason
# rather than checked for minutes (each SSH signature is one ssh-keygen run).
DEFAULT_MAX_VERIFIED_COMMITS = 2000


class VerifyConfig(Strict):
    """repository.verify: apply only history signed by the team (docs/install.md,
    "Signed history"). Off when the section is absent."""

    # An OpenSSH allowed_signers file: the people whose commits may change manifests.
    allowed_signers: Path | None = None
    # A file of exported OpenPGP public keys: the same, for people who sign with gpg.
    gpg_keyring: Path | None = None
    # An allowed_signers file of the fleet's hosts: the only keys a status-only
    # commit may be signed with.
    host_signers: Path | None = None
    max_commits: int = Field(default=DEFAULT_MAX_VERIFIED_COMMITS, ge=1, le=100_000)

    @model_validator(mode="after")
    def _someone_may_sign(self) -> VerifyConfig:
        if self.allowed_signers is None and self.gpg_keyring is None:
            raise ValueError(
                "verify needs allowedSigners or gpgKeyring: with neither, no commit that"
                " changes a manifest could ever be applied"
            )
        return self


class RepositoryConfig(Strict):
    url: str = Field(min_length=1)
    branch: str = "main"
    sub_path: str = ""
    interval_seconds: int = Field(default=60, ge=1)
    ssh_key_file: Path | None = None
    token_file: Path | None = None
    # The SSH private key this host signs its status commits with (the deploy key may
    # serve); unset: status commits are not signed.
    signing_key_file: Path | None = None
    verify: VerifyConfig | None = None


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
    # Whether every host of the fleet sees this pool's volumes (at the same path): then a
    # live migration moves only memory. true: storage libvirt knows to be shared (NFS,
    # GFS2, Ceph...); "directory": a plain directory every host mounts, which libvirt
    # cannot tell is shared, so this host vouches for it. false: disks are copied.
    storage_pool_shared: bool | Literal["directory"] = False
    change_profile: str = "default"
    network: str = "default"
    status: StatusConfig = Field(default_factory=StatusConfig)
    listen: str = "127.0.0.1:9420"
    # The push webhook (POST /hooks/git) is off unless a shared secret is configured.
    webhook_secret_file: Path | None = None
    cache_dir: Path = Path("/var/lib/reconciler")
    # The only directories image files (file:// URLs, paths) are imported from.
    image_directories: list[Path] = Field(
        default_factory=lambda: [Path(d) for d in DEFAULT_IMAGE_DIRECTORIES]
    )
    suspend: bool = False
    # This host's age identity (age-keygen -o FILE, mode 0600): SOPS-encrypted Secrets
    # are decrypted with it, in memory (source/secrets.py). Unset: a VM whose Secret is
    # encrypted is not provisioned, and says so.
    age_key_file: Path | None = None
    # Refuse a Secret whose data is in the clear: a finding, and its VMs not provisioned.
    require_encrypted_secrets: bool = False
    # The libvirt URIs this host may live-migrate a guest to (Nodes' spec.libvirtUri):
    # a guest's memory and disks leave only for a host the operator listed here, never
    # for wherever a commit points. Empty: this host migrates nothing.
    migration_peers: list[str] = Field(default_factory=list)

    @property
    def migration_storage(self) -> StorageMode:
        """How a live migration from this host moves the guest's disks."""
        if self.storage_pool_shared == "directory":
            return StorageMode.SHARED_DIRECTORY
        return StorageMode.SHARED if self.storage_pool_shared else StorageMode.COPY

    @field_validator("storage_pool_shared", mode="before")
    @classmethod
    def _known_sharing(cls, value: object) -> object:
        if isinstance(value, bool) or value == "directory":
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):  # from the environment
            return text == "true"
        raise ValueError(f"{value!r} is not one of true, false, directory")

    @field_validator("migration_peers")
    @classmethod
    def _valid_peers(cls, value: list[str]) -> list[str]:
        for uri in value:
            check_libvirt_uri(uri)
        return value

    @field_validator("image_directories")
    @classmethod
    def _absolute_directories(cls, value: list[Path]) -> list[Path]:
        for directory in value:
            if not directory.is_absolute():
                raise ValueError(f"imageDirectories: {str(directory)!r} is not an absolute path")
        return value

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

    @model_validator(mode="after")
    def _hosts_may_sign_reports(self) -> Config:
        repository = self.repository
        if repository is None or repository.verify is None:
            return self
        if repository.verify.host_signers is None and self.status.branch in (
            None,
            repository.branch,
        ):
            raise ValueError(
                "repository.verify.hostSigners is required while the status reports are"
                " pushed to the followed branch: without it every status commit, this"
                " host's own included, would be refused"
            )
        return self


ENV_PREFIX = "RECONCILER_"
_SECTIONS: dict[str, type[Strict]] = {"repository": RepositoryConfig, "status": StatusConfig}
_LISTS = frozenset({"virtual_machine_cidrs", "image_directories", "migration_peers"})


def _environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`RECONCILER_LIBVIRT_URI=...`, `RECONCILER_REPOSITORY_BRANCH=...`: one setting each.

    Names are the settings' snake_case names upper-cased, sections joined by `_`;
    lists (virtualMachineCIDRs, imageDirectories) are comma-separated.
    """
    overrides: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        for section, model in _SECTIONS.items():
            if key.startswith(section + "_") and key[len(section) + 1 :] in model.model_fields:
                overrides.setdefault(section, {})[key[len(section) + 1 :]] = value
                break
        else:
            if key in _LISTS:
                overrides[key] = [part.strip() for part in value.split(",") if part.strip()]
            elif key in Config.model_fields and key not in _SECTIONS:
                overrides[key] = value
    return overrides


def _alias(model: type[Strict], name: str) -> str:
    return model.model_fields[name].alias or name


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides win; both are keyed as the file writes them (camelCase)."""
    merged = dict(base)
    for key, value in overrides.items():
        alias = _alias(Config, key)
        if isinstance(value, dict):
            model = _SECTIONS[key]
            section = base.get(alias)
            merged[alias] = {
                **(section if isinstance(section, dict) else {}),
                **{_alias(model, name): item for name, item in value.items()},
            }
        else:
            merged[alias] = value
    return merged


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """The configuration file with `RECONCILER_*` environment overrides applied."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration: {error}") from error
    try:
        raw = load_config_text(text, str(path))
    except ValueError as error:
        raise ConfigError(str(error)) from error
    try:
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f"{path}: the configuration must be a mapping of settings")
        merged = _merge(
            raw or {}, _environment_overrides(os.environ if environ is None else environ)
        )
        return Config.model_validate(merged)
    except ValidationError as error:
        # A rule across sections (a model validator of Config) has no location of its own.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
            for e in error.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None


# A shared secret is a line of text; a file far longer is the wrong file.
MAX_WEBHOOK_SECRET_BYTES = 4096


def read_webhook_secret(config: Config, config_path: Path) -> bytes | None:
    """The push webhook's shared secret, or None when `webhookSecretFile` is not set.

    A file that is set but empty or unreadable is an error, never "webhook off": an
    empty key would be one that anyone can sign with.
    """
    path = config.webhook_secret_file
    if path is None:
        return None
    where = f"{config_path}: webhookSecretFile {path}"
    try:
        with path.open("rb") as file:
            secret = file.read(MAX_WEBHOOK_SECRET_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{where}: cannot read the webhook secret: {error.strerror}") from None
    if len(secret) > MAX_WEBHOOK_SECRET_BYTES:
        raise ConfigError(f"{where}: longer than {MAX_WEBHOOK_SECRET_BYTES} bytes")
    secret = secret.strip()
    if not secret:
        raise ConfigError(
            f"{where}: the file is empty; write the shared secret into it, or remove"
            " the setting to turn the webhook off"
        )
    return secret
