"""`reconciler verify [REV-RANGE]`: who signed each commit of a range, and whether a host
with repository.verify would accept it; a manifests repository's CI runs it on a pull
request (`reconciler verify origin/main..HEAD`)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from reconciler.cli.common import EXIT_USAGE, read_config, repository_dir
from reconciler.cli.terminal import emit, escaped
from reconciler.config import DEFAULT_MAX_VERIFIED_COMMITS
from reconciler.source.gitcli import GitFailed, Redactor, run_git
from reconciler.source.revision import clean_relative
from reconciler.source.signatures import (
    CommitCheck,
    Signers,
    Verdict,
    check_commits,
    prepare_gnupg_home,
    summarize,
)

EXIT_OK = 0
EXIT_REFUSED = 1


def verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check the signature of every commit of REV-RANGE as a host with repository.verify"
        " does: a commit changing anything outside the status folder (or a merge) needs an"
        " allowed signer, one changing only the status folder a host key. Exit 0 when every"
        " commit passes, 1 when one does not, 2 on a usage error."
    )
    parser.add_argument(
        "range",
        nargs="?",
        default="HEAD",
        metavar="REV-RANGE",
        help="the commits, as git rev-list takes them (default: HEAD, its whole history;"
        " a pull request's: origin/main..HEAD)",
    )
    parser.add_argument(
        "--dir", type=repository_dir, default=Path("."), metavar="DIR", help="the repository"
    )
    parser.add_argument(
        "--allowed-signers", type=Path, metavar="FILE", help="allowed_signers of the people"
    )
    parser.add_argument(
        "--host-signers", type=Path, metavar="FILE", help="allowed_signers of the fleet's hosts"
    )
    parser.add_argument(
        "--gpg-keyring", type=Path, metavar="FILE", help="exported OpenPGP public keys"
    )
    parser.add_argument(
        "--status-path",
        metavar="PATH",
        help="the status folder (default: the config's, else status)",
    )
    parser.add_argument(
        "--max-commits",
        type=int,
        metavar="N",
        help=f"refuse a range of more commits (default: the config's, else"
        f" {DEFAULT_MAX_VERIFIED_COMMITS})",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a host configuration to take repository.verify and status.path from",
    )
    parser.set_defaults(run=run)


def _usage(message: str) -> int:
    print(f"reconciler verify: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    config = read_config(args)
    verify = config.repository.verify if config and config.repository else None
    allowed = args.allowed_signers or (verify.allowed_signers if verify else None)
    hosts = args.host_signers or (verify.host_signers if verify else None)
    keyring = args.gpg_keyring or (verify.gpg_keyring if verify else None)
    if allowed is None and keyring is None:
        return _usage("give --allowed-signers or --gpg-keyring (or a --config with them)")
    for option, path in (
        ("--allowed-signers", allowed),
        ("--host-signers", hosts),
        ("--gpg-keyring", keyring),
    ):
        if path is not None and not path.is_file():
            return _usage(f"{option} {path}: not a readable file")
    status_path = clean_relative(
        args.status_path or (config.status.path if config is not None else "status")
    )
    limit = args.max_commits or (verify.max_commits if verify else DEFAULT_MAX_VERIFIED_COMMITS)
    if args.range.startswith("-"):
        return _usage(f"{args.range!r} is not a revision range")
    workdir: Path = args.dir
    env = {"GIT_TERMINAL_PROMPT": "0"}
    redact = Redactor("")
    with tempfile.TemporaryDirectory(prefix="reconciler-verify-") as scratch:
        try:
            signers = Signers(
                _absolute(allowed),
                _absolute(hosts),
                prepare_gnupg_home(Path(scratch) / "gnupg", _absolute(keyring)),
            )
            revisions = ["--end-of-options", args.range]
            count = int(run_git(workdir, ["rev-list", "--count", *revisions], env, redact))
            if count > limit:
                return _usage(f"{count} commits in {args.range}, more than {limit} (--max-commits)")
            shas = run_git(workdir, ["rev-list", "--reverse", *revisions], env, redact).split()
            checks = check_commits(workdir, shas, status_path, signers, env, redact)
        except GitFailed as error:
            return _usage(str(error))
    emit(render(checks))
    return EXIT_OK if all(check.verdict is Verdict.OK for check in checks) else EXIT_REFUSED


def _absolute(path: Path | None) -> Path | None:
    """git runs in --dir: a path given relative to where the command runs is resolved here."""
    return path.resolve() if path is not None else None


def render(checks: list[CommitCheck]) -> str:
    rows = [("COMMIT", "VERDICT", "SIGNER", "TOUCHED")]
    rows += [
        (check.sha[:12], check.verdict.value, escaped(check.signer or "-"), _touched(check))
        for check in checks
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]
    refused = sum(check.verdict is not Verdict.OK for check in checks)
    if refused:
        lines.append(f"{refused} of {len(checks)} commit(s) would not be applied")
    else:
        lines.append(f"ok: {len(checks)} commit(s) verified")
    return "\n".join(lines)


def _touched(check: CommitCheck) -> str:
    if check.merge:
        return f"merge: {escaped(summarize(check.paths))}"
    kind = "status only" if check.status_only else "manifests"
    return f"{kind}: {escaped(summarize(check.paths))}"
