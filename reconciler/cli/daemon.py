"""`reconciler run --config FILE`: the daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconciler.daemon.run import run

DEFAULT_CONFIG = Path("/etc/reconciler/config.yaml")


def run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Follow the configured Git branch, reconcile this host on every new"
        " revision, interval, webhook and libvirt event, and push status reports back."
        " SIGTERM finishes the current pass and exits; SIGHUP reloads the configuration."
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, metavar="FILE")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    return run(args.config)
