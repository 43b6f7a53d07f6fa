"""Which repository a command that commits (`vm`, `node`) clones or commits in, and pushes to."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconciler.config import Config
from reconciler.source.gitcli import Credentials, is_remote_url
from reconciler.source.operation_workspace import Target
from reconciler.source.revision import clean_relative


def add_repository_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--repo", metavar="URL_OR_PATH", help="the repository to clone and push")
    where.add_argument(
        "--dir", type=Path, metavar="DIR", help="an existing checkout to commit in and push from"
    )
    parser.add_argument(
        "--branch", metavar="BRANCH", help="default: the config's, else the remote's"
    )
    parser.add_argument(
        "--sub-path", metavar="PATH", help="the manifests folder in the repository (default: root)"
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="the daemon's configuration to take them from"
    )


def target_from(args: argparse.Namespace, config: Config | None) -> Target | None:
    """The command line over the daemon's configuration; None when no repository is named."""
    repository = config.repository if config else None
    url = args.repo or (repository.url if repository and args.dir is None else "")
    if not url and args.dir is None:
        return None
    if url and not is_remote_url(url):
        url = str(Path(url).expanduser().resolve())  # git runs in another directory
    status = config.status if config else None
    return Target(
        url=url,
        checkout=args.dir.resolve() if args.dir is not None else None,
        branch=args.branch or (repository.branch if repository else None),
        sub_path=clean_relative(args.sub_path or (repository.sub_path if repository else "")),
        status_path=clean_relative(status.path if status else "status") or "status",
        status_branch=status.branch if status else None,
        credentials=Credentials(
            url,
            repository.ssh_key_file if repository else None,
            repository.token_file if repository else None,
        ),
    )
