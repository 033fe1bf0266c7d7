"""The `tracker` command. Each module of this package adds its subcommands in `register()`."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..config import Settings
from ..errors import ConfigurationError, TrackerError
from . import publishing, reporting, runner

#: Modules whose register(subparsers) adds subcommands, in help order.
MODULES = (runner, reporting, publishing)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracker", description="Ad impression and click tracker.")
    parser.add_argument("--version", action="version", version=f"tracker {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
        return args.func(args, settings) or 0
    except ConfigurationError as e:
        print(f"tracker: configuration error: {e}", file=sys.stderr)
        return 2
    except TrackerError as e:
        print(f"tracker: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
