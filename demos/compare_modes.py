"""Sticky packets and their fix, side by side: ``make demo`` runs this (so does ``rcmd demo``).

Starts a naive and a prefixed rcmd server on free loopback ports, runs the same commands
through both, and shows a table (expected vs received, OK / WRONG) and a picture of the
byte stream: where each naive recv() returned, and each prefixed frame with its length
prefix. ``--svg FILE`` saves it (``make demo-svg`` redraws docs/demo.svg).

The demo lives in the package, rcmd/demo.py, so that ``rcmd demo`` works wherever rcmd is
installed; read it there. It uses only rcmd's public API.
"""

from rcmd.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
