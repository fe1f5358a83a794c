"""The ``cd`` builtin: which command lines are a sticky ``cd``, and where they lead."""

from __future__ import annotations

import logging
import os
import shlex

log = logging.getLogger("rcmd.server")


def parse_cd(command: str) -> str | None:
    """The target of a plain ``cd [DIR]`` command line, or None if it is anything else.

    ``cd`` alone gives ``""`` (home). Only a lone cd with a literal argument is the
    builtin: ``cd x && make`` or ``cd $DIR`` go to the shell as written, and that cd lasts
    for the one command, as over ssh.
    """
    if any(ch in command for ch in "`$(){};&|<>*?[\n"):
        return None  # the shell must expand or sequence it
    try:
        tokens = shlex.split(command)
    except ValueError:
        return None
    if not tokens or tokens[0] != "cd" or len(tokens) > 2:
        return None
    return tokens[1] if len(tokens) == 2 else ""


def resolve_cd(target: str, cwd: str, previous: str | None) -> str:
    """Where ``cd target`` from *cwd* leads; OSError (ENOENT, ENOTDIR, EACCES) if it cannot."""
    if not target:
        target = os.path.expanduser("~")
    elif target == "-":
        if previous is None:
            raise OSError(0, "OLDPWD not set")
        target = previous
    path = os.path.normpath(os.path.join(cwd, os.path.expanduser(target)))
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory")
    if not os.path.isdir(path):
        raise NotADirectoryError(20, "Not a directory")
    if not os.access(path, os.X_OK):
        raise PermissionError(13, "Permission denied")
    return path
