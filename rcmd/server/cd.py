"""The ``cd`` builtin: which command lines are a sticky ``cd``, and where they lead.

The grammar (docs/PROTOCOL.md section 5) is decided with a few string operations, each a
linear scan in C: about a millisecond at the 1 MiB frame limit, whatever the command. It
runs on the event loop for every RUN, so it is no shell parse: shlex.split is quadratic
there, and took 12 to 30 s on a 1 MiB command while every other client waited
(benchmarks/parse_cd.py).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("rcmd.server")

#: Blanks around ``cd`` and its word (space and tab, as the shell splits words).
BLANKS = " \t"

#: What a plain word may not hold: a blank or another control character, or a character that
#: makes a shell do more than take the word as it is: quote (' " \), expand ($ `), glob
#: (* ? [ ]), brace-expand ({ }), redirect, pipe or sequence (< > | & ; ( )), comment (#), or
#: history and zsh patterns (! ^). One `in` per character: C-speed scans, ~1 ms at 1 MiB.
NOT_IN_PLAIN_WORD = "".join(map(chr, range(0x21))) + "\x7f" + "'\"\\$`*?[]{}<>|&;()#!^"


def parse_cd(command: str) -> str | None:
    """The target of a sticky ``cd`` command line, or None if the shell must run it.

    The line, without blanks at either end, is ``cd`` alone (returns ``""``: home), or
    ``cd``, blanks, and one word: a plain word (one or more characters, none of them in
    NOT_IN_PLAIN_WORD), or a single-quoted word (``'``, one or more characters other than
    ``'``, ``'``) taken literally. A plain word starting with ``~`` is tilde-expanded, as
    the shell does; a quoted one is not. A word starting with ``-`` other than ``-`` itself
    is an option: the shell's. ``-`` returns ``"-"`` (the previous directory). Anything else (``cd x && make``, ``cd $DIR``, two
    words, a newline) returns None: the shell runs it, and its cd lasts for that command.
    """
    line = command.strip(BLANKS)
    if line == "cd":
        return ""
    if not line.startswith(("cd ", "cd\t")):
        return None
    word = line[3:].lstrip(BLANKS)
    if word.startswith("'"):
        if len(word) < 3 or not word.endswith("'") or word.count("'") != 2:
            return None
        target = word[1:-1]
    elif word and not any(char in word for char in NOT_IN_PLAIN_WORD):
        target = os.path.expanduser(word) if word.startswith("~") else word
    else:
        return None
    if target.startswith("-") and target != "-":
        return None
    return target


def resolve_cd(target: str, cwd: str, previous: str | None) -> str:
    """Where ``cd target`` (as parse_cd() gives it: tilde already expanded) from *cwd* leads.

    ``""`` is home, ``"-"`` *previous*. Raises OSError (ENOENT, ENOTDIR, EACCES) if it
    cannot. Paths are str as os.fsdecode() makes them, so a name that is not valid in the
    file system encoding keeps its bytes (surrogateescape).
    """
    if not target:
        target = os.path.expanduser("~")
    elif target == "-":
        if previous is None:
            raise OSError(0, "OLDPWD not set")
        target = previous
    path = os.path.normpath(os.path.join(cwd, target))
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory")
    if not os.path.isdir(path):
        raise NotADirectoryError(20, "Not a directory")
    if not os.access(path, os.X_OK):
        raise PermissionError(13, "Permission denied")
    return path
