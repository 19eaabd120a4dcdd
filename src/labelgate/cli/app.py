"""The ``labelgate`` command line."""

from __future__ import annotations

import typer

app = typer.Typer(name="labelgate", no_args_is_help=True, add_completion=False)


def main() -> None:
    """Entry point of the ``labelgate`` console script."""
    app()
