"""``python -m console.daemon [options]``: what ``multipar-console daemon`` runs."""

import sys

from console.daemon.main import run_daemon
from console.options import build_parser

if __name__ == "__main__":
    sys.exit(run_daemon(build_parser("multipar-console daemon", daemon=True).parse_args()))
