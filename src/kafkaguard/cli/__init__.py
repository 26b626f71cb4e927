"""kafkaguard's command line (Typer + Rich)."""

from kafkaguard.cli.app import app, main

__all__ = ["app", "main"]
