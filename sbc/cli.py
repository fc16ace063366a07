"""The ``sbc`` command: ``sbc check DIR`` validates a policy, ``sbc run`` serves one.

``check`` is what operators put in CI and pre-deploy hooks, so its output is
the compiler-style ``file:line: message`` that editors and CI annotate.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

from sbc.policy import Policy, PolicyError, load_policy

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_RUN_INVALID = 2

DEFAULT_POLICY_DIR = "policies"


def main(argv: list[str] | None = None) -> int:
    """Entry point for the console script and ``python -m sbc``; returns the exit status."""
    args = _parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    return command(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sbc", description="SIP Session Border Controller")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="validate a policy directory and exit")
    check.add_argument("directory", metavar="DIR", help="policy directory to validate")
    check.set_defaults(command=_check)
    run = commands.add_parser("run", help="run the SBC")
    run.add_argument(
        "--policies",
        metavar="DIR",
        default=None,
        help=f"policy directory (default: ./{DEFAULT_POLICY_DIR}, else the shipped demo)",
    )
    run.set_defaults(command=_run)
    return parser


def _check(args: argparse.Namespace) -> int:
    """Validate; print a one-line summary on success, every issue on failure."""
    directory: str = args.directory
    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        _print_issues(exc)
        return EXIT_INVALID
    print(f"{directory}: OK ({policy.describe()})")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    """Load the policy, then hand over to the runtime (imported only when running)."""
    directory = Path(args.policies) if args.policies else default_policy_dir()
    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        _print_issues(exc)
        return EXIT_RUN_INVALID
    app = importlib.import_module("sbc.app")  # lazy: `sbc check` must not need the runtime
    run: Callable[[Policy, Path], object] = app.run
    status = run(policy, directory)
    return status if isinstance(status, int) else EXIT_OK


def default_policy_dir(cwd: Path | None = None) -> Path:
    """``./policies`` if it exists, else the demo ``policies/`` next to the package."""
    local = (cwd or Path.cwd()) / DEFAULT_POLICY_DIR
    if local.is_dir():
        return local
    return Path(__file__).resolve().parent.parent / DEFAULT_POLICY_DIR


def _print_issues(error: PolicyError) -> None:
    for issue in error.issues:
        print(issue, file=sys.stderr)
