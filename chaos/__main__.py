"""``python -m chaos [--profile quick|full] [--seed N] ...``: the same command as ``kafkaguard chaos``,
through the CLI's one error boundary (one line on stderr, exit 2 for a usage error)."""

from __future__ import annotations

import sys

from kafkaguard.cli.app import run

if __name__ == "__main__":
    sys.exit(run(["chaos", *sys.argv[1:]]))
