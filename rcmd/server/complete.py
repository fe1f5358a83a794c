"""Tab completion, the server's side: the answer to COMPLETE (docs/PROTOCOL.md section 5d).

No shell is involved. The client sends the word as a literal prefix (its quotes and escapes
already removed); it is matched against directory entries with ``str.startswith``, so
nothing the user types is ever parsed, expanded (but a leading ``~``) or run. A listing
runs in a thread (asyncio.to_thread), so a directory of a million entries, or a slow
network file system, never holds up the event loop; and each request looks at no more than
MAX_SCANNED entries, for no longer than SCAN_SECONDS, before it answers with what it found
(``truncated``).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

from ..messages import MAX_COMPLETION_BYTES, MAX_COMPLETIONS, Complete, Completions

#: Directory entries one request looks at, in all (a PATH of many directories included):
#: about 50 ms of scandir, so a huge directory costs one thread that long, not the server.
MAX_SCANNED = 100_000
#: And for no longer than this (a slow network file system), checked every SCAN_CHECK entries.
SCAN_SECONDS = 1.0
SCAN_CHECK = 256

#: Shell builtins and reserved words offered as command names, as bash offers them (``compgen
#: -b -k``) over ssh; the words that are punctuation (``.``, ``[``, ``{``) are left out.
SHELL_WORDS = (
    *("alias", "bg", "bind", "break", "builtin", "caller", "cd", "command", "compgen", "complete"),
    *("compopt", "continue", "declare", "dirs", "disown", "echo", "enable", "eval", "exec", "exit"),
    *("export", "false", "fc", "fg", "getopts", "hash", "help", "history", "jobs", "kill", "let"),
    *("local", "logout", "mapfile", "popd", "printf", "pushd", "pwd", "read", "readarray"),
    *("readonly", "return", "set", "shift", "shopt", "source", "suspend", "test", "times", "trap"),
    *("true", "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait"),
    *("if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do"),
    *("done", "in", "function", "time", "coproc"),
)


async def answer(request: Complete, cwd: str, *, allowed: bool = True) -> Completions:
    """The COMPLETIONS for *request* in the connection's directory *cwd*, worked out in a
    thread. A user who may not run commands (*allowed* false: transfer-only, PROTOCOL.md 5c)
    gets none: their paths are confined to a jail this plain listing does not know."""
    if not allowed:
        return Completions()
    search_path = os.environ.get("PATH", os.defpath)  # what the commands get (RUN's env aside)
    return await asyncio.to_thread(complete, request.text, request.kind, cwd, search_path)


def complete(text: str, kind: str, cwd: str, search_path: str) -> Completions:
    """Completions of *text*: a path relative to *cwd*, or with *kind* ``"command"`` a
    command name from the directories of *search_path* and SHELL_WORDS. A command word that
    holds a ``/`` is a path to a program: directories and executable files match. Never
    raises for what it cannot read: that just matches nothing."""
    if "\0" in text:
        return Completions()  # no name holds one
    if kind == "command" and "/" not in text:
        return _commands(text, cwd, search_path)
    return _paths(text, cwd, executables=kind == "command")


@dataclass
class _Budget:
    """What one request may still look at: MAX_SCANNED entries, until the deadline."""

    deadline: float = field(default_factory=lambda: time.monotonic() + SCAN_SECONDS)
    scanned: int = 0
    exhausted: bool = False

    def take(self) -> bool:
        """Count one more entry; False (and exhausted) once the budget is spent."""
        self.scanned += 1
        if self.scanned > MAX_SCANNED or (
            self.scanned % SCAN_CHECK == 0 and time.monotonic() > self.deadline
        ):
            self.exhausted = True
        return not self.exhausted


def _matching(directory: str, prefix: str, budget: _Budget) -> list[os.DirEntry[str]]:
    """The entries of *directory* whose names start with *prefix*: hidden ones only for a
    prefix that starts with ``.``, as in a shell; names that are not text (bytes that are not
    UTF-8) never, since no one could type them back."""
    found = []
    hidden = prefix.startswith(".")
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if not budget.take():
                    break
                name = entry.name
                if name.startswith(prefix) and (hidden or not name.startswith(".")) and _is_text(name):
                    found.append(entry)
    except (OSError, ValueError):
        pass  # missing, not a directory, no permission: nothing to offer
    return found


def _paths(text: str, cwd: str, *, executables: bool) -> Completions:
    head, slash, prefix = text.rpartition("/")
    typed = head + slash  # the directory part as typed: "", "/", "src/", "~/"
    if not typed and text.startswith("~"):
        home = os.path.expanduser(text)  # "~" or "~user" alone: the home, as "~/"
        return Completions((text + "/",)) if home != text and os.path.isdir(home) else Completions()
    directory = os.path.expanduser(typed) if typed.startswith("~") else typed
    budget = _Budget()
    entries = sorted(_matching(os.path.join(cwd, directory or "."), prefix, budget), key=lambda e: e.name)
    items: list[str] = []
    size = 0
    truncated = budget.exhausted
    for entry in entries:
        is_dir = _is_dir(entry)
        if executables and not is_dir and not _is_executable(entry):
            continue
        item = typed + entry.name + ("/" if is_dir else "")
        size += len(item.encode("utf-8"))
        if len(items) == MAX_COMPLETIONS or size > MAX_COMPLETION_BYTES:
            truncated = True
            break
        items.append(item)
    return Completions(tuple(items), truncated=truncated)


def _commands(text: str, cwd: str, search_path: str) -> Completions:
    names = {word for word in SHELL_WORDS if word.startswith(text)}
    budget = _Budget()
    for directory in search_path.split(os.pathsep):
        for entry in _matching(os.path.join(cwd, directory or "."), text, budget):
            if entry.name not in names and _is_executable(entry):
                names.add(entry.name)
        if budget.exhausted:
            break
    items: list[str] = []
    size = 0
    truncated = budget.exhausted
    for name in sorted(names):
        size += len(name.encode("utf-8"))
        if len(items) == MAX_COMPLETIONS or size > MAX_COMPLETION_BYTES:
            truncated = True
            break
        items.append(name)
    return Completions(tuple(items), truncated=truncated)


def _is_text(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False  # os.fsdecode gave a lone surrogate for a byte that is not UTF-8
    return True


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # a link to a directory too, as bash marks it
    except OSError:
        return False


def _is_executable(entry: os.DirEntry[str]) -> bool:
    """A file (or a link to one) this server's account may run, as the shell's PATH search."""
    try:
        return entry.is_file() and os.access(entry.path, os.X_OK)  # is_file: no stat but for links
    except OSError:
        return False
