"""What a finished remote command leaves: :class:`CompletedCommand`, and the timeout error.

Apart from the client so that the naive client (rcmd.naive) can build results without
importing the prefixed client, and the client without importing it back.
"""

from __future__ import annotations

import signal as signal_module
import subprocess
from dataclasses import dataclass
from typing import Any

from .errors import CommandError


@dataclass(frozen=True)
class CompletedCommand:
    """A finished remote command, like ``subprocess.CompletedProcess``.

    ``returncode`` is the exit status, ``-N`` when signal N killed it, and ``None`` only
    from a naive server, whose protocol does not carry it. ``stdout`` and ``stderr`` are
    bytes, or str when run with ``text=True`` (or an ``encoding``), or None when not
    captured (``capture_output=False``, or sent to a ``stdout=``/``stderr=`` sink);
    ``stdout_text`` and ``stderr_text`` are always text, decoded in the server's encoding.
    """

    command: str
    returncode: int | None
    stdout: Any = b""
    stderr: Any = b""
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    encoding: str = "utf-8"

    @property
    def stdout_text(self) -> str:
        """``stdout`` as text; bytes decoded in the server's encoding (undecodable bytes become U+FFFD)."""
        return _as_text(self.stdout, self.encoding)

    @property
    def stderr_text(self) -> str:
        """``stderr`` as text; bytes decoded in the server's encoding (undecodable bytes become U+FFFD)."""
        return _as_text(self.stderr, self.encoding)

    def describe_status(self) -> str:
        """How it ended, in words: "exited with status 3", "timed out (killed by SIGTERM)"."""
        if self.returncode is None:
            return "ended (the naive protocol does not report an exit status)"
        if self.signal is not None:
            try:
                name = signal_module.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            how = f"killed by {name}"
        else:
            how = f"exited with status {self.returncode}"
        if self.timed_out:
            return f"timed out ({how})"
        if self.cancelled:
            return f"was cancelled ({how})"
        return how

    def check_returncode(self) -> None:
        """Raise :class:`CommandError` if the command did not exit with status 0."""
        if self.returncode != 0:
            raise CommandError(self)


def _as_text(data: bytes | str | None, encoding: str) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode(encoding, errors="replace")


class TimeoutExpired(subprocess.TimeoutExpired):
    """The command's *timeout* ran out and the server killed it, as
    ``subprocess.run(timeout=...)`` raises: ``output``/``stdout`` and ``stderr`` hold what it
    printed before (partial, as captured), and ``result`` the whole :class:`CompletedCommand`."""

    def __init__(self, result: CompletedCommand, timeout: float) -> None:
        super().__init__(result.command, timeout, output=result.stdout, stderr=result.stderr)
        self.result = result
