"""`reconciler run --config FILE`: the daemon."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("/etc/reconciler/config.yaml")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="run the daemon: follow the repository and reconcile this host",
        description="Follow the configured Git branch, reconcile this host on every new"
        " revision, interval, webhook and libvirt event, and push status reports back."
        " SIGTERM finishes the current pass and exits; SIGHUP reloads the configuration.",
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, metavar="FILE")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from reconciler.daemon.run import run

    return run(args.config)
