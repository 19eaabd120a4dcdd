"""``python -m labelgate`` runs the CLI."""

from labelgate.cli.app import main

main()
