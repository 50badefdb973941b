"""``video-runner``: one command with a subcommand per job. Each subcommand lives in its own module.

Bad input and configuration errors exit non-zero with one clear line on stderr, never a
traceback; ``--debug`` (or LOG_LEVEL=DEBUG) shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from video_runner import __version__
from video_runner.entrypoints import (
    client_commands,
    deps_command,
    extract_command,
    models_command,
    process_command,
    reinfer_command,
    render_command,
    service_commands,
)
from video_runner.errors import VideoRunnerError

EXIT_ERROR = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="video-runner",
        description="Videos in, per-frame object detections out (Kafka, S3, MongoDB).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    service_commands.add_parsers(subparsers)
    client_commands.add_parsers(subparsers)
    deps_command.add_parser(subparsers)
    extract_command.add_parser(subparsers)
    models_command.add_parser(subparsers)
    process_command.add_parser(subparsers)
    reinfer_command.add_parser(subparsers)
    render_command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except VideoRunnerError as exc:
        if args.debug:
            raise
        print(f"video-runner {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
