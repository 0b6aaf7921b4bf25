"""Console output shared by the CLI commands: results on stdout, one-line errors on stderr."""

from __future__ import annotations

import logging

import typer
from rich.console import Console
from rich.markup import escape

from pipelines.errors import KerasflowError

console = Console()
errors = Console(stderr=True)


def fail(message: str) -> None:
    """Print `error: message` and exit 2: bad input, not a crash."""
    errors.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


class UserErrorsWithoutTraceback(logging.Formatter):
    """Wraps a console formatter: a `KerasflowError` is logged as its message, without the Python traceback.

    The Prefect UI keeps the whole failure (its API handler has its own
    formatter); the console gets the CLI's one-line error instead of 60 lines.
    """

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if not (record.exc_info and isinstance(record.exc_info[1], KerasflowError)):
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info = record.exc_text = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def prefect_console_handlers() -> list[logging.Handler]:
    """The handlers through which Prefect logs to the terminal."""
    from prefect.logging.configuration import setup_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    setup_logging()
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    found = {id(h): h for logger in loggers for h in getattr(logger, "handlers", [])
             if isinstance(h, PrefectConsoleHandler)}
    return list(found.values())


def quiet_user_errors_on_console() -> None:
    """Give Prefect's console handlers the formatter above (the API handler keeps the traceback)."""
    for handler in prefect_console_handlers():
        if not isinstance(handler.formatter, UserErrorsWithoutTraceback):
            handler.setFormatter(UserErrorsWithoutTraceback(handler.formatter))
