"""The ``labelgate`` command line (Typer + rich)."""
