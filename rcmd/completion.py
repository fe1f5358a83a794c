"""Tab completion at the interactive prompt: remote paths and command names, as bash over ssh.

The prompt asks the server over the connection it already has, between commands, with
COMPLETE (docs/PROTOCOL.md section 5d) and gets COMPLETIONS back: no second connection, no
remote shell, no process per key press. The work is split so that the parts are testable
without a terminal or a server:

* :func:`word_at` reads the line up to the cursor the way a shell splits it (blanks and
  operators end a word; quotes and backslashes are removed) and says where the word being
  typed starts, what it means literally, which quote is still open, and whether it is in
  command position (the first word, or after ``|``, ``;``, ``&&``, ``(``, ``sudo``...).
* :func:`insertion` writes what a completion adds after the cursor, quoted for that
  context: ``my\\ file`` outside quotes, ``'it'\\''s'`` inside single ones; a file gets its
  closing quote and a space, a directory keeps the word open for the next Tab.
* :func:`request` asks the server (blocking, on the prompt's own connection);
  :class:`RemoteCompleter` ties it to prompt_toolkit, taking turns with the keepalive thread.

A server without the ``complete`` extension, or naive framing, gets no question: Tab then
completes nothing, as before.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import RcmdError
from .messages import MAX_COMPLETION_TEXT, MAX_COMPLETIONS, Complete, Completions

if TYPE_CHECKING:
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document

    from .client import Client
    from .keepalive import KeepAlive

#: The extension a server lists in its HELLO when it answers COMPLETE.
EXTENSION = "complete"
#: How long the prompt waits for COMPLETIONS. A server answers within about a second
#: whatever it lists (rcmd/server/complete.py); after this the connection is taken for dead
#: (it is still in the middle of the question), and the next command reconnects.
COMPLETE_TIMEOUT = 5.0

#: Characters that end a word outside quotes.
_BLANKS = " \t\n"
_OPERATORS = ";&|()<>"
#: After these the next word is a command: a new simple command starts.
_COMMAND_SEPARATORS = ";&|("
#: Words after which the next word is still in command position: reserved words, and the
#: commands that run the word after them (bash's own completion knows the reserved words).
_PREFIX_WORDS = frozenset(
    {"if", "then", "else", "elif", "do", "while", "until", "!", "time", "sudo", "exec", "command", "nohup"}
)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
#: Outside quotes these take a backslash to be themselves (bash escapes the same set).
_SPECIAL = frozenset(" \t\"'\\$`*?[](){}<>|&;#!^")
#: Inside double quotes, these.
_SPECIAL_IN_DOUBLE = frozenset('"\\$`')


@dataclass(frozen=True, slots=True)
class Word:
    """The word the cursor is at the end of, as :func:`word_at` reads it.

    *start*: where it starts in the line; *literal*: what it means, quotes and escapes
    removed; *quote*: the quote still open at the cursor (``'``, ``"`` or None);
    *pending_escape*: it ends in a backslash that escapes the next character typed;
    *command*: it is in command position; *quoted_start*: its first character is quoted
    (a ``~`` there is a name, not the home); *expands*: it holds ``$``, a backquote or a
    glob character the shell would expand, so its literal is not what the shell would see.
    """

    start: int
    literal: str
    quote: str | None = None
    pending_escape: bool = False
    command: bool = False
    quoted_start: bool = False
    expands: bool = False


def word_at(line: str) -> Word:
    """The word at the end of *line* (the text before the cursor), read as a POSIX shell
    splits words. Linear in the line; never raises. An unfinished quote or escape is part
    of the word (the user is typing it)."""
    start: int | None = None
    literal: list[str] = []
    quote: str | None = None
    escaped = False
    expands = False
    expect_command = True  # the next word starts a command
    word_is_command = True
    for index, char in enumerate(line):
        if quote == "'":
            if char == "'":
                quote = None
            else:
                literal.append(char)
            continue
        if escaped:
            escaped = False
            if quote == '"' and char not in _SPECIAL_IN_DOUBLE and char != "\n":
                literal.append("\\")  # in double quotes \x is both characters
            literal.append(char)
            continue
        if char == "\\":
            if start is None:
                start, word_is_command = index, expect_command
            escaped = True
            continue
        if quote == '"':
            if char == '"':
                quote = None
            else:
                expands = expands or char in "$`"
                literal.append(char)
            continue
        if char in _BLANKS or char in _OPERATORS:
            if start is not None:  # a word ends here
                word = "".join(literal)
                expect_command = word_is_command and (word in _PREFIX_WORDS or bool(_ASSIGNMENT.match(word)))
                start, literal, expands = None, [], False
            if char in _COMMAND_SEPARATORS:
                expect_command = True
            elif char in "<>":
                expect_command = False  # a redirection's target is a file
            continue
        if start is None:
            start, word_is_command = index, expect_command
        if char in "'\"":
            quote = char
            continue
        expands = expands or char in "$`*?["
        literal.append(char)
    if start is None:
        return Word(len(line), "", command=expect_command)
    return Word(
        start,
        "".join(literal),
        quote=quote,
        pending_escape=escaped,
        command=word_is_command,
        quoted_start=line[start] in "'\"\\",
        expands=expands,
    )


def insertion(word: Word, item: str) -> str | None:
    """What to type after the cursor to turn *word* into the completion *item* (which
    starts with ``word.literal``), quoted as the word is; None if *item* does not start
    with it or cannot be typed back (a control character in a name). A directory (``/`` at
    the end) leaves the word open; anything else ends it: its quote closed, then a space."""
    if not item.startswith(word.literal) or any(ord(char) < 0x20 or char == "\x7f" for char in item):
        return None
    rest = item[len(word.literal) :]
    out: list[str] = []
    for index, char in enumerate(rest):
        if index == 0 and word.pending_escape:
            out.append(char)  # its backslash is typed already
        elif word.quote == "'":
            out.append("'\\''" if char == "'" else char)
        elif word.quote == '"':
            out.append("\\" + char if char in _SPECIAL_IN_DOUBLE else char)
        elif char in _SPECIAL or (char == "~" and index == 0 and not word.literal):
            out.append("\\" + char)
        else:
            out.append(char)
    if not item.endswith("/"):
        out.append((word.quote or "") + " ")
    return "".join(out)


def request(client: Client, text: str, kind: str, timeout: float = COMPLETE_TIMEOUT) -> Completions:
    """Ask the server to complete *text* (a path, or with *kind* ``"command"`` a command
    name), between commands, on *client*'s connection. An empty Completions from a server
    without the ``complete`` extension, for a text too long to name anything, or for an
    unanswerable one. Raises what the client raises for a dead connection (ConnectionClosed,
    ServerError, RemoteProtocolError), or TimeoutError after *timeout* seconds."""
    if EXTENSION not in (client.server_hello.extensions or ()) or len(text) > MAX_COMPLETION_TEXT:
        return Completions()
    client.check_alive()  # raises for a connection the server has closed meanwhile
    client._send(Complete(text, kind))
    # The state machine lets nothing but COMPLETIONS (or ERROR, raised) through now.
    answer = client._next_event(time.monotonic() + timeout)
    assert isinstance(answer, Completions)
    return answer


def remote_items(client: Client, word: Word) -> tuple[str, ...]:
    """The server's completions of *word*, as items starting with its literal."""
    if word.expands:
        return ()  # "$HOME/x", "*.py": the shell's expansion, not a name to match
    text = word.literal
    # A quoted "~" is a name, not the home: "./~x" matches it, and the "./" goes again.
    sent = "./" + text if word.quoted_start and text.startswith("~") and not word.command else text
    answer = request(client, sent, "command" if word.command else "path")
    return tuple(item[len(sent) - len(text) :] for item in answer.items if item.startswith(sent))


def local_items(word: Word, limit: int = MAX_COMPLETIONS) -> tuple[str, ...]:
    """Completions of *word* from this machine's files (the prompt's ``put``), as the
    server makes them: hidden names for a hidden prefix only, ``/`` after a directory, a
    leading ``~/`` for the home, at most *limit*."""
    text = word.literal
    if word.expands or (text.startswith("~") and not text.startswith("~/")):
        return ()  # "$HOME/x", "*.py", "~user": not a name to match here
    expanded = os.path.expanduser(text) if text.startswith("~/") else text
    head, slash, prefix = expanded.rpartition("/")
    shown = text[: len(text) - len(prefix)]  # the directory part, as typed
    items: list[str] = []
    try:
        with os.scandir(head + slash or ".") as entries:
            for entry in entries:
                if not entry.name.startswith(prefix) or (entry.name[0] == "." and not prefix.startswith(".")):
                    continue
                items.append(shown + entry.name + ("/" if entry.is_dir() else ""))
                if len(items) >= limit:
                    break
    except OSError:
        return ()
    return tuple(sorted(items))


def _display(item: str) -> str:
    """How the menu shows *item*: its last name, as bash lists them (``src/``, ``notes.txt``)."""
    name = item.rstrip("/").rpartition("/")[2]
    return name + "/" if item.endswith("/") else name or item


class RemoteCompleter:
    """A prompt_toolkit completer that asks the server (PROTOCOL.md 5d).

    *client* is the prompt's connection; set :attr:`client` again after a reconnect.
    *keepalive*'s lock is held while asking, so a ping never interleaves with the question;
    a failure is left in ``keepalive.failure`` (the next command then reconnects, and says
    so) and Tab completes nothing. *local* names are the prompt's own commands (``exit``,
    ``put``...), offered in command position with the server's.
    """

    def __init__(self, client: Client, keepalive: KeepAlive | None, local: Iterable[str] = ()) -> None:
        self.client = client
        self.keepalive = keepalive
        self.local = sorted(local)

    def _items(self, word: Word) -> tuple[str, ...]:
        keepalive = self.keepalive
        if keepalive is None:
            return remote_items(self.client, word)
        if not keepalive.lock.acquire(timeout=COMPLETE_TIMEOUT):
            return ()
        try:
            if keepalive.failure is not None:
                return ()  # dead already: the next command reconnects
            return remote_items(self.client, word)
        except (RcmdError, OSError, TimeoutError, RuntimeError) as exc:
            keepalive.failure = exc
            return ()
        finally:
            keepalive.lock.release()

    def completions(self, line: str) -> Iterator[tuple[str, str]]:
        """(text to insert, what the menu shows) for each completion of the word at the end
        of *line*. The prompt's own ``put`` takes local files: its words complete here, as
        scp's do; after ``cd`` only directories are offered."""
        word = word_at(line)
        first = line.split(None, 1)[0] if line.strip() and not word.command else ""
        if first == "put":
            items = set(local_items(word))
        else:
            items = set(self._items(word))
            if first == "cd" and not any(char in line for char in _COMMAND_SEPARATORS):
                items = {item for item in items if item.endswith("/")}
        if word.command:
            items.update(name for name in self.local if name.startswith(word.literal) and "/" not in name)
        for item in sorted(items):
            text = insertion(word, item)
            if text is not None:
                yield text, _display(item)


def prompt_completer(remote: RemoteCompleter) -> Completer:
    """*remote* as a prompt_toolkit Completer (prompt_toolkit is imported only here, when
    the prompt starts). Each completion is inserted at the cursor, nothing before it
    changed, so a readline-like Tab inserts what all the completions share."""
    from prompt_toolkit.completion import Completer, Completion

    class ServerCompleter(Completer):
        def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
            for text, display in remote.completions(document.text_before_cursor):
                yield Completion(text, start_position=0, display=display)

    return ServerCompleter()
