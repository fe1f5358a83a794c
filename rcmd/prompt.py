"""The interactive prompt: ``rcmd`` or ``rcmd HOST[:PORT]`` on a terminal.

Line editing and history come from prompt_toolkit (as in pgcli and IPython); history is
kept across sessions in the user's data directory. Output is shown live, stderr in red;
a command that fails gets a note after its output. Ctrl-C while a command runs cancels it
on the server and returns here; at the prompt it clears the line. Ctrl-D, ``exit`` or
``quit`` leave.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .console import ExitStatus, run_one, wants_color

if TYPE_CHECKING:  # prompt_toolkit is imported only when the prompt starts
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.output import ColorDepth

    from .client import Client
    from .naive import NaiveClient

WELCOME = "rcmd {version}: connected to {where}. Ctrl-C cancels a command, Ctrl-D leaves."


def history_path() -> Path:
    """$RCMD_HISTORY, else ``rcmd/history`` in the user's data directory (XDG on POSIX)."""
    if os.environ.get("RCMD_HISTORY"):
        return Path(os.environ["RCMD_HISTORY"])
    if os.name == "nt":  # pragma: no cover - untested here
        base = Path(os.environ.get("APPDATA", Path.home()))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "rcmd" / "history"


def _prompt_text(client: Client | NaiveClient, where: str) -> StyleAndTextTuples:
    from .client import Client

    if not isinstance(client, Client):  # a naive server never says where it is
        return [("class:naive", "naive "), ("class:host", where), ("", "> ")]
    return [("class:host", where), ("", " "), ("class:cwd", client.cwd or "?"), ("", "> ")]


def interactive(client: Client | NaiveClient, where: str, timeout: float | None, *, pty: bool = False) -> int:
    """Read commands at a prompt until Ctrl-D, exit or quit; return the last one's status.

    With *pty* every command runs on a remote pseudo-terminal, as in an ssh session:
    python3, vi, top and ``read`` work, ``ls`` has colours and columns, and Ctrl-C goes to
    the remote program; stderr is then merged into stdout (not shown in red).
    """
    from prompt_toolkit import PromptSession
    from prompt_toolkit.styles import Style

    from . import __version__

    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    color = wants_color(sys.stdout)
    session: PromptSession[str] = PromptSession(
        history=_command_history(str(path)),
        style=Style.from_dict({"host": "ansigreen bold", "cwd": "ansiblue bold", "naive": "ansired bold"}),
        color_depth=None if color else _no_color_depth(),
    )
    print(WELCOME.format(version=__version__, where=where), file=sys.stderr)
    status: int = ExitStatus.OK
    while True:
        try:
            line = session.prompt(_prompt_text(client, where))
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            break  # Ctrl-D
        command = line.strip()
        if not command:
            continue  # never sent: to a naive server an empty send looks like nothing
        if command in ("exit", "quit"):
            break
        status = run_one(
            client,
            command,
            timeout,
            sys.stdout,
            sys.stderr,
            color=color,
            show_status=True,
            stdin_fd=0 if pty else None,
            pty=pty,
        )
    return status


def _command_history(path: str) -> FileHistory:
    """FileHistory that keeps only lines that were commands: a line of spaces is never sent,
    so keeping it would only cost an extra Up press."""
    from prompt_toolkit.history import FileHistory

    class CommandHistory(FileHistory):
        def append_string(self, string: str) -> None:
            if string.strip():
                super().append_string(string)

    return CommandHistory(path)


def _no_color_depth() -> ColorDepth:
    from prompt_toolkit.output import ColorDepth

    return ColorDepth.DEPTH_1_BIT
