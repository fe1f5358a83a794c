"""File commands at the interactive prompt, as an sftp prompt has them.

``put LOCAL [REMOTE]``, ``get REMOTE [LOCAL]`` and ``quota`` always; for a transfer-only user
(who has no shell) also ``ls``, ``cd``, ``pwd``, ``mkdir``, ``rm`` and ``rmdir``, done as
protocol messages. Remote paths are relative to the prompt's remote directory.
"""

from __future__ import annotations

import posixpath
import shlex
import stat
import sys
import time
from typing import TYPE_CHECKING, TextIO

from .errors import RemoteFileError, TransferError

if TYPE_CHECKING:
    from .client import Client

ALWAYS = {"put", "get", "quota"}
TRANSFER_ONLY = {"ls", "cd", "pwd", "mkdir", "rm", "rmdir"}


def file_command(client: Client, line: str, stdout: TextIO, stderr: TextIO) -> int | None:
    """Run *line* if it is a file command and return its status (0, or 1 on failure);
    None if it is not one (it goes to the server's shell)."""
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    if not words or not (words[0] in ALWAYS or (words[0] in TRANSFER_ONLY and client.transfer_only)):
        return None
    try:
        _run(client, words[0], words[1:], stdout)
    except (RemoteFileError, TransferError) as exc:
        stderr.write(f"{words[0]}: {exc.reason}\n")
        return 1
    except (OSError, ValueError) as exc:
        stderr.write(f"{words[0]}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        stderr.write(f"{words[0]}: interrupted; the same {words[0]} resumes it\n")
        raise
    return 0


def _run(client: Client, name: str, args: list[str], stdout: TextIO) -> None:
    from .files_cli import Options, Reporter

    if name in ("put", "get"):
        if len(args) not in (1, 2):
            raise ValueError(f"usage: {name} {'LOCAL [REMOTE]' if name == 'put' else 'REMOTE [LOCAL]'}")
        source = args[0]
        target = args[1] if len(args) == 2 else (posixpath.basename(source) if name == "put" else ".")
        reporter = Reporter(Options(False, False, False, True, sys.stderr.isatty()), 0)
        try:
            reporter.start(source)
            if name == "put":
                result = client.put(source, target, progress=reporter.advance)
            else:
                result = client.get(source, target, progress=reporter.advance)
        finally:
            reporter.close()
        resumed = f", resumed at byte {result.resumed_from}" if result.resumed_from else ""
        stdout.write(f"{result.path}: {result.size} bytes, sha256 {result.sha256}{resumed}\n")
    elif name == "quota":
        used, quota = client.disk_usage()
        stdout.write(f"used {used} bytes of {'no limit' if quota is None else quota}\n")
    elif name == "ls":
        for entry in client.listdir(args[0] if args else "."):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.mtime))
            kind = {"dir": "d", "link": "l"}.get(entry.type, "-")
            stdout.write(f"{kind}{stat.filemode(entry.mode)[1:]} {entry.size:>12} {when} {entry.name}\n")
    elif name == "cd":
        client.chdir(args[0] if args else "/")
    elif name == "pwd":
        stdout.write(client.getcwd() + "\n")
    else:
        if len(args) != 1:
            raise ValueError(f"usage: {name} PATH")
        {"mkdir": client.mkdir, "rm": client.remove, "rmdir": client.rmdir}[name](args[0])
    stdout.flush()
