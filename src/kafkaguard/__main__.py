"""``python -m kafkaguard`` runs the CLI."""

from kafkaguard.cli import main

main()
