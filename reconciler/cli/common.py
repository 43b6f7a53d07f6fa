"""Arguments and helpers shared by several commands."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.model.volumes import DEFAULT_IMAGE_DIRECTORIES
from reconciler.policies import CHANGE_PROFILES

if TYPE_CHECKING:
    from reconciler.config import Config

EXIT_USAGE = 2


def cidr(text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 CIDR: {error}") from None


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cidr",
        action="append",
        type=cidr,
        default=[],
        metavar="CIDR",
        help="a virtualMachineCIDRs subnet of the IP pool (repeatable)",
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="host configuration to take the pool from"
    )


def add_image_directory_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image-directory",
        action="append",
        default=[],
        metavar="DIR",
        dest="image_directories",
        help="a directory image files may come from (repeatable; default: the config's"
        f" imageDirectories, else {', '.join(DEFAULT_IMAGE_DIRECTORIES)})",
    )


def engine_options(parser: argparse.ArgumentParser, uri_help: str) -> None:
    """The host options of a pass (all but DIR), for every command that runs one."""
    parser.add_argument("--libvirt-uri", metavar="URI", help=uri_help)
    parser.add_argument("--storage-pool", metavar="NAME", help="libvirt storage pool for disks")
    parser.add_argument("--network", metavar="NAME", help="libvirt network for the VMs' NICs")
    parser.add_argument("--node-name", metavar="NAME", help="this host's name in the fleet")
    parser.add_argument(
        "--domain-type",
        choices=("auto", "kvm", "qemu"),
        default="auto",
        help="kvm, qemu (software emulation), or auto: kvm when /dev/kvm is usable",
    )
    parser.add_argument(
        "--profile", choices=sorted(CHANGE_PROFILES), help="change-application profile"
    )
    parser.add_argument("--revision", help="the Git revision applied (default: DIR's HEAD)")
    parser.add_argument(
        "--age-key-file",
        type=Path,
        metavar="FILE",
        help="this host's age identity, to decrypt SOPS-encrypted Secrets with"
        " (default: the config's ageKeyFile)",
    )
    add_pool_arguments(parser)
    add_image_directory_argument(parser)


def image_directories_from(args: argparse.Namespace, config: Config | None) -> tuple[str, ...]:
    """Where image files may come from: --image-directory, else the config's, else the
    default."""
    if args.image_directories:
        return tuple(os.path.abspath(d) for d in args.image_directories)
    if config is not None:
        return tuple(str(d) for d in config.image_directories)
    return DEFAULT_IMAGE_DIRECTORIES


def read_config(args: argparse.Namespace) -> Config | None:
    """The --config file, or None; a bad file ends the command with exit code 2."""
    if args.config is None:
        return None
    # Imported here, for start-up speed: the config models only for a command given --config.
    from reconciler.config import ConfigError, load_config

    try:
        return load_config(args.config)
    except ConfigError as error:
        print(f"reconciler: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def add_require_encrypted_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--require-encrypted-secrets",
        action="store_true",
        help="refuse a Secret whose data is in the clear (default: the config's"
        " requireEncryptedSecrets)",
    )


def require_encrypted_from(args: argparse.Namespace, config: Config | None) -> bool:
    return bool(getattr(args, "require_encrypted_secrets", False)) or (
        config is not None and config.require_encrypted_secrets
    )


def pool_from(args: argparse.Namespace, config: Config | None) -> list[ipaddress.IPv4Network]:
    if args.cidr:
        return list(args.cidr)
    return list(config.virtual_machine_cidrs) if config else []


def repository_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: not a directory")
    return path
