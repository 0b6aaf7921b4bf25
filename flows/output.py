"""Console output shared by the CLI commands: results on stdout, one-line errors on stderr."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)


def fail(message: str) -> None:
    """Print `error: message` and exit 2: bad input, not a crash."""
    errors.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)
