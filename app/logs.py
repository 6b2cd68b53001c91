"""Logging: structlog to standard error, JSON when nobody is watching a terminal.

Standard output belongs to findings; a log line there would corrupt a JSONL
stream another tool is reading.
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging"]


class _StderrNow:
    """Standard error as it is when a line is written, not as it was at configuration.

    A long-running service and a test runner both replace ``sys.stderr``; a logger
    holding the old one would write into a closed file.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(*, json_logs: bool | None = None, level: int = logging.INFO) -> None:
    """Send structlog output to stderr; JSON unless stderr is a terminal."""
    as_json = (not sys.stderr.isatty()) if json_logs is None else json_logs
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_StderrNow()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
